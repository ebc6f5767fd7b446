import { statSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { LiveJobMessage, ProbeResult, StaticRenditionPlan, Storyboard } from "../../src/protocol/messages.ts";
import { liveRecordingKey, posterKey, RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { inSpan } from "../../src/shared/tracing.ts";
import { log } from "../log.ts";
import { abortError, isAbortError, MediaError } from "../media/errors.ts";
import { createHlsPublisher, type HlsPublisher } from "../media/hls-publisher.ts";
import { publishedBroadcast, type RungContinuation } from "../media/live-continuation.ts";
import {
  encodeLiveLadder,
  liveFeedInput,
  liveProbe,
  passthroughRung,
  planLiveLadder,
  topRungAtInputSize,
} from "../media/live-ladder.ts";
import type { PlannedRung } from "../media/ladder.ts";
import { ownMediaFile } from "../media/media-input.ts";
import { remuxRendition } from "../media/mp4-remux.ts";
import { extractPoster } from "../media/poster.ts";
import { probeSource, sampleLiveVideo } from "../media/probe.ts";
import { segmentPlan, targetDuration } from "../media/segments.ts";
import { reportLiveProgress } from "../progress/job-progress.ts";
import { publishStoryboard } from "./transcode-storyboard.ts";
import type { JobContext } from "./types.ts";
import { emitVariantOutcomes } from "./variant-outcomes.ts";

/**
 * Encodes a live broadcast (docs/live.md): the publisher's feed, read from the API as FLV, into an
 * HLS ladder published while it arrives (`video.playable` once every rung has a segment), with
 * `live.progress` on the progress timer, until the feed ends. The playlists then end and the
 * broadcast is a VOD recording: `variant.ready` per rung and `job.succeeded`, as a transcode ends.
 */
export async function live(job: LiveJobMessage, ctx: JobContext): Promise<void> {
  try {
    await encodeBroadcast(job, ctx);
  } catch (err) {
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
  for (const form of [feedUrl, `${origin}${pathname}`, origin])
    err.message = err.message.replaceAll(form, "the broadcast's feed");
  return err;
}

/** How often one run starts its encode again after its ffmpeg failed (killed, say) before the run fails. */
const MAX_ENCODE_RESTARTS = 3;

/** What a broadcast's encodes share: the ladder planned once, and its poster once made. */
interface LivePlan {
  ladder: PlannedRung[];
  probe: ProbeResult;
  copied: string | null;
  top: PlannedRung;
  made: { poster?: Promise<string | null> };
}

async function encodeBroadcast(job: LiveJobMessage, ctx: JobContext): Promise<void> {
  const { storage, signal } = ctx;
  const { segmentSeconds } = job.options;
  const probe = liveProbe(job.input);
  await ctx.emit({ type: "job.started" });
  const planned = planLiveLadder(job.input, segmentSeconds);
  const copy = ctx.livePassthrough === true ? await copiedTopRung(job, planned, signal) : null;
  const ladder = copy ? planned.map((r) => (r.name === copy.name ? copy : r)) : planned;
  await ctx.emit({ type: "job.probed", probe, ladder });
  const top = ladder.find((r) => r.kind === "VIDEO") ?? ladder[0]!;
  const plan: LivePlan = { ladder, probe, copied: copy?.name ?? null, top, made: {} };
  let publisher: HlsPublisher;
  for (let restarts = 0; ; restarts++) {
    // A run taking the broadcast over (its earlier run's worker died), or this run's encode started
    // again, goes on with the published playlists.
    const continues = await publishedBroadcast(storage, job.outputPrefix, ladder);
    if (continues)
      log.info("live: going on with a broadcast's published playlists", {
        jobId: job.jobId,
        rungs: Object.fromEntries([...continues].map(([name, c]) => [name, c.kept.length])),
      });
    try {
      publisher = await encodeLive(job, ctx, plan, continues);
      break;
    } catch (err) {
      if (signal.aborted || isAbortError(err) || !(err instanceof MediaError)) throw err;
      if (restarts >= MAX_ENCODE_RESTARTS) {
        if (!continues) throw err;
        // Its feed cannot be read any more (a broadcast handed on by an API instance that stopped,
        // whose publisher did not come back): it ends with what was published, not FAILED.
        log.warn("live: the feed cannot be read; the broadcast ends with what was published", {
          jobId: job.jobId,
          err,
        });
        publisher = await publishedOnly(job, ctx, plan, continues);
        break;
      }
      // The feed keeps what was not published yet: a new encode loses none of it.
      log.warn("live: the encode's ffmpeg failed; a new encode goes on with the published playlists", {
        jobId: job.jobId,
        err,
      });
      await Promise.all(ladder.map((r) => rm(path.join(ctx.workDir, r.name), { recursive: true, force: true })));
    }
  }
  // The feed ended: the last segments, and every playlist ended (the recording).
  const variants = await inSpan("publish", {}, () => publisher.finish());
  const posterKeyPublished = (await plan.made.poster) ?? null;
  if (signal.aborted) throw abortError(signal);
  await emitVariantOutcomes(ctx, job.jobId, ladder, variants);
  const recorded = publisher.segments().find((s) => s.name === top.name)?.segments ?? [];
  const duration = recorded.reduce((sum, s) => sum + s.duration, 0);
  const published = new Set(variants.filter((v) => v.error === undefined).map((v) => v.name));
  // A recording not kept (the API deletes its media) needs no source file or storyboard.
  const { sourceKey, storyboard } = job.options.record
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
    masterKey: publisher.masterKey,
    posterKey: posterKeyPublished,
    duration,
    storyboard,
    ...(sourceKey ? { sourceKey } : {}),
  });
}

/**
 * A publisher of what is published already and nothing more (no encode): its finish ends the
 * playlists as they are.
 */
async function publishedOnly(
  job: LiveJobMessage,
  ctx: JobContext,
  plan: LivePlan,
  continues: Map<string, RungContinuation>,
): Promise<HlsPublisher> {
  await Promise.all(
    plan.ladder.map(async (r) => {
      const dir = path.join(ctx.workDir, r.name);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, RUNG_PLAYLIST), "#EXTM3U\n#EXT-X-ENDLIST\n");
    }),
  );
  return createHlsPublisher({
    storage: ctx.storage,
    workDir: ctx.workDir,
    outputPrefix: job.outputPrefix,
    ladder: plan.ladder,
    probe: plan.probe,
    kept: new Map([...continues].map(([name, c]) => [name, c.kept])),
    targetDuration: targetDuration(segmentPlan(job.options.segmentSeconds)),
  });
}

