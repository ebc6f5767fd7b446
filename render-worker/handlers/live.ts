import { statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { LiveJobMessage } from "../../src/protocol/live-messages.ts";
import type { ProbeResult, Storyboard } from "../../src/protocol/media-facts.ts";
import type { StaticRenditionPlan } from "../../src/protocol/static-rendition-messages.ts";
import { hlsLayout, liveRecordingKey, posterKey, storyboardLayout } from "../../src/protocol/storage-layout.ts";
import { inSpan } from "../../src/shared/tracing.ts";
import { log } from "../log.ts";
import { abortError, isAbortError, MediaError } from "../media/errors.ts";
import { createHlsPublisher } from "../media/hls-publisher.ts";
import { publishedBroadcast, type RungContinuation } from "../media/live-continuation.ts";
import {
  encodeLiveLadder,
  liveFeedInput,
  liveProbe,
  passthroughRung,
  planLiveLadder,
  topRungAtInputSize,
} from "../media/live-ladder.ts";
import type { EncoderStatus } from "../media/encode-ladder.ts";
import type { PlannedRung } from "../media/ladder.ts";
import { ownMediaFile } from "../media/media-input.ts";
import { remuxRendition } from "../media/mp4-remux.ts";
import { extractPoster } from "../media/poster.ts";
import { probeSource, sampleLiveVideo } from "../media/probe.ts";
import { segmentPlan, targetDuration } from "../media/segments.ts";
import { forwardSimulcast } from "../media/simulcast.ts";
import { reportLiveProgress } from "../progress/job-progress.ts";
import { publishStoryboard } from "./transcode-storyboard.ts";
import {
  clearRungDirs,
  diskReserveBytes,
  endPublishedPlaylists,
  FULL_DISK_PATIENCE_MS,
  FULL_DISK_RETRY_MS,
  holdFeed,
  keepDiskReserve,
  keepPlaylistRoom,
  pause,
  releaseDiskReserve,
} from "./live-full-disk.ts";
import { isStorageFailure } from "../storage/storage-failures.ts";
import { afterFeedEnded, FeedBroke, feedStatus } from "./live-feed-break.ts";
import { holdPresence } from "./live-presence.ts";
import { emitTogether, type JobContext } from "./types.ts";
import { variantOutcomeEvents, type VariantOutcome } from "./variant-outcomes.ts";

/**
 * Encodes a live broadcast (docs/live.md): the publisher's feed, read from the API as FLV, into an
 * HLS ladder published while it arrives (`video.playable` once every rung has a segment), with
 * `live.progress` on the progress timer, until the feed ends. The playlists then end and the
 * broadcast is a VOD recording: `variant.ready` per rung and `job.succeeded`, as a transcode ends.
 */
export async function live(job: LiveJobMessage, ctx: JobContext): Promise<void> {
  const presence = holdPresence(job.feedUrl, ctx.signal);
  try {
    await encodeBroadcast(job, ctx);
    await presence.done();
  } catch (err) {
    // A failure the run reports is its end; a stop (or a hand-back) is not, and the API takes over.
    if (!ctx.signal.aborted) await presence.done();
    throw withoutFeedUrl(err, job.feedUrl);
  }
}

/**
 * An error whose message names the broadcast's feed (a signed URL of an API instance: its address
 * and signature) by what it is instead; tenants read the message (Video.error, lastError), and the
 * command and stderr, which keep the URL, go only to operators (JobRun).
 */
function withoutFeedUrl(err: unknown, feedUrl: string): unknown {
  if (!(err instanceof Error)) return err;
  const { origin, pathname } = new URL(feedUrl);
  // As ffmpeg may print it: whole, without its query, or by its origin alone.
  const message = [feedUrl, `${origin}${pathname}`, origin].reduce(
    (text, form) => text.replaceAll(form, "the broadcast's feed"),
    err.message,
  );
  if (message === err.message) return err;
  // Defined, not assigned: a DOMException's message (an abort's, a timeout's) has only a getter, and
  // assigning it threw a TypeError that took the place of the error.
  Object.defineProperty(err, "message", { value: message, writable: true, configurable: true });
  return err;
}

async function encodeBroadcast(job: LiveJobMessage, ctx: JobContext): Promise<void> {
  const { signal } = ctx;
  await ctx.emit({ type: "job.started" });
  // Beside the encode, from the run's start: the targets get the publisher's stream whatever the encode does.
  await mkdir(ctx.workDir, { recursive: true, mode: 0o700 }).catch(() => {});
  const simulcast = forwardSimulcast({
    feedUrl: job.feedUrl,
    workDir: ctx.workDir,
    signal,
    report: (change) => ctx.emit({ type: "live.simulcast", ...change }),
  });
  try {
    await encodeWithSimulcast(job, ctx, simulcast);
  } finally {
    await simulcast.stop();
  }
}

async function encodeWithSimulcast(
  job: LiveJobMessage,
  ctx: JobContext,
  simulcast: Broadcast["simulcast"],
): Promise<void> {
  const { storage, signal } = ctx;
  const probe = liveProbe(job.input);
  const planned = planLiveLadder(job.input, job.options.segmentSeconds);
  const copy = ctx.livePassthrough === true ? await copiedTopRung(job, planned, signal) : null;
  const ladder = copy ? planned.map((r) => (r.name === copy.name ? copy : r)) : planned;
  await ctx.emit({ type: "job.probed", probe, ladder });
  const broadcast: Broadcast = {
    ladder,
    copied: copy?.name ?? null,
    top: ladder.find((r) => r.kind === "VIDEO") ?? ladder[0]!,
    probe,
    targetDuration: targetDuration(segmentPlan(job.options.segmentSeconds)),
    made: {},
    reserve: null,
    simulcast,
  };
  const topSegments = (published: Map<string, RungContinuation> | null) =>
    published?.get(broadcast.top.name)?.kept.length ?? 0;
  // A full disk pauses the broadcast (docs/live.md "A full disk"): each try goes on with what the
  // last one published, as a run taking it over does, while the feed is held for the next.
  let publishedAt = Date.now();
  const patienceMs = ctx.liveFullDiskPatienceMs ?? FULL_DISK_PATIENCE_MS;
  const held = { controller: new AbortController(), feedEnded: false, done: null as Promise<void> | null };
  let restarts = 0;
  try {
    for (let tries = 0; ; tries++) {
      // A run taking the broadcast over (its earlier run's worker died), or this run's next encode
      // (its ffmpeg died, or space came back), goes on with the published playlists.
      const continues = await publishedBroadcast(storage, job.outputPrefix, ladder);
      if (continues)
        log.info("live: going on with the broadcast's published playlists", {
          jobId: job.jobId,
          encode: tries + 1,
          rungs: Object.fromEntries([...continues].map(([name, c]) => [name, c.kept.length])),
        });
      try {
        // Made by each try, as it may have been full when the run started (runs/run-job.ts).
        await mkdir(ctx.workDir, { recursive: true, mode: 0o700 });
        // Kept beside the first encode, not before it: it delays no segment. The room for the ended
        // playlists in the work dir, then the reserve in storage (docs/live.md "A full disk").
        broadcast.reserve ??= keepPlaylistRoom(ctx.workDir, ladder, job.options).then(() =>
          keepDiskReserve(storage, job.videoId, diskReserveBytes(job.options), ctx.workDir),
        );
        const { variants, masterKey, duration } = await encodeTry(job, ctx, broadcast, continues);
        await finishRecording(job, ctx, broadcast, { variants, masterKey, duration, withSource: true });
        return;
      } catch (err) {
        if (signal.aborted || isAbortError(err)) throw err;
        if (!isStorageFailure(err)) {
          if (!(err instanceof MediaError) && !(err instanceof FeedBroke)) throw err;
          // The feed's connection ended without the broadcast's end (its API instance died), or
          // ffmpeg failed: the run asks the feed, and waits for it while it is not held anywhere.
          const next = await afterFeedEnded(job.feedUrl, err, job.options.reconnectWindowSeconds, signal);
          if (next === "encode again") {
            log.warn("live: the broadcast's feed is back; a new encode goes on with the published playlists", {
              jobId: job.jobId,
              encode: tries + 2,
            });
            await clearRungDirs(ctx.workDir, ladder);
            continue;
          }
          // Its ffmpeg failed (killed, say): a new encode goes on with the published playlists, and
          // the feed keeps what was not published yet, after the publisher's stop too (the ended
          // feed's tail, then its end).
          if (next === "restart" && restarts++ < MAX_ENCODE_RESTARTS) {
            log.warn("live: the encode's ffmpeg failed; a new encode goes on with the published playlists", {
              jobId: job.jobId,
              err,
            });
            await clearRungDirs(ctx.workDir, ladder);
            continue;
          }
          // Its feed ended or cannot be read any more (its API instance died, or stopped, and its
          // publisher did not come back in time): it ends with what was published, not FAILED.
          const recorded = await publishedBroadcast(storage, job.outputPrefix, ladder);
          if (!recorded) throw err;
          log.warn("live: the feed cannot be read; the broadcast ends with what was published", {
            jobId: job.jobId,
            err,
          });
          await endWithPublished(job, ctx, broadcast, recorded, err, { diskFull: false });
          return;
        }
        const published = await publishedBroadcast(storage, job.outputPrefix, ladder).catch(() => continues);
        if (topSegments(published) > topSegments(continues)) publishedAt = Date.now();
        held.done ??= holdFeed(job.feedUrl, AbortSignal.any([held.controller.signal, signal])).then(async () => {
          if (held.controller.signal.aborted || signal.aborted) return;
          // A held feed whose connection broke (its API instance died) is not the broadcast's end:
          // the next try finds the feed gone and waits for it as any broken feed (afterFeedEnded).
          if ((await feedStatus(job.feedUrl, signal).catch(() => "not held")) === "ended") held.feedEnded = true;
          else held.done = null;
        });
        const waited = Date.now() - publishedAt;
        if (!held.feedEnded && waited < patienceMs) {
          log.warn("live: storage or the work dir is full or failing; the broadcast waits", {
            jobId: job.jobId,
            err: err instanceof Error ? err.message : String(err),
            givingUpInSeconds: Math.round((patienceMs - waited) / 1000),
          });
          await clearRungDirs(ctx.workDir, ladder);
          await pause(FULL_DISK_RETRY_MS, held.done);
          if (signal.aborted) throw abortError(signal);
          if (!held.feedEnded) continue;
        }
        // Space did not come back in time, or the publisher left meanwhile: the recording is what is published.
        const recorded = await publishedBroadcast(storage, job.outputPrefix, ladder);
        if (!recorded) throw err;
        log.warn("live: the disk stayed full; the broadcast ends with what it recorded", {
          jobId: job.jobId,
          seconds: recorded.get(broadcast.top.name)?.keptSeconds ?? 0,
        });
        await endWithPublished(job, ctx, broadcast, recorded, err, { diskFull: true });
        return;
      }
    }
  } finally {
    held.controller.abort();
    await Promise.all([held.done, broadcast.made.poster, letReserveGo(job, ctx, broadcast)]);
  }
}

/** Lets the broadcast's disk reserve go, once (the recording's end, or the run's failure). */
async function letReserveGo(job: LiveJobMessage, ctx: JobContext, broadcast: Broadcast): Promise<void> {
  const held = await broadcast.reserve;
  broadcast.reserve = Promise.resolve(false);
  if (held) await releaseDiskReserve(ctx.storage, job.videoId, ctx.workDir);
}

/**
 * Ends the broadcast as a recording of what is published (`published`), with no further encode:
 * its playlists ended, then the recording as after any end, except on a disk that stayed full
 * (`diskFull`): no source file or storyboard, which would not fit (a source file is as large as the
 * top rung) and would take back the room other writers wait for. Throws `err` when nothing
 * playable was published (no master).
 */
async function endWithPublished(
  job: LiveJobMessage,
  ctx: JobContext,
  broadcast: Broadcast,
  published: Map<string, RungContinuation>,
  err: unknown,
  { diskFull }: { diskFull: boolean },
): Promise<void> {
  // The reserve's room is what lets the playlists end on a disk that stayed full.
  await letReserveGo(job, ctx, broadcast);
  const variants = await endPublishedPlaylists(
    ctx.storage,
    job.outputPrefix,
    published,
    broadcast.targetDuration,
    ctx.workDir,
  );
  if (!variants) throw err;
  await finishRecording(job, ctx, broadcast, {
    variants,
    masterKey: hlsLayout(job.outputPrefix).masterKey,
    duration: published.get(broadcast.top.name)?.keptSeconds ?? 0,
    withSource: !diskFull,
    ...(diskFull ? { endedEarly: "disk full" as const } : {}),
  });
}

/** Whether an encode stopped at its longest length (ffmpeg's `-t`), not at its feed's end. */
function reachedLongest(status: EncoderStatus | null, encodeSeconds: number): boolean {
  return status !== null && status.outTimeSeconds >= encodeSeconds - 1;
}

/** How often one run starts its encode again after its ffmpeg failed (killed, say) before the run fails. */
const MAX_ENCODE_RESTARTS = 3;

/** A broadcast's ladder and what its tries share (its poster is made once). */
interface Broadcast {
  ladder: PlannedRung[];
  copied: string | null;
  top: PlannedRung;
  probe: ProbeResult;
  targetDuration: number;
  made: { poster?: Promise<string | null> };
  /** Whether the broadcast's disk reserve is stored (`keepDiskReserve`) and not let go yet; null before its first try. */
  reserve: Promise<boolean> | null;
  /** Its forwarding to the stream's simulcast targets, stopped before the run's end is sent. */
  simulcast: ReturnType<typeof forwardSimulcast>;
}

/**
 * One try of a broadcast's encode: the feed from where `continues` ends (null: its start) until the
 * feed ends, published as it goes; resolves with the ended playlists. Throws what stopped it, a
 * full disk included.
 */
async function encodeTry(
  job: LiveJobMessage,
  ctx: JobContext,
  broadcast: Broadcast,
  continues: Map<string, RungContinuation> | null,
): Promise<{ variants: VariantOutcome[]; masterKey: string; duration: number }> {
  const { storage, signal } = ctx;
  const { segmentSeconds, maxDurationSeconds } = job.options;
  const { ladder, copied, top, probe, made } = broadcast;
  const firstSegment = `seg_${String(continues?.get(top.name)?.firstSegment ?? 0).padStart(5, "0")}.ts`;

  const encodeController = new AbortController();
  const abortEncode = () => encodeController.abort(signal.reason);
  signal.addEventListener("abort", abortEncode, { once: true });
  const publishing: { failure?: unknown } = {};
  const publisher = createHlsPublisher({
    storage,
    workDir: ctx.workDir,
    hls: hlsLayout(job.outputPrefix),
    ladder,
    probe,
    ...(continues
      ? { kept: new Map([...continues].map(([name, c]) => [name, c.kept])), discontinuityAfterKept: true }
      : {}),
    targetDuration: broadcast.targetDuration,
    // A live list changes every segment: look at it often, not only on file events.
    intervalMs: Math.min(1000, segmentSeconds * 250),
    onPlayable: async (masterKey) => {
      await ctx.emit({ type: "video.playable", masterKey });
      made.poster ??= publishPoster(job, ctx, probe, path.join(ctx.workDir, top.name, firstSegment));
    },
    onError: (error) => {
      publishing.failure = error;
      encodeController.abort(error);
    },
  });
  // The broadcast's longest length counts what earlier runs published.
  const encodeSeconds = Math.max(1, maxDurationSeconds - (continues?.get(top.name)?.keptSeconds ?? 0));
  try {
    const encode = encodeLiveLadder({
      feedUrl: job.feedUrl,
      ladder,
      input: job.input,
      workDir: ctx.workDir,
      segmentSeconds,
      maxDurationSeconds,
      copiedRung: copied,
      ...(continues ? { continues } : {}),
      signal: encodeController.signal,
    });
    publisher.start();
    const progress = reportLiveProgress(ctx, {
      encoder: encode.status,
      published: () => {
        const rung = publisher.segments().find((s) => s.name === top.name);
        const segments = rung?.segments ?? [];
        return { segments: segments.length, seconds: segments.reduce((sum, s) => sum + s.duration, 0) };
      },
      renditions: () =>
        publisher.segments().map(({ name, segments }) => ({
          name,
          segments: segments.length,
          bitrate: newestBitrate(path.join(ctx.workDir, name), segments),
          copied: name === copied,
        })),
    });
    try {
      await inSpan(
        "encode live",
        { attributes: { "encode.rungs": ladder.map((r) => r.name).join(",") } },
        () => encode.done,
      );
      // ffmpeg takes a feed whose connection broke for its end: the API says which it was.
      if (!reachedLongest(encode.status(), encodeSeconds) && (await feedStatus(job.feedUrl, signal)) !== "ended")
        throw new FeedBroke();
    } catch (err) {
      await Promise.all([progress.stop(), publisher.stop()]);
      if ("failure" in publishing) throw publishing.failure;
      throw err;
    }
    await progress.stop();
    // The feed ended: the last segments, and every playlist ended (the recording).
    const variants = await inSpan("publish", {}, () => publisher.finish());
    if (signal.aborted) throw abortError(signal);
    const recorded = publisher.segments().find((s) => s.name === top.name)?.segments ?? [];
    const duration = recorded.reduce((sum, s) => sum + s.duration, 0);
    return { variants, masterKey: publisher.masterKey, duration };
  } finally {
    signal.removeEventListener("abort", abortEncode);
  }
}

/**
 * The ended broadcast as a recording: each rung's outcome, the recording's source file and
 * storyboard where it is kept (and `withSource`), and `job.succeeded`.
 */
async function finishRecording(
  job: LiveJobMessage,
  ctx: JobContext,
  broadcast: Broadcast,
  ended: {
    variants: VariantOutcome[];
    masterKey: string;
    duration: number;
    withSource: boolean;
    endedEarly?: "disk full";
  },
): Promise<void> {
  const { ladder } = broadcast;
  // Before the recording's source file, which may need the room, and before the end the API applies.
  await letReserveGo(job, ctx, broadcast);
  const posterKeyPublished = (await broadcast.made.poster) ?? null;
  // Every target's STOPPED goes before the run's end.
  await broadcast.simulcast.stop();
  if (ctx.signal.aborted) throw abortError(ctx.signal);
  await emitTogether(ctx, variantOutcomeEvents(job.jobId, ladder, ended.variants));
  const published = new Set(ended.variants.filter((v) => v.error === undefined).map((v) => v.name));
  // A recording not kept (the API deletes its media) needs no source file or storyboard, nor does one
  // ended on a full disk (endWithPublished).
  const { sourceKey, storyboard } =
    job.options.record && ended.withSource
      ? await inSpan("recording source", {}, () =>
          publishRecordingSource(
            job,
            ctx,
            ladder.filter((r) => published.has(r.name)),
          ),
        )
      : { sourceKey: null, storyboard: null };
  await ctx.emit({
    type: "job.succeeded",
    masterKey: ended.masterKey,
    posterKey: posterKeyPublished,
    duration: ended.duration,
    storyboard,
    ...(sourceKey ? { sourceKey } : {}),
    ...(ended.endedEarly ? { endedEarly: ended.endedEarly } : {}),
  });
}

/**
 * The ladder's top rung as the publisher's own video, when it can be (`passthroughRung`): decided
 * from the feed's first seconds (a segment's worth and a little more, read before the encode
 * joins), read only when the publisher's picture is the top rung's size. Null: every rung encoded,
 * a feed that cannot be sampled included.
 */
async function copiedTopRung(
  job: LiveJobMessage,
  ladder: PlannedRung[],
  signal: AbortSignal,
): Promise<PlannedRung | null> {
  const { segmentSeconds } = job.options;
  if (!topRungAtInputSize(ladder, job.input)) return null;
  try {
    const sample = await sampleLiveVideo(liveFeedInput(job.feedUrl), segmentSeconds + 0.2, signal);
    const copy = passthroughRung(ladder, job.input, sample, segmentSeconds);
    log.info(copy ? "live: the top rung is the publisher's video, copied" : "live: every rung is encoded", {
      jobId: job.jobId,
      profile: sample.profile,
      level: sample.level,
      keyframes: sample.packets.filter((p) => p.keyframe).map((p) => p.time),
    });
    return copy;
  } catch (err) {
    if (signal.aborted || isAbortError(err)) throw err;
    log.warn("live: the feed could not be sampled; every rung is encoded", { jobId: job.jobId, err });
    return null;
  }
}

/**
 * What makes the ended broadcast a source like an upload: its top rung and audio remuxed into one
 * MP4 (`liveRecordingKey`: no encode, the recording's own frames), which clips are cut from, and
 * its storyboard, made from the lowest video rung, decoding only its keyframes (one at every
 * segment boundary) when the storyboard's interval is at least two segments. Either is left out,
 * with a warning, when making it fails, a storage outage included: a broadcast is not run again
 * (its job has one attempt), and its recording plays without them. Only a cancel is thrown.
 */
async function publishRecordingSource(
  job: LiveJobMessage,
  ctx: JobContext,
  rungs: PlannedRung[],
): Promise<{ sourceKey: string | null; storyboard: Storyboard | null }> {
  const video = rungs.filter((r) => r.kind === "VIDEO");
  const audio = rungs.find((r) => r.kind === "AUDIO")?.name ?? null;
  if (video.length === 0) return { sourceKey: null, storyboard: null };
  const failed = (what: string) => (err: unknown) => {
    if (ctx.signal.aborted || isAbortError(err)) throw err;
    log.warn(`the live recording's ${what} failed; the recording has none`, { jobId: job.jobId, err });
    return null;
  };
  // One rendition's rungs joined and remuxed into one MP4 in the work dir (mp4-remux.ts).
  const remuxed = (plan: StaticRenditionPlan, dir: string) =>
    remuxRendition(ctx.storage, job.outputPrefix, plan, path.join(ctx.workDir, dir), ctx.signal);
  const sourceKey = await (async () => {
    const made = await remuxed({ name: "HIGHEST", videoRung: video[0]!.name, audioRung: audio }, "recording");
    const key = liveRecordingKey(job.videoId);
    await ctx.storage.upload(key, made.file, { contentType: "video/mp4", cacheControl: "private, max-age=0" });
    return key;
  })().catch(failed("source file"));
  const storyboard = await (async () => {
    const made = await remuxed({ name: "LOW", videoRung: video.at(-1)!.name, audioRung: null }, "storyboard-source");
    const { input, probe } = await probeSource(made.file, { signal: ctx.signal });
    const target = { jobId: job.jobId, layout: storyboardLayout(job.outputPrefix) };
    return publishStoryboard(target, ctx, input, probe, { keyframesOnlyFrom: 2 * job.options.segmentSeconds });
  })().catch(failed("storyboard"));
  return { sourceKey, storyboard };
}

/** The poster: a frame of the top rung's first segment, once it is out. Null when that fails. */
async function publishPoster(
  job: LiveJobMessage,
  ctx: JobContext,
  probe: ProbeResult,
  segment: string,
): Promise<string | null> {
  if (probe.width === null) return null;
  const key = posterKey(job.outputPrefix);
  const outFile = path.join(ctx.workDir, "poster.jpg");
  try {
    await extractPoster({ input: ownMediaFile(segment, "mpegts"), probe, outFile, signal: ctx.signal });
    await ctx.storage.upload(key, outFile, { contentType: "image/jpeg", cacheControl: "public, max-age=3600" });
    return key;
  } catch (err) {
    log.warn("live poster failed", { jobId: job.jobId, err });
    return null;
  }
}

/** Segments a rendition's bit rate is measured over: its newest, as viewers fetch them now. */
const BITRATE_SEGMENTS = 3;

/** Bits per second of a rendition's newest segments (their files in `dir`), or null before the first. */
function newestBitrate(dir: string, segments: readonly { uri: string; duration: number }[]): number | null {
  const newest = segments.slice(-BITRATE_SEGMENTS);
  const seconds = newest.reduce((sum, s) => sum + s.duration, 0);
  if (seconds <= 0) return null;
  let bytes = 0;
  for (const s of newest) {
    const size = statSync(path.join(dir, s.uri), { throwIfNoEntry: false })?.size;
    if (size === undefined) return null;
    bytes += size;
  }
  return Math.round((bytes * 8) / seconds);
}
