import type { LiveStream } from "../generated/prisma/client.ts";
import { parseJobInput } from "../jobs/create-job.ts";
import { log } from "../log.ts";
import { endAtLongestLength, releaseHold } from "./broadcast-ends.ts";
import { requeueEncode, watchReaders } from "./broadcast-handovers.ts";
import { setStatus } from "./broadcast-status.ts";
import { LiveFeed } from "./feed.ts";
import { signedFeedUrl } from "./feed-endpoint.ts";
import { type LiveContext, liveJobOf } from "./live-context.ts";
import { gapsOfAdopted, keepReceived, lastErrorGoingOn } from "./recording-gaps.ts";

/**
 * How long a publisher's reconnect waits for an API instance handing its broadcast on (a deploy)
 * to let go of it, before it is refused (its encoder tries again).
 */
export const HAND_ON_WAIT_MS = 10_000;

/**
 * Whether the stream on air (CONNECTED, LIVE) has lost the API instance holding its broadcast: its
 * encode is on, and no instance holds it (its holder was killed, or crashed). Its publisher's
 * reconnect, to any instance, then continues it (adoptBroadcast).
 */
export async function holderGone(ctx: LiveContext, stream: LiveStream): Promise<boolean> {
  const videoId = stream.activeVideoId;
  if (!videoId || ctx.feeds.has(videoId) || ctx.endedHere.has(videoId)) return false;
  return (await liveJobOf(ctx, videoId)) !== null && !(await ctx.holds.held(videoId));
}

/**
 * Continues here a broadcast no live API instance holds when its publisher comes back: one
 * handed on by an instance that stopped (handOff), or one whose holder died (SIGKILL, a crash),
 * which Postgres let go of with its session (broadcast-holds.ts). Its hold is taken here, with a
 * feed of its own for the same video; its job points at it: a queued job is due now, a running
 * one whose run reads another address is queued again for a run that reads here, and one whose
 * run reads this address (this instance restarted in its place) is left to that run, which asks
 * its feed again (render-worker/handlers/live-feed-break.ts). A run takes it over going on with
 * its playlists. `waitMs`: how long to wait for an instance handing it on to let go. Null when the
 * stream's broadcast is held by a live instance, its encode is over, or another instance took it first.
 */
export async function adoptBroadcast(ctx: LiveContext, stream: LiveStream, waitMs: number): Promise<LiveFeed | null> {
  const videoId = stream.activeVideoId;
  if (stream.status === "IDLE" || stream.status === "ENDED") return null;
  if (!videoId || ctx.feeds.has(videoId) || ctx.endedHere.has(videoId)) return null;
  if (!(await liveJobOf(ctx, videoId))) return null;
  if (!(await takeHold(ctx, videoId, waitMs))) return null;
  try {
    const adopted = await adoptHeld(ctx, stream, videoId);
    if (!adopted) releaseHold(ctx, videoId);
    return adopted;
  } catch (err) {
    releaseHold(ctx, videoId);
    ctx.feeds.delete(videoId);
    throw err;
  }
}

/**
 * Takes `videoId`'s hold for this instance, waiting up to `waitMs` for an instance handing it on
 * to let go (a deploy: its job is being put back); false: a live instance holds it.
 */
async function takeHold(ctx: LiveContext, videoId: string, waitMs: number): Promise<boolean> {
  const until = Date.now() + waitMs;
  for (;;) {
    if (await ctx.holds.take(videoId)) return true;
    if (Date.now() >= until) return false;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** adoptBroadcast once this instance holds the broadcast. */
async function adoptHeld(ctx: LiveContext, stream: LiveStream, videoId: string): Promise<LiveFeed | null> {
  // Read again under the hold: the encode may have ended meanwhile.
  const job = await liveJobOf(ctx, videoId);
  const video = await ctx.db.video.findUnique({ where: { id: videoId }, select: { createdAt: true, playable: true } });
  if (!job || !video) return null;
  // One instance adopts it: the stream is claimed as a broadcast's start claims it.
  const claim = await ctx.db.liveStream.updateMany({
    where: { id: stream.id, status: { in: ["DISCONNECTED", "CONNECTED", "LIVE"] }, activeVideoId: videoId },
    data: { status: "CONNECTED" },
  });
  if (claim.count === 0) return null;
  const input = parseJobInput("LIVE", job.input);
  const feedUrl = signedFeedUrl(ctx, videoId);
  const readHere = job.status === "RUNNING" && new URL(input.feedUrl).origin === new URL(feedUrl).origin;
  // What its encode published came from another feed: this one's media follows it, from what the
  // spool of an instance that died here holds (this instance restarted in its place), if any.
  const feed = new LiveFeed({ continuesBroadcast: true });
  const spooled = await ctx.spools?.read(videoId);
  const restored = spooled ? feed.restore(spooled.headers, spooled.media) : null;
  if (restored)
    log.info("live: an adopted broadcast's feed starts with what its dead holder's spool held", {
      videoId,
      ...restored,
    });
  ctx.feeds.set(videoId, {
    feed,
    streamId: stream.id,
    startedAt: video.createdAt.getTime(),
    reconnectWindowSeconds: stream.reconnectWindowSeconds ?? ctx.settings.reconnectGraceSeconds,
    endOnUnpublish: stream.endOnUnpublish,
    // What its dead holder had received: beyond what its encode published, the recording lacks it.
    gaps: await gapsOfAdopted(ctx, videoId, restored),
  });
  feed.spoolTo((await ctx.spools?.open(videoId)) ?? null);
  // Its run asks for the feed within a second or so; without one in time, another run takes over.
  watchReaders(ctx, videoId, feed, readHere);
  keepReceived(ctx, videoId, feed);
  if (job.status === "QUEUED") {
    await ctx.db.job.updateMany({
      where: { id: job.id, attempt: job.attempt, status: "QUEUED" },
      data: { input: { ...input, feedUrl }, runAfter: null, dispatchedAt: null },
    });
  } else if (!readHere) {
    await requeueEncode(ctx, job, ["RUNNING"], null, { ...input, feedUrl });
  }
  endAtLongestLength(ctx, videoId, stream.id, feed, input.options.maxDurationSeconds);
  await setStatus(ctx, stream.id, video.playable ? "LIVE" : "CONNECTED", {
    lastError: lastErrorGoingOn(stream.lastError),
  });
  ctx.dispatcher.kick();
  log.info("live: a broadcast no live API instance holds continues here", {
    streamId: stream.id,
    videoId,
    handedOn: job.status === "QUEUED",
  });
  return feed;
}
