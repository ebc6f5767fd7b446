import type { LiveStream } from "../generated/prisma/client.ts";
import { parseJobInput } from "../jobs/create-job.ts";
import { userFacingError } from "../jobs/user-facing-error.ts";
import { log } from "../log.ts";
import { liveBehindSeconds, liveEncodeSpeed, liveFeedReplayBytes } from "../metrics.ts";
import { endsRun, type JobEvent } from "../protocol/job-events.ts";
import { videoPrefix } from "../protocol/storage-layout.ts";
import { broadcastOver } from "./broadcast-ends.ts";
import { setStatus } from "./broadcast-status.ts";
import { type LiveContext, videoIdOf } from "./live-context.ts";
import { chargeBroadcast } from "./live-usage.ts";
import { announce } from "./stream-events.ts";
import { setTargetState, stopTargets } from "../simulcast/targets.ts";

/** The fan-out topic that tells the API instance holding a broadcast's feed how much its encode published. */
const BROADCAST_PUBLISHED = "liveBroadcastPublished";

type LiveProgress = Extract<JobEvent, { type: "live.progress" }>;

/** The stream's `lastError` for a recording its run cut short (`endedEarly`). */
const ENDED_EARLY: Record<NonNullable<Extract<JobEvent, { type: "job.succeeded" }>["endedEarly"]>, string> = {
  "disk full": "the server's disk stayed full: the recording holds only what was published before it filled",
};

/** What an encode published reaches the API instance holding its feed, whichever applied its event. */
export function listenForPublished(ctx: LiveContext): void {
  ctx.target.addEventListener(BROADCAST_PUBLISHED, (event) => {
    const videoId = videoIdOf(event);
    if (!videoId) return;
    const { seconds } = (event as CustomEvent<{ seconds: number }>).detail;
    (ctx.feeds.get(videoId)?.feed ?? ctx.endedFeeds.get(videoId))?.published(seconds);
  });
}

/** Applies a LIVE job's event to its stream (the event ingestor calls it once the event is applied). */
export async function onJobEvent(ctx: LiveContext, e: JobEvent, videoId: string): Promise<void> {
  // The end of a run another run took the broadcast over from (takeOverEncode) is not the
  // broadcast's: it was stopped, or lost its feed, while the broadcast goes on.
  if (endsRun(e) && (await supersededRun(ctx, e))) {
    log.info("live: the end of a run another run took the broadcast over from", { videoId, runId: e.runId });
    return;
  }
  // Nor are its targets' states: the run that took over forwards to them now (a late STOPPED would hide it).
  if (e.type === "live.simulcast" && (await supersededRun(ctx, e))) return;
  try {
    await applyJobEvent(ctx, e, videoId);
  } finally {
    // Its encode is over (its end, or a failure, applied first): a publisher still sending is cut off.
    if (endsRun(e)) broadcastOver(ctx, videoId);
  }
}

/**
 * A broadcast's video was canceled (cancelVideo): its stream is ENDED and its publisher cut off.
 * (Its job's own end never reaches onJobEvent: events of a canceled job stop at the ingestor.)
 */
export async function onVideoCanceled(ctx: LiveContext, videoId: string): Promise<void> {
  const stream = await streamOnAirWith(ctx, videoId);
  if (stream && stream.status !== "ENDED")
    await setStatus(ctx, stream.id, "ENDED", { lastError: "the broadcast's video was canceled" });
  broadcastOver(ctx, videoId);
}

/**
 * Deletes the media of the broadcast `e` ends when it is not recorded (its stream's `recording`
 * was off when it started), before the ingestor applies the end (a failed deletion fails the
 * event, which comes again); true when it did, and the ingestor then leaves its video DISCARDED
 * instead of READY. Called by the ingestor with a LIVE job's `job.succeeded` and `job.failed`.
 */
export async function discardUnrecordedMedia(ctx: LiveContext, e: JobEvent, videoId: string): Promise<boolean> {
  const job = await ctx.db.job.findUnique({ where: { id: e.jobId }, select: { input: true } });
  if (!job || parseJobInput("LIVE", job.input).options.record) return false;
  await ctx.storage.deletePrefix(videoPrefix(videoId));
  log.info("live: broadcast ended unrecorded; its media were deleted", { videoId });
  return true;
}

/** Whether `e`'s run no longer holds its LIVE job: another run (or none yet, queued again) took it over. */
async function supersededRun(ctx: LiveContext, e: JobEvent): Promise<boolean> {
  if (e.runId === undefined) return false;
  const job = await ctx.db.job.findUnique({ where: { id: e.jobId }, select: { runId: true, status: true } });
  if (!job || job.status === "SUCCEEDED" || job.status === "FAILED" || job.status === "CANCELED") return false;
  return job.runId !== e.runId;
}

