import { randomUUID } from "node:crypto";
import type { DbTransaction as Tx } from "../db/client.ts";
import type { LiveStream, Video } from "../generated/prisma/client.ts";
import { announceQueuedJob, createJob } from "../jobs/create-job.ts";
import { log } from "../log.ts";
import type { LiveInput } from "../protocol/live-messages.ts";
import type { VideoMetadata } from "../videos/cms-fields.ts";
import { createVideo, NEW_VIDEO_DEFAULTS } from "../videos/creation-options.ts";
import { admitUnderLocks } from "./broadcast-admission.ts";
import { adoptBroadcast, HAND_ON_WAIT_MS } from "./broadcast-adoption.ts";
import { endAtLongestLength, releaseHold } from "./broadcast-ends.ts";
import { watchReaders } from "./broadcast-handovers.ts";
import { relayToHolder, resumeInGrace } from "./broadcast-reconnects.ts";
import { changeStatus } from "./broadcast-status.ts";
import { type BroadcastFeed, LiveFeed } from "./feed.ts";
import { signedFeedUrl } from "./feed-endpoint.ts";
import type { LiveContext } from "./live-context.ts";
import { keepReceived, noGaps } from "./recording-gaps.ts";
import { RelayFeed } from "./relay.ts";
import { announce } from "./stream-events.ts";

/** A broadcast that may not start, thrown inside its transaction (which undoes its claim). */
class BroadcastRefused extends Error {}

/**
 * The publisher's metadata came (IngestSessions.begin): its broadcast goes on (its grace here),
 * is relayed to the API instance holding it, is adopted here (its holder handed it on or died),
 * or a new one starts. The feed to push into, or why it is refused.
 */
export async function beginBroadcast(
  ctx: LiveContext,
  streamId: string,
  input: LiveInput,
): Promise<{ feed: BroadcastFeed } | { refused: string }> {
  const stream = await ctx.db.liveStream.findUnique({ where: { id: streamId } });
  if (!stream || stream.disabledAt) return { refused: "the live stream is disabled" };
  // The same broadcast goes on: its feed continues where the last publisher left off.
  const resumed = await resumeInGrace(ctx, streamId);
  if (resumed) return { feed: resumed };
  // Its broadcast waits for it on another API instance: its media go there.
  const relay = await relayToHolder(ctx, stream);
  if (relay instanceof RelayFeed) return { feed: relay };
  // Its broadcast was handed on by an instance that stopped (a deploy), or its instance died:
  // it continues here. One being handed on right now is waited for, never started again.
  const handingOnThere = relay?.handingOn === true;
  const adopted = await adoptBroadcast(ctx, stream, handingOnThere ? HAND_ON_WAIT_MS : 0);
  if (adopted) return { feed: adopted };
  if (handingOnThere) return { refused: "the live stream's broadcast is being handed on; reconnect" };
  return startBroadcast(ctx, stream, input);
}

/** A new broadcast of the stream: its feed here, its hold, then its video and LIVE job. */
async function startBroadcast(
  ctx: LiveContext,
  stream: LiveStream,
  input: LiveInput,
): Promise<{ feed: LiveFeed } | { refused: string }> {
  const streamId = stream.id;
  // The feed is there before the job can be dispatched (the dispatcher may publish it as soon as
  // the transaction commits), so the worker never asks for a feed that does not exist yet.
  const videoId = randomUUID();
  const feed = new LiveFeed();
  ctx.feeds.set(videoId, {
    feed,
    streamId,
    startedAt: Date.now(),
    reconnectWindowSeconds: stream.reconnectWindowSeconds ?? ctx.settings.reconnectGraceSeconds,
    endOnUnpublish: stream.endOnUnpublish,
    gaps: noGaps(),
  });
  watchReaders(ctx, videoId, feed);
  keepReceived(ctx, videoId, feed);
  let started: { video: Video; longestSeconds: number };
  try {
    // Held by this instance while it serves the feed: no other adopts it while this one lives.
    if (!(await ctx.holds.take(videoId))) throw new Error("a new broadcast's hold was taken already");
    started = await ctx.db.$transaction((tx) => writeBroadcast(ctx, tx, stream, videoId, input));
  } catch (err) {
    ctx.feeds.delete(videoId);
    releaseHold(ctx, videoId);
    if (err instanceof BroadcastRefused) return { refused: err.message };
    throw err;
  }
  const { video, longestSeconds } = started;
  // Its media are on this instance's disk too, until its encode publishes them (feed-spool.ts).
  feed.spoolTo((await ctx.spools?.open(videoId)) ?? null);
  endAtLongestLength(ctx, videoId, streamId, feed, longestSeconds);
  ctx.webhooks.flush();
  announce(ctx, streamId);
  announceQueuedJob({ dispatcher: ctx.dispatcher, pubSub: ctx.pubSub }, video);
  log.info("live: broadcast started", { streamId, videoId: video.id, ...input });
  return { feed };
}

