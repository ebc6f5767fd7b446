import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { JobEventBody, ProbeResult, Rung, TranscodeJobMessage } from "../../src/protocol/messages.ts";
import { estimateJobMemoryBytes } from "../admission.ts";
import { log } from "../log.ts";
import { abortError, isAbortError, MediaError } from "../media/errors.ts";
import { encodeLadder, extractPoster, type LadderEncode } from "../media/ffmpeg.ts";
import { createHlsPublisher, type HlsPublisher } from "../media/hls-publisher.ts";
import { planLadder } from "../media/ladder.ts";
import type { ProbedInput } from "../media/media-input.ts";
import { probeSource } from "../media/probe.ts";
import { completedEncode, ENCODE_MANIFEST, encodeManifestText, planResume, type EncodeManifest, type ResumePoint } from "../media/resume.ts";
import { storageUnavailable } from "../../src/protocol/storage-errors.ts";
import { sampleProgress } from "./progress-sampler.ts";
import type { JobContext } from "./types.ts";

/**
 * Turns a stored source into an HLS ladder under `{outputPrefix}/hls/`, publishing segments and
 * playlists while ffmpeg runs. Emits started, probed, progress, playable, variant.ready and
 * succeeded; failures are thrown (a MediaError carries the command and stderr tail). A run after
 * one that died or was handed back keeps the segments every rung published and encodes the rest;
 * `options.rungs` encodes only those rungs (retryVariant).
 */
export async function transcode(job: TranscodeJobMessage, ctx: JobContext): Promise<void> {
  const { storage, signal } = ctx;
  if (await reportCompletedEncode(job, ctx)) return;
  const { input, probe } = await probeSource(await storage.inputFor(job.sourceKey), { signal, maxDurationSeconds: job.options.maxDurationSeconds });
  const ladder = planLadder(probe, { maxHeight: job.options.maxHeight });
  const releaseMemory = ctx.reserveMemory?.(estimateJobMemoryBytes(probe)) ?? (() => {});
  try {
    // Only once admitted: a delivery handed back for lack of memory never started a run, so the
    // job's runs say when it really ran.
    await ctx.emit({ type: "job.started" });
    await encodeAndPublish(job, ctx, input, probe, ladder);
  } finally {
    releaseMemory();
  }
}

async function encodeAndPublish(job: TranscodeJobMessage, ctx: JobContext, input: ProbedInput, probe: ProbeResult, ladder: Rung[]): Promise<void> {
  const { storage, signal } = ctx;
  const rungs = rungsToEncode(ladder, job.options.rungs);
  const hlsPrefix = `${job.outputPrefix}/hls`;
  const manifest: EncodeManifest = { jobId: job.jobId, ladder, segmentSeconds: job.options.segmentSeconds, encoder: ctx.encoder ?? "libx264" };
  const plan = await planResume({ storage, hlsPrefix, manifest, rungs, duration: probe.duration, fps: probe.fps });
  const resume: ResumePoint | null = plan.resume;
  if (plan.resume) {
    log.info("resuming: keeping the segments an earlier run published", { jobId: job.jobId, segments: plan.resume.segments, fromSeconds: plan.resume.fromSeconds });
  } else {
    log.info("encoding from the start", { jobId: job.jobId, reason: plan.reason });
  }
  await ctx.emit({ type: "job.probed", probe, ladder, ...(resume ? { resumed: { segments: resume.segments, fromSeconds: resume.fromSeconds } } : {}) });

  // A retried rung keeps the video's poster.
  const posterKey = job.options.rungs ? null : await publishPoster(job, ctx, input, probe);
  if (signal.aborted) throw abortError(signal);
  // Written once every rung of this run has published, so it never vouches for playlists an
  // earlier job left (a run that dies before then is followed by a full encode).
  const publishManifest = async (complete?: EncodeManifest["complete"]) => {
    const file = path.join(ctx.workDir, ENCODE_MANIFEST);
    await writeFile(file, encodeManifestText(complete ? { ...manifest, complete } : manifest));
    await storage.upload(`${hlsPrefix}/${ENCODE_MANIFEST}`, file, { contentType: "application/json", cacheControl: "no-store" });
  };

  // Stops ffmpeg when the job is canceled or when publishing fails.
  const encodeController = new AbortController();
  const abortEncode = () => encodeController.abort(signal.reason);
  signal.addEventListener("abort", abortEncode, { once: true });
  const publishing: { failure?: unknown } = {};
  const publisher = createHlsPublisher({
    storage,
    workDir: ctx.workDir,
    outputPrefix: job.outputPrefix,
    ladder: await masterLadder(storage, hlsPrefix, ladder, rungs),
    rungs,
    kept: resume?.kept,
    probe,
    onPlayable: async (masterKey) => {
      await publishManifest(undefined);
      await ctx.emit({ type: "video.playable", masterKey });
    },
    onError: (error) => {
      publishing.failure = error;
      encodeController.abort(error);
    },
  });

  try {
    const encode = encodeLadder({
      input,
      probe,
      ladder: rungs,
      workDir: ctx.workDir,
      segmentSeconds: job.options.segmentSeconds,
      signal: encodeController.signal,
      encoder: ctx.encoder ?? "libx264",
      ...(resume ? { resumeFrom: { segments: resume.segments, fromSeconds: resume.fromSeconds } } : {}),
    });
    publisher.start();
    const progress = reportProgress(ctx, probe, encode, publisher);
    try {
      await encode.done;
    } catch (err) {
      await Promise.all([progress.stop(), publisher.stop()]);
      if ("failure" in publishing) throw publishing.failure;
      throw err;
    }
    await progress.stop();
    const variants = await publisher.finish();
    if (signal.aborted) throw abortError(signal);
    await publishManifest({
      masterKey: publisher.masterKey,
      posterKey,
      variants: variants.map((v) => ({ name: v.name, playlistKey: v.playlistKey, segmentCount: v.segmentCount, ...(v.error !== undefined ? { error: v.error } : {}) })),
    });
    for (const v of variants) {
      const rung = ladder.find((r) => r.name === v.name)!;
      if (v.error !== undefined) {
        log.warn("a rung failed alone", { jobId: job.jobId, rung: v.name, error: v.error });
        await ctx.emit({ type: "variant.failed", name: v.name, rung, error: v.error });
      } else {
        await ctx.emit({ type: "variant.ready", name: v.name, rung, playlistKey: v.playlistKey, segmentCount: v.segmentCount });
      }
    }
    await ctx.emit({ type: "job.succeeded", masterKey: publisher.masterKey, posterKey });
  } finally {
    signal.removeEventListener("abort", abortEncode);
  }
}

