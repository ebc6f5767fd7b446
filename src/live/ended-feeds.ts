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
export function createEndedFeeds() {
  const kept = new Map<string, { feed: LiveFeed; timer: NodeJS.Timeout }>();
  const drop = (videoId: string) => {
    const entry = kept.get(videoId);
    if (!entry) return;
    kept.delete(videoId);
    clearTimeout(entry.timer);
    entry.feed.release();
  };
  return {
    keep(videoId: string, feed: LiveFeed): void {
      if (kept.get(videoId)?.feed === feed) return;
      drop(videoId);
      const timer = setTimeout(() => drop(videoId), KEPT_MAX_MS);
      timer.unref();
      kept.set(videoId, { feed, timer });
    },
    get: (videoId: string): LiveFeed | undefined => kept.get(videoId)?.feed,
    drop,
    /** Bytes the kept feeds hold (`videograph_live_feed_replay_bytes` counts them beside the live ones'). */
    replayBytes: () => [...kept.values()].reduce((sum, { feed }) => sum + feed.replayBytes, 0),
  };
}
