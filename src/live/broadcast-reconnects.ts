import type { LiveStream } from "../generated/prisma/client.ts";
import { parseJobInput } from "../jobs/create-job.ts";
import { log } from "../log.ts";
import { takeFeed } from "./broadcast-ends.ts";
import { type BroadcastStatus, setStatus } from "./broadcast-status.ts";
import { lastErrorGoingOn } from "./recording-gaps.ts";
import type { BroadcastFeed, LiveFeed } from "./feed.ts";
import { type HeldBroadcast, type LiveContext, liveJobOf } from "./live-context.ts";
import type { IngestSessions } from "./publisher.ts";
import { RelayFeed, type RelayRefusal, signedRelayUrl } from "./relay.ts";
import { announce } from "./stream-events.ts";

/** The most seconds a stream's broadcast may wait for its publisher (the worker's feed read gives up at 180 s). */
export const MAX_RECONNECT_WINDOW_SECONDS = 120;

/**
 * The publisher is gone (IngestSessions.end): its broadcast waits its stream's reconnect window for
 * it, or ends at once when it unpublished and its stream says so; the stream says it is
 * DISCONNECTED, or why a publisher refused after its key was accepted was.
 */
export async function publisherLeft(
  ctx: LiveContext,
  streamId: string,
  feed: BroadcastFeed | null,
  reason: string | null,
  unpublished: boolean,
): Promise<void> {
  // A relayed publisher: the instance holding its broadcast hears it left, and does the rest.
  if (feed instanceof RelayFeed) return feed.finish(reason, unpublished);
  // Only the broadcast this connection fed: a refused rival's end touches no other.
  const broadcast = feed ? [...ctx.feeds].find(([, entry]) => entry.feed === feed) : undefined;
  // Ended by its publisher: its feed ends (and its encode with it) once its stream has said so.
  const endsNow = broadcast ? awaitReconnect(ctx, streamId, broadcast[0], broadcast[1], unpublished) : null;
  try {
    const stream = await ctx.db.liveStream.findUnique({ where: { id: streamId } });
    if (!stream) return;
    const onAir = stream.status === "CONNECTED" || stream.status === "LIVE";
    if (broadcast && onAir && stream.activeVideoId === broadcast[0]) {
      // A publisher gone with no reason (its stop, a dropped connection) leaves what the stream says:
      // the seconds a takeover's recording lacks (feed-endpoint.ts) outlast the broadcast.
      await setStatus(ctx, streamId, "DISCONNECTED", reason === null ? {} : { lastError: reason });
    } else if (!broadcast && !onAir && reason) {
      // Refused after its key was accepted (its codec, size, bit rate…): the stream says why.
      await ctx.db.liveStream.update({ where: { id: streamId }, data: { lastError: reason } });
      announce(ctx, streamId);
    }
  } finally {
    if (endsNow) log.info("live: publisher ended its broadcast", { streamId, videoId: broadcast![0] });
    endsNow?.end();
  }
}

/**
 * Starts the reconnect window of a broadcast held here whose publisher left; or, when it unpublished
 * and its stream ends a broadcast then, takes its feed off this instance for the caller to end.
 */
function awaitReconnect(
  ctx: LiveContext,
  streamId: string,
  videoId: string,
  entry: HeldBroadcast,
  unpublished: boolean,
): LiveFeed | null {
  if (unpublished && entry.endOnUnpublish) return takeFeed(ctx, videoId);
  // The broadcast ends (its feed, then its encode: the stream is ENDED when its job ends)
  // unless the publisher is back within its stream's reconnect window.
  const timer = setTimeout(() => {
    takeFeed(ctx, videoId)?.end();
  }, entry.reconnectWindowSeconds * 1000);
  timer.unref();
  ctx.graces.set(streamId, { videoId, timer });
  return null;
}

/**
 * The feed of the stream's broadcast waiting here in its grace, which goes on with the publisher
 * back (its feed continues where the last publisher left off), or null when none waits here.
 */