/**
 * One encode of the broadcast's feed, published as it is cut, after `continues` (what is published
 * already) when there is some; resolves with its publisher once the feed has ended (its last
 * segments still to publish), and throws when ffmpeg or publishing fails.
 */
async function encodeLive(
  job: LiveJobMessage,
  ctx: JobContext,
  plan: LivePlan,
  continues: Map<string, RungContinuation> | null,
): Promise<HlsPublisher> {
  const { storage, signal } = ctx;
  const { segmentSeconds, maxDurationSeconds } = job.options;
  const { ladder, probe, copied, top, made } = plan;
  const firstSegment = `seg_${String(continues?.get(top.name)?.firstSegment ?? 0).padStart(5, "0")}.ts`;
  const encodeController = new AbortController();
  const abortEncode = () => encodeController.abort(signal.reason);
  signal.addEventListener("abort", abortEncode, { once: true });
  const publishing: { failure?: unknown } = {};
  const publisher = createHlsPublisher({
    storage,
    workDir: ctx.workDir,
    outputPrefix: job.outputPrefix,
    ladder,
    probe,
    ...(continues
      ? { kept: new Map([...continues].map(([name, c]) => [name, c.kept])), discontinuityAfterKept: true }
      : {}),
    targetDuration: targetDuration(segmentPlan(segmentSeconds)),
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
  try {
    const encode = encodeLiveLadder({
      feedUrl: job.feedUrl,
      ladder,
      input: job.input,
      workDir: ctx.workDir,
      segmentSeconds,
      // The broadcast's longest length counts what earlier encodes published.
      maxDurationSeconds: Math.max(1, maxDurationSeconds - (continues?.get(top.name)?.keptSeconds ?? 0)),
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
    } catch (err) {
      await Promise.all([progress.stop(), publisher.stop()]);
      if ("failure" in publishing) throw publishing.failure;
      throw err;
    }
    await progress.stop();
    return publisher;
  } finally {
    signal.removeEventListener("abort", abortEncode);
  }
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
    return publishStoryboard(job, ctx, input, probe, { keyframesOnlyFrom: 2 * job.options.segmentSeconds });
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
