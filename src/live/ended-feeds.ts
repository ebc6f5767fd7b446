import type { LiveFeed } from "./feed.ts";

/**
 * The longest an ended feed is kept for its encode: a bound on a job whose end never reaches this
 * instance. Far beyond a run taking the broadcast over (seconds) and a lapsed claim's redelivery.
 */
const KEPT_MAX_MS = 10 * 60_000;

/**
 * Broadcasts ended on this instance (their publisher stopped, `endLiveStream`, their reconnect window
 * or longest length ran out) whose encode has not ended yet, by video: each feed keeps what its
 * encode had not published (within the feed's bounds), so a run that takes the broadcast over (its
 * worker died after the end) publishes that tail, then ends the recording (docs/live.md, "When the
 * encode's process dies"). Let go when the job ends, or after KEPT_MAX_MS.
 */
export function createEndedFeeds<Held extends { feed: LiveFeed }>() {
  const kept = new Map<string, { held: Held; timer: NodeJS.Timeout }>();
  const drop = (videoId: string) => {
    const entry = kept.get(videoId);
    if (!entry) return;
    kept.delete(videoId);
    clearTimeout(entry.timer);
    entry.held.feed.release();
  };
  return {
    /** Keeps a broadcast that ended here: its feed, and what else it held (what its recording lacks). */
    keep(videoId: string, held: Held): void {
      if (kept.get(videoId)?.held.feed === held.feed) return;
      drop(videoId);
      const timer = setTimeout(() => drop(videoId), KEPT_MAX_MS);
      timer.unref();
      kept.set(videoId, { held, timer });
    },
    get: (videoId: string): LiveFeed | undefined => kept.get(videoId)?.held.feed,
    held: (videoId: string): Held | undefined => kept.get(videoId)?.held,
    videoIds: (): string[] => [...kept.keys()],
    drop,
    /** Bytes the kept feeds hold (`videograph_live_feed_replay_bytes` counts them beside the live ones'). */
    replayBytes: () => [...kept.values()].reduce((sum, { held }) => sum + held.feed.replayBytes, 0),
  };
}
