import { log } from "../log.ts";
import type { LiveFeed } from "./feed.ts";
import type { HeldBroadcast, LiveContext, RecordingGaps } from "./live-context.ts";
import { announce } from "./stream-events.ts";

/**
 * What a broadcast's recording is known to lack, said on its stream (`lastError`), and what the API
 * instance holding it has received, kept in Postgres (`LiveBroadcastFeed`) so that an instance
 * adopting it after its holder died can tell what died with that holder (docs/live.md, "A crash of
 * the API holding a broadcast").
 */

/** How often at most the received media time of a broadcast held here is written (at a keyframe). */
const RECEIVED_WRITE_MS = 2000;

/** Media lost beyond this (seconds) is said: less is the cut at a keyframe, not a loss. */
const LOSS_SAID_SECONDS = 1;

const LACKS_PREFIX = "the recording lacks ";

/** Why a recording lacks seconds, as its stream's lastError says after their count. */
const CAUSES = {
  "feed let go":
    "its encode was taken over after the feed had let go of media not yet published (it keeps 30 s, 32 MiB)",
  "holder died": "the API instance holding it stopped before its encode had published what that instance had received",
} as const;

export const noGaps = (): RecordingGaps => ({ before: 0, received: null, since: new Map(), restored: null });

/**
 * What an instance adopting `videoId`'s broadcast starts from: what its earlier holders wrote, and
 * the media time its dead holder's spool gave back (`restored`), if any.
 */
export async function gapsOfAdopted(
  ctx: LiveContext,
  videoId: string,
  restored: RecordingGaps["restored"],
): Promise<RecordingGaps> {
  const row = await ctx.db.liveBroadcastFeed.findUnique({ where: { videoId } });
  return { before: row?.lackedSeconds ?? 0, received: row?.receivedSeconds ?? null, since: new Map(), restored };
}

/**
 * A stream's lastError once its broadcast goes on (an adoption, a publisher back): what its recording
 * lacks stays said; any other reason no longer holds.
 */
export const lastErrorGoingOn = (lastError: string | null | undefined): string | null =>
  lastError?.startsWith(LACKS_PREFIX) ? lastError : null;

/**
 * Writes what the feed of `videoId`'s broadcast has received, at a keyframe, at most every
 * RECEIVED_WRITE_MS: what an instance adopting it after this one died compares with what its
 * encode published. Up to that interval of media lost with this instance goes unsaid.
 */
export function keepReceived(ctx: LiveContext, videoId: string, feed: LiveFeed): void {
  let writtenAt = 0;
  let writing = false;
  feed.onKeyframe(() => {
    const now = Date.now();
    if (writing || now - writtenAt < RECEIVED_WRITE_MS || !feed.mediaTimeKnown) return;
    writing = true;
    writtenAt = now;
    const receivedSeconds = feed.receivedSeconds;
    ctx.db.liveBroadcastFeed
      .upsert({ where: { videoId }, create: { videoId, receivedSeconds }, update: { receivedSeconds } })
      // Before its video's row is committed (a new broadcast's first keyframe), or the database down:
      // the next keyframe after the interval writes again.
      .catch((err) => log.debug("live: what the feed received was not written", { videoId, err: err.message }))
      .finally(() => {
        writing = false;
      });
  });
}

/**
 * A run asked the feed of a broadcast held here for media from `fromSeconds` (where its published
 * media ends), and the feed reported `missed` seconds it had let go of before (feed.attach), from
 * `missedFrom` on its timeline (feed.missedFrom). Says on
 * the stream what the recording lacks: those, and on the first such ask at an instance that adopted
 * the broadcast, what its dead holder had received beyond that point.
 */
export function recordGaps(
  ctx: LiveContext,
  videoId: string,
  entry: HeldBroadcast | undefined,
  fromSeconds: number | null,
  missed: number,
  missedFrom: number | null,
): void {
  const gaps = entry?.gaps;
  let cause: keyof typeof CAUSES | null = null;
  if (gaps && gaps.received !== null && fromSeconds !== null) {
    // What the dead holder had received and did not reach the encode: beyond its point, or, where its
    // spool gave media back, beyond what it gave (what it gave begins late: `missed`, below).
    const diedWith = gaps.restored ? Math.max(0, gaps.received - gaps.restored.toSeconds) : gaps.received - fromSeconds;
    gaps.received = null;
    if (diedWith > LOSS_SAID_SECONDS) {
      gaps.before += diedWith;
      cause = "holder died";
      log.warn("live: the recording lacks what the broadcast's dead API instance had received", {
        videoId,
        seconds: diedWith,
      });
    }
  }
  if (missed > 0) {
    // The readers of one takeover (its sample, its encode) miss the same media, from one point.
    const takeover = String(missedFrom);
    gaps?.since.set(takeover, Math.max(missed, gaps.since.get(takeover) ?? 0));
    cause = gaps?.restored && gaps.since.size === 1 ? "holder died" : "feed let go";
    // Where the run asked from (media time; null: a sample) and where the feed's media began missing
    // (its own timeline): what a wrong figure is traced from (docs/failure-model.md, "Chaos").
    log.warn("live: a run took the broadcast over past what its feed kept", {
      videoId,
      seconds: missed,
      fromSeconds,
      missedFromMs: missedFrom,
      restored: gaps?.restored ?? null,
    });
  }
  if (!cause) return;
  const total = gaps ? gaps.before + [...gaps.since.values()].reduce((a, b) => a + b, 0) : missed;
  const lastError = `${LACKS_PREFIX}${total.toFixed(1)} s of the broadcast: ${CAUSES[cause]}`;
  // After the video's writes before it: a total written late must not overwrite a later, larger one.
  const write = (lackWrites.get(videoId) ?? Promise.resolve())
    .then(() =>
      Promise.all([
        ctx.db.liveStream.updateMany({ where: { activeVideoId: videoId }, data: { lastError } }),
        ctx.db.liveBroadcastFeed.upsert({
          where: { videoId },
          create: { videoId, lackedSeconds: total },
          update: { lackedSeconds: total },
        }),
      ]),
    )
    .then(([{ count }]) => {
      if (count && entry) announce(ctx, entry.streamId);
    })
    .catch((err) => log.error("live: what the recording lacks could not be written", { videoId, err }));
  lackWrites.set(videoId, write);
  void write.finally(() => {
    if (lackWrites.get(videoId) === write) lackWrites.delete(videoId);
  });
}

/** Each video's latest write of what its recording lacks, which the next one waits for (recordGaps). */
const lackWrites = new Map<string, Promise<void>>();
