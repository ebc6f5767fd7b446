import type { LiveStream } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import type { LiveFeed } from "./feed.ts";
import { type LiveContext, liveJobOf, videoIdOf } from "./live-context.ts";
import { announce } from "./stream-events.ts";

/** The fan-out topic that tells every API instance a broadcast is over (its feed, if there, ends). */
const BROADCAST_ENDED = "liveBroadcastEnded";
/** The fan-out topic that asks the API instance holding a broadcast's feed to end it now (endLiveStream). */
const BROADCAST_FINISH = "liveBroadcastFinish";
/** How many broadcasts ended here by their grace an instance remembers until their encode ends. */
const ENDED_HERE_KEPT = 10_000;

/** A broadcast's end, and endLiveStream's ask, reach the API instance serving its feed, whichever applied it. */
export function listenForEnds(ctx: LiveContext): void {
  ctx.target.addEventListener(BROADCAST_ENDED, (event) => {
    const videoId = videoIdOf(event);
    if (videoId) endFeed(ctx, videoId);
    // The fan-out's resync (its connection came back; no video named): an end sent meanwhile was missed.
    else
      void endFeedsOfEndedEncodes(ctx).catch((err) =>
        log.warn("live: feeds were not checked after the event fan-out came back", { err: String(err) }),
      );
  });
  ctx.target.addEventListener(BROADCAST_FINISH, (event) => {
    const videoId = videoIdOf(event);
    const feed = videoId ? takeFeed(ctx, videoId) : null;
    if (!feed) return;
    log.info("live: broadcast ended by endLiveStream", { videoId });
    feed.end();
  });
}

/**
 * Ends the feeds held here (live, or ended and kept) whose encode is over: their end was missed. A
 * feed whose job is not written yet (a broadcast starting: its feed comes first) is not one.
 */
async function endFeedsOfEndedEncodes(ctx: LiveContext): Promise<void> {
  for (const videoId of new Set([...ctx.feeds.keys(), ...ctx.endedFeeds.videoIds()])) {
    const job = await ctx.db.job.findFirst({ where: { videoId, kind: "LIVE" }, select: { status: true } });
    if (!job || job.status === "QUEUED" || job.status === "RUNNING") continue;
    log.info("live: a broadcast's encode ended while the event fan-out was down; its feed here ends", { videoId });
    endFeed(ctx, videoId);
  }
}

/** Tells every API instance the broadcast's encode is over: the one serving its feed ends it. */
export function broadcastOver(ctx: LiveContext, videoId: string): void {
  ctx.target.dispatchEvent(new CustomEvent(BROADCAST_ENDED, { detail: { videoId } }));
}

/** endLiveStream: asks the API instance holding the stream's broadcast to end it; false: no encode is on. */
export async function finishBroadcast(ctx: LiveContext, stream: LiveStream): Promise<boolean> {
  const videoId = stream.activeVideoId;
  if (!videoId || stream.status === "ENDED") return false;
  if (!(await liveJobOf(ctx, videoId))) return false;
  ctx.target.dispatchEvent(new CustomEvent(BROADCAST_FINISH, { detail: { videoId } }));
  return true;
}

/** Ends a broadcast's feed on this instance (its publisher is cut off), once its encode has ended. */
function endFeed(ctx: LiveContext, videoId: string): void {
  ctx.spools?.remove(videoId);
  ctx.endedHere.delete(videoId);
  ctx.endedFeeds.drop(videoId);
  releaseHold(ctx, videoId);
  const entry = ctx.feeds.get(videoId);
  if (!entry) return;
  ctx.feeds.delete(videoId);
  const grace = ctx.graces.get(entry.streamId);
  if (grace?.videoId === videoId) {
    clearTimeout(grace.timer);
    ctx.graces.delete(entry.streamId);
  }
  entry.feed.end();
}

/** Lets another instance adopt the broadcast: its encode ended, or it was handed on. */
export function releaseHold(ctx: LiveContext, videoId: string): void {
  ctx.holds
    .release(videoId)
    .catch((err) => log.warn("live: a broadcast's hold could not be let go", { videoId, err: String(err) }));
}

/**
 * Takes a broadcast's feed off this instance (its grace ran out, its publisher unpublished,
 * endLiveStream) and returns it for the caller to end: its encode then finishes with what it
 * has. A publisher coming back meanwhile starts a new broadcast (`endedHere`).
 */
export function takeFeed(ctx: LiveContext, videoId: string): LiveFeed | null {
  const entry = ctx.feeds.get(videoId);
  if (!entry) return null;
  ctx.feeds.delete(videoId);
  const grace = ctx.graces.get(entry.streamId);
  if (grace?.videoId === videoId) {
    clearTimeout(grace.timer);
    ctx.graces.delete(entry.streamId);
  }
  ctx.endedHere.add(videoId);
  if (ctx.endedHere.size > ENDED_HERE_KEPT) ctx.endedHere.delete(ctx.endedHere.values().next().value!);
  ctx.endedFeeds.keep(videoId, entry);
  return entry.feed;
}

/** The feed of a broadcast whose hold another instance took while this one's session was down. */
export function dropFeed(ctx: LiveContext, videoId: string): void {
  ctx.spools?.remove(videoId);
  takeFeed(ctx, videoId)?.end();
  ctx.endedHere.delete(videoId);
  ctx.endedFeeds.drop(videoId);
}

/**
 * Ends a broadcast held here when it has been on air its longest length by the wall clock
 * (LIVE_MAX_DURATION_SECONDS, or the month's time left when it started), in its reconnect grace
 * or not: its feed ends (its encode finishes) and its publisher is cut off, the stream's lastError
 * saying why. The worker's cap on media time stays behind it, for timestamps that run fast.
 */
export function endAtLongestLength(
  ctx: LiveContext,
  videoId: string,
  streamId: string,
  feed: LiveFeed,
  longestSeconds: number,
): void {
  const entry = ctx.feeds.get(videoId);
  if (!entry) return;
  const timer = setTimeout(
    () => {
      if (ctx.feeds.get(videoId)?.feed !== feed) return;
      const reason = `the broadcast reached its longest length (${longestSeconds} s of wall-clock time)`;
      log.info("live: broadcast ended at its longest length", { streamId, videoId, longestSeconds });
      void ctx.db.liveStream
        .updateMany({ where: { id: streamId, activeVideoId: videoId }, data: { lastError: reason } })
        .then(() => announce(ctx, streamId))
        .catch((err) => log.error("live: the stream's lastError could not be written", { err }))
        .finally(() => {
          // Its publisher back while the encode finishes starts a new broadcast (takeFeed).
          if (ctx.feeds.get(videoId)?.feed === feed) takeFeed(ctx, videoId)?.end();
        });
    },
    Math.max(0, entry.startedAt + longestSeconds * 1000 - Date.now()),
  );
  timer.unref();
  feed.onEnd(() => clearTimeout(timer));
}