export async function resumeInGrace(ctx: LiveContext, streamId: string): Promise<LiveFeed | null> {
  const grace = ctx.graces.get(streamId);
  const waiting = grace ? ctx.feeds.get(grace.videoId) : undefined;
  if (!grace || !waiting) return null;
  clearTimeout(grace.timer);
  ctx.graces.delete(streamId);
  waiting.feed.resume();
  await sayGoingOn(ctx, streamId, grace.videoId);
  log.info("live: publisher reconnected", { streamId, videoId: grace.videoId });
  return waiting.feed;
}

/**
 * The stream says its broadcast `videoId` goes on with its publisher here: LIVE once playable, else
 * CONNECTED. Why the publisher was gone no longer holds; what the recording lacks (recording-gaps.ts)
 * still does. `from`: the states it may move from (setStatus).
 */
export async function sayGoingOn(
  ctx: LiveContext,
  streamId: string,
  videoId: string,
  from?: BroadcastStatus[],
): Promise<void> {
  const video = await ctx.db.video.findUnique({ where: { id: videoId }, select: { playable: true } });
  const stream = await ctx.db.liveStream.findUnique({ where: { id: streamId }, select: { lastError: true } });
  await setStatus(ctx, streamId, video?.playable ? "LIVE" : "CONNECTED", {
    lastError: lastErrorGoingOn(stream?.lastError),
    ...(from ? { from } : {}),
  });
}

/**
 * The sessions of a publisher relayed from another API instance to continue `videoId`'s
 * broadcast (relay.ts); "handing on" while this instance hands it on (handOffAll); null: this
 * instance holds no such broadcast in its grace.
 */
export function resumeSessions(
  ctx: LiveContext,
  sessions: IngestSessions,
  videoId: string,
): IngestSessions | "handing on" | null {
  if (ctx.handingOn.has(videoId)) return "handing on";
  const entry = ctx.feeds.get(videoId);
  if (!entry || ctx.graces.get(entry.streamId)?.videoId !== videoId) return null;
  return { ...sessions, authorize: async () => ({ streamId: entry.streamId }) };
}

/**
 * The LIVE job of the stream's broadcast when it waits for its publisher on another API instance
 * (DISCONNECTED, its encode not ended, its feed not here nor ended here), or null.
 */
export async function waitingBroadcastJob(
  ctx: LiveContext,
  stream: LiveStream,
): Promise<{ videoId: string; input: unknown } | null> {
  const videoId = stream.activeVideoId;
  if (stream.status !== "DISCONNECTED" || !videoId || ctx.feeds.has(videoId) || ctx.endedHere.has(videoId)) return null;
  const job = await liveJobOf(ctx, videoId);
  return job ? { videoId, input: job.input } : null;
}

/**
 * A relay of a reconnecting publisher's media to the API instance that holds its broadcast in the
 * grace, or null: the stream's broadcast is not waiting (or is waiting here), or that instance
 * does not take the relay (its grace ran out meanwhile: a new broadcast starts here).
 */
export async function relayToHolder(ctx: LiveContext, stream: LiveStream): Promise<RelayFeed | RelayRefusal | null> {
  const job = await waitingBroadcastJob(ctx, stream);
  if (!job) return null;
  const { videoId } = job;
  // No instance holds it (its holder died, or handed it on and let go): it is adopted, not relayed.
  if (!(await ctx.holds.held(videoId))) return null;
  // The holder serves the broadcast's feed: the relay goes to the same address.
  const holder = new URL(parseJobInput("LIVE", job.input).feedUrl).origin;
  const relay = await RelayFeed.open(signedRelayUrl(holder, videoId, ctx.signer));
  if (!(relay instanceof RelayFeed)) {
    log.warn("live: a reconnecting publisher could not be relayed to its broadcast's API instance", {
      streamId: stream.id,
      videoId,
      why: relay.why,
    });
    return relay;
  }
  log.info("live: publisher reconnected to another API instance; relayed to its broadcast's", {
    streamId: stream.id,
    videoId,
    holder,
  });
  return relay;
}