/** The stream whose current (or last) broadcast is `videoId`, if any: an older broadcast changes no stream. */
async function streamOnAirWith(ctx: LiveContext, videoId: string): Promise<LiveStream | null> {
  const video = await ctx.db.video.findUnique({ where: { id: videoId }, select: { liveStreamId: true } });
  if (!video?.liveStreamId) return null;
  const stream = await ctx.db.liveStream.findUnique({ where: { id: video.liveStreamId } });
  return stream?.activeVideoId === videoId ? stream : null;
}

/** A LIVE job's event applied to its stream: its state, webhooks and subscribers. */
async function applyJobEvent(ctx: LiveContext, e: JobEvent, videoId: string): Promise<void> {
  const stream = await streamOnAirWith(ctx, videoId);
  if (!stream) {
    // A broadcast its stream has moved on from (the next one started while it finished): its
    // stream's state is the next one's, but its time is the tenant's all the same.
    if (endsRun(e)) await ctx.db.$transaction((tx) => chargeBroadcast(tx, videoId));
    return;
  }
  const streamId = stream.id;
  // The broadcast's end stops its forwarding, whatever its run last said of each target.
  if (endsRun(e) && (await stopTargets(ctx.db, streamId))) announce(ctx, streamId);
  switch (e.type) {
    case "video.playable":
      // Only from CONNECTED as it is now: a publisher that left since the read above has made it
      // DISCONNECTED, which a first segment published after does not undo.
      if (stream.status === "CONNECTED") await setStatus(ctx, streamId, "LIVE", { from: ["CONNECTED"] });
      break;
    case "live.progress":
      reportProgress(ctx, streamId, videoId, e);
      break;
    case "live.simulcast":
      if (await setTargetState(ctx.db, streamId, e)) announce(ctx, streamId);
      break;
    case "job.succeeded":
      // The recording's length and source were written with its READY, or its video DISCARDED
      // (transcode-events.ts). A run that cut the recording short says why.
      await setStatus(ctx, streamId, "ENDED", e.endedEarly ? { lastError: ENDED_EARLY[e.endedEarly] } : {});
      break;
    case "job.failed":
      await setStatus(ctx, streamId, "ENDED", { lastError: userFacingError(e.error) });
      break;
    case "job.canceled":
      await setStatus(ctx, streamId, "ENDED", { lastError: "the broadcast's encode was canceled" });
      break;
    default:
      break;
  }
}

/**
 * A live encode's progress: the feed (on the instance holding it) lets go of what is published,
 * and the stream's subscribers get the encode's health beside what the ingest measured.
 */
function reportProgress(ctx: LiveContext, streamId: string, videoId: string, e: LiveProgress): void {
  const entry = ctx.feeds.get(videoId);
  const seconds = entry ? (Date.now() - entry.startedAt) / 1000 : 0;
  const inputBitrate = entry && seconds > 0 ? Math.round((entry.feed.bytesIn * 8) / seconds) : null;
  const { mediaSeconds, fps, speed, segments, publishedSeconds } = e;
  // The feed lets go of what is published (on the instance holding it); what it received and
  // the encode has not published yet is how far viewers are behind the publisher.
  if (entry && publishedSeconds !== undefined) {
    entry.feed.published(publishedSeconds);
    liveFeedReplayBytes.set(
      [...ctx.feeds.values()].reduce((sum, f) => sum + f.feed.replayBytes, ctx.endedFeeds.replayBytes()),
    );
  } else if (publishedSeconds !== undefined)
    ctx.target.dispatchEvent(new CustomEvent(BROADCAST_PUBLISHED, { detail: { videoId, seconds: publishedSeconds } }));
  const behindSeconds =
    entry && publishedSeconds !== undefined
      ? Math.round(Math.max(0, entry.feed.receivedSeconds - publishedSeconds) * 100) / 100
      : e.behindSeconds;
  if (speed !== null) liveEncodeSpeed.observe(speed);
  if (behindSeconds !== null) liveBehindSeconds.observe(behindSeconds);
  const input = entry?.feed.input ?? null;
  announce(ctx, streamId, {
    mediaSeconds,
    fps,
    speed,
    segments,
    behindSeconds,
    inputBitrate,
    inputKeyframeInterval: input ? Math.round(input.keyframeInterval * 1000) / 1000 : null,
    inputFps: input ? Math.round(input.fps * 100) / 100 : null,
    renditions: e.renditions ?? [],
  });
}