/**
 * The stream claimed for a new broadcast, its limits checked under their locks, its video and
 * LIVE job written and the stream CONNECTED, in one transaction; BroadcastRefused undoes it.
 */
async function writeBroadcast(
  ctx: LiveContext,
  tx: Tx,
  stream: LiveStream,
  videoId: string,
  input: LiveInput,
): Promise<{ video: Video; longestSeconds: number }> {
  // One publisher per stream: two connecting at once with its key both got this far.
  const claim = await tx.liveStream.updateMany({
    where: { id: stream.id, status: { notIn: ["CONNECTED", "LIVE"] } },
    data: { status: "CONNECTED", activeVideoId: null },
  });
  if (claim.count === 0) throw new BroadcastRefused("the live stream already has a publisher");
  const admitted = await admitUnderLocks(ctx, tx, stream);
  if ("refused" in admitted) throw new BroadcastRefused(admitted.refused);
  const video = await createBroadcast(ctx, tx, stream, videoId, input, admitted.longestSeconds);
  // The stream names its broadcast, and CONNECTED's webhook names the video.
  await changeStatus(ctx, tx, stream.id, "CONNECTED", { activeVideoId: video.id, lastError: null });
  return { video, longestSeconds: admitted.longestSeconds };
}

/** A broadcast's video and its LIVE job, in the caller's transaction. */
async function createBroadcast(
  ctx: LiveContext,
  tx: Tx,
  stream: LiveStream,
  videoId: string,
  input: LiveInput,
  maxDurationSeconds: number,
): Promise<Video> {
  const { settings } = ctx;
  const video = await createVideo(
    tx,
    {
      id: videoId,
      tenantId: stream.tenantId,
      title: stream.title,
      playbackPolicy: stream.playbackPolicy,
      source: "LIVE",
      status: "QUEUED",
      liveStreamId: stream.id,
      width: input.width,
      height: input.height,
      fps: input.fps,
      hasAudio: input.hasAudio,
    },
    {
      ...NEW_VIDEO_DEFAULTS,
      // A broadcast's segments are not encrypted (docs/security.md: content protection is for VOD).
      contentProtection: null,
      staticRenditions: [],
      captions: [],
      // The CMS's data the stream holds for its broadcasts (an externalId names one video: none).
      description: stream.description,
      metadata: stream.metadata as VideoMetadata,
      tags: stream.tags,
      externalId: null,
    },
  );
  const options = {
    segmentSeconds: stream.latencyMode === "LOW" ? settings.lowLatencySegmentSeconds : settings.segmentSeconds,
    maxDurationSeconds,
    record: stream.recording,
    reconnectWindowSeconds: stream.reconnectWindowSeconds ?? settings.reconnectGraceSeconds,
  };
  // A broadcast is not encoded again from its start: a run that takes it over goes on from what
  // is published (its feed, on the instance holding it, keeps what is not).
  await createJob(
    tx,
    {
      kind: "LIVE",
      videoId: video.id,
      maxAttempts: 1,
      input: { feedUrl: signedFeedUrl(ctx, video.id), input, options },
    },
    ctx.costs,
  );
  return video;
}