/**
 * A delivery of a job whose run already published everything (a transport delivered a finished
 * job again) does no work: it reports what that run published, so the job finishes even if the
 * first run's events were lost, and says it did nothing (`alreadyDone`).
 */
async function reportCompletedEncode(job: TranscodeJobMessage, ctx: JobContext): Promise<boolean> {
  const done = await completedEncode(ctx.storage, `${job.outputPrefix}/hls`, job.jobId);
  if (!done) return false;
  log.info("the job's output is complete in storage: acknowledged without work", { jobId: job.jobId, attempt: job.attempt });
  for (const v of done.complete.variants) {
    const rung = done.ladder.find((r) => r.name === v.name);
    if (!rung) continue;
    if (v.error !== undefined) await ctx.emit({ type: "variant.failed", name: v.name, rung, error: v.error });
    else await ctx.emit({ type: "variant.ready", name: v.name, rung, playlistKey: v.playlistKey, segmentCount: v.segmentCount });
  }
  await ctx.emit({ type: "job.succeeded", masterKey: done.complete.masterKey, posterKey: done.complete.posterKey, alreadyDone: true });
  return true;
}

/**
 * What the master playlist lists: the whole ladder, or when only some rungs are encoded, those
 * and the other rungs whose published playlists are complete (a rung that failed alone stays out).
 */
async function masterLadder(storage: JobContext["storage"], hlsPrefix: string, ladder: Rung[], rungs: Rung[]): Promise<Rung[]> {
  if (rungs.length === ladder.length) return ladder;
  const listed: Rung[] = [];
  for (const rung of ladder) {
    const complete = rungs.includes(rung) || (await storage.readText(`${hlsPrefix}/${rung.name}/index.m3u8`))?.includes("#EXT-X-ENDLIST");
    if (complete) listed.push(rung);
  }
  return listed;
}

/** The planned rungs named in `names` (every rung when absent); a name the plan lacks fails the job. */
function rungsToEncode(ladder: Rung[], names: string[] | undefined): Rung[] {
  if (!names) return ladder;
  const missing = names.filter((n) => !ladder.some((r) => r.name === n));
  if (missing.length > 0) {
    throw new MediaError(`The ladder planned for this source has no rung ${missing.join(", ")} (it has ${ladder.map((r) => r.name).join(", ")})`, { retryable: false });
  }
  return ladder.filter((r) => names.includes(r.name));
}

/** Uploads `{outputPrefix}/thumbnails/poster.jpg`; a video without a poster is still a video. */
async function publishPoster(job: TranscodeJobMessage, ctx: JobContext, input: ProbedInput, probe: ProbeResult): Promise<string | null> {
  const key = `${job.outputPrefix}/thumbnails/poster.jpg`;
  const outFile = path.join(ctx.workDir, "poster.jpg");
  try {
    await extractPoster({ input, probe, outFile, signal: ctx.signal });
    await ctx.storage.upload(key, outFile, { contentType: "image/jpeg", cacheControl: "public, max-age=3600" });
    return key;
  } catch (err) {
    if (isAbortError(err)) throw err;
    // A full or failing storage fails the attempt; the retry makes the poster.
    const unavailable = storageUnavailable(err);
    if (unavailable) throw unavailable;
    log.warn("poster failed; the video will have none", { jobId: job.jobId, err });
    return null;
  }
}

type ProgressBody = Extract<JobEventBody, { type: "job.progress" }>;

/** Samples encoder and publisher on a timer and emits `job.progress` when a figure changed. */
function reportProgress(ctx: JobContext, probe: ProbeResult, encode: LadderEncode, publisher: HlsPublisher): { stop(): Promise<void> } {
  return sampleProgress(ctx, (): ProgressBody => {
    const stats = encode.stats();
    const variants = publisher.variants().map((v) => ({ name: v.name, progress: round(v.progress, 3), segmentCount: v.segmentCount }));
    const fraction = stats.outTimeSeconds !== null ? stats.outTimeSeconds / probe.duration : Math.min(...variants.map((v) => v.progress));
    const eta = stats.outTimeSeconds !== null && stats.speed ? Math.max(0, (probe.duration - stats.outTimeSeconds) / stats.speed) : null;
    return {
      type: "job.progress",
      progress: round(Math.min(1, Math.max(0, fraction)), 3),
      fps: stats.fps === null ? null : round(stats.fps, 1),
      speed: stats.speed === null ? null : round(stats.speed, 2),
      etaSeconds: eta === null ? null : Math.round(eta),
      variants,
    };
  });
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
