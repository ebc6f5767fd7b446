import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { ChunkSource, ProbeResult, Rung, SegmentFormat, Storyboard } from "../../src/protocol/media-facts.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { ENCODE_MANIFEST, type OutputLayout, outputLayout } from "../../src/protocol/storage-layout.ts";
import { inSpan } from "../../src/shared/tracing.ts";
import { estimateJobMemoryBytes } from "../admission.ts";
import { log } from "../log.ts";
import { type Chunk, encodeFirstChunk, planChunks } from "../media/chunks.ts";
import { type EncodeLadderArgs, encodeLadder, runEncodeSettings } from "../media/encode-ladder.ts";
import { prepareMediaFilters } from "../media/media-filters.ts";
import { abortError, MediaError } from "../media/errors.ts";
import { createHlsPublisher, type HlsPublisher } from "../media/hls-publisher.ts";
import { planLadder, type PlannedRung } from "../media/ladder.ts";
import type { ProbedInput } from "../media/media-input.ts";
import { probeSource } from "../media/probe.ts";
import { trimProbedSource } from "../media/trim.ts";
import { type SegmentPlan, segmentPlan, targetDuration } from "../media/segments.ts";
import {
  completedEncode,
  earlierMediaFilters,
  encodeManifestText,
  planResume,
  readEarlierEncode,
  type EarlierEncode,
  type EncodeManifest,
  type ResumePoint,
} from "../media/resume.ts";
import { observeLadderEncode } from "../metrics.ts";
import { reportStepProgress, reportTranscodeProgress } from "../progress/job-progress.ts";
import { posterInEncode, publishPoster } from "./transcode-poster.ts";
import { publishStoryboard, storyboardInEncode } from "./transcode-storyboard.ts";
import { emitTogether, type JobContext } from "./types.ts";
import { variantOutcomeEvents } from "./variant-outcomes.ts";

/**
 * Turns a stored source into an HLS ladder under `{outputPrefix}/hls/`, publishing while ffmpeg runs; a run
 * after one that died keeps what every rung published, and `options.rungs` encodes only those (retryVariant).
 * With `options.chunking` a long source is split: this run encodes the first chunk and the audio, and
 * `transcode_chunk` jobs the rest (docs/chunked-transcoding.md).
 */
export async function transcode(job: TranscodeJobMessage, ctx: JobContext): Promise<void> {
  const { storage, signal } = ctx;
  const layout = outputLayout(job.outputPrefix);
  // What an earlier run left is read while the source is found and probed: on a cloud store each is
  // a round trip, on the way to the first frame. A run whose encode is complete stops the probe
  // and reports without the source (which may be gone); the probe's failure counts only after that.
  const stopProbe = new AbortController();
  const probeRun = storage.inputFor(job.sourceKey).then((source) =>
    inSpan("probe", {}, () =>
      probeSource(source, {
        signal: AbortSignal.any([signal, stopProbe.signal]),
        maxDurationSeconds: job.options.maxDurationSeconds,
      }),
    ),
  );
  probeRun.catch(() => {});
  const output: RunOutput = { layout, earlier: await readEarlierEncode(storage, layout.hls) };
  const completed = await reportCompletedEncode(job, ctx, output.earlier).catch((err: unknown) => {
    stopProbe.abort();
    throw err;
  });
  if (completed) {
    stopProbe.abort();
    return;
  }
  const probed = await probeRun;
  const { input, probe } = trimProbedSource(probed, job.options.trim);
  // The rungs' BANDWIDTH depends on the segments' length and format: the job's, as encoded below.
  const ladder = planLadder(probe, job.options);
  const releaseMemory = ctx.reserveMemory?.(estimateJobMemoryBytes(probe)) ?? (() => {});
  try {
    // Only once admitted: a delivery handed back for lack of memory never started a run, so the
    // job's runs say when it really ran.
    await ctx.emit({ type: "job.started" });
    const chunks = probed.frameRateVaries ? null : splitChunks(job, probe);
    await encodeAndPublish(job, ctx, output, input, probe, ladder, chunks);
  } finally {
    releaseMemory();
  }
}

/** Where a run publishes (its HLS, storyboard, poster), and what an earlier run left there: read once, at the start. */
interface RunOutput {
  layout: OutputLayout;
  earlier: EarlierEncode;
}

/** How a run encodes, decided before it starts: its rungs, its packaging, where it resumes. */
interface RunPlan {
  rungs: PlannedRung[];
  segments: SegmentPlan;
  segmentFormat: SegmentFormat;
  manifest: EncodeManifest;
  resume: ResumePoint | null;
  resumed: { segments: number; fromSeconds: number } | null;
  sourceFilters: EncodeLadderArgs["sourceFilters"] | undefined;
}

/**
 * Plans the run: the rungs it encodes, its media filters (a measuring pass), its encode manifest and
 * where it resumes; emits `job.probed`.
 */
async function planRun(
  job: TranscodeJobMessage,
  ctx: JobContext,
  output: RunOutput,
  input: ProbedInput,
  probe: ProbeResult,
  ladder: PlannedRung[],
  firstChunk: Chunk | null,
): Promise<RunPlan> {
  const { storage } = ctx;
  const { earlier } = output;
  const { hls } = output.layout;
  const rungs = rungsToEncode(ladder, job.options.rungs);
  const encoder = ctx.encoder ?? "libx264";
  const segments = segmentPlan(job.options.segmentSeconds);
  const { applied, sourceFilters } = await mediaFiltersOf(job, ctx, earlier, input, probe);
  const segmentFormat = job.options.segmentFormat ?? "TS";
  const manifest: EncodeManifest = {
    jobId: job.jobId,
    ladder,
    ...segments,
    encoder,
    ...(applied ? { finishing: applied } : {}),
    ...(segmentFormat === "FMP4" ? { segmentFormat } : {}),
    ...trimOf(input),
  };
  const { duration, fps } = probe;
  // A split run starts from zero: what an earlier run of it published is kept by the write-once rules.
  const plan = firstChunk
    ? { resume: null, reason: "a split run encodes its first chunk whole" }
    : await planResume({ storage, hls, earlier, manifest, rungs, duration, fps });
  const resume: ResumePoint | null = plan.resume;
  const resumed = resume ? { segments: resume.segments, fromSeconds: resume.fromSeconds } : null;
  if (plan.resume) {
    log.info("resuming: keeping the segments an earlier run published", { jobId: job.jobId, ...resumed });
  } else {
    log.info("encoding from the start", { jobId: job.jobId, reason: plan.reason });
  }
  await ctx.emit({ type: "job.probed", probe, ladder, ...(resumed ? { resumed } : {}) });
  return { rungs, segments, segmentFormat, manifest, resume, resumed, sourceFilters };
}

async function encodeAndPublish(
  job: TranscodeJobMessage,
  ctx: JobContext,
  output: RunOutput,
  input: ProbedInput,
  probe: ProbeResult,
  ladder: PlannedRung[],
  /** The chunks of a split run (it encodes the first and the audio); null: the whole ladder. */
  chunks: Chunk[] | null,
): Promise<void> {
  const { storage, signal } = ctx;
  const { hls } = output.layout;
  const videoRungs = ladder.filter((r) => r.kind === "VIDEO");
  const firstChunk = chunks?.[0] ?? null;
  const encoder = ctx.encoder ?? "libx264";
  const run = await planRun(job, ctx, output, input, probe, ladder, firstChunk);
  const { rungs, segments, segmentFormat, manifest, resume, resumed, sourceFilters } = run;
  // The chunks are queued once the video is playable (or the run ends first): until then no other
  // run competes with the first segments for the source, the storage or the API.
  let splitSent = false;
  const sendSplit = async () => {
    if (!chunks || splitSent) return;
    splitSent = true;
    await ctx.emit({ type: "job.split", chunks, ladder: videoRungs, source: splitSource(input, probe) });
  };

  if (signal.aborted) throw abortError(signal);
  // Written once every rung of this run has published, so it never vouches for playlists an
  // earlier job left (a run that dies before then is followed by a full encode).
  const publishManifest = async (complete?: EncodeManifest["complete"]) => {
    const file = path.join(ctx.workDir, ENCODE_MANIFEST);
    await writeFile(file, encodeManifestText(complete ? { ...manifest, complete } : manifest));
    await storage.upload(hls.encodeManifestKey, file, { contentType: "application/json", cacheControl: "no-store" });
  };

  // Stops ffmpeg when the job is canceled or when publishing fails.
  const encodeController = new AbortController();
  const abortEncode = () => encodeController.abort(signal.reason);
  signal.addEventListener("abort", abortEncode, { once: true });
  const publishing: { failure?: unknown } = {};
  const images = await runImages(job, ctx, output.layout, input, probe, {
    fromStart: !job.options.rungs && !resumed && !input.trim,
    split: firstChunk !== null,
  });
  const publisher = createHlsPublisher({
    storage,
    workDir: ctx.workDir,
    hls,
    ladder: await masterLadder(storage, hls, ladder, rungs),
    rungs,
    kept: resume?.kept,
    probe,
    segmentFormat,
    contentProtection: job.options.contentProtection,
    targetDuration: targetDuration(segments),
    // Each rung's progress counts over the whole source: before the API knows of the split, it
    // shows the run's progress as a whole run's.
    ...(firstChunk ? { openRungs: videoRungs.map((r) => r.name) } : {}),
    onPlayable: (masterKey) =>
      inSpan("publish playable", {}, async () => {
        await publishManifest(undefined);
        await ctx.emit({ type: "video.playable", masterKey });
        await sendSplit();
        images.startPoster();
      }),
    onError: (error) => {
      publishing.failure = error;
      encodeController.abort(error);
    },
  });

  try {
    const encodeStartedAt = Date.now();
    const encodeArgs: EncodeLadderArgs = {
      input,
      probe,
      ladder: rungs,
      workDir: ctx.workDir,
      ...runEncodeSettings(ctx, segments, segmentFormat, encodeController.signal),
      ...(resumed ? { resumeFrom: resumed } : {}),
      ...(sourceFilters ? { sourceFilters } : {}),
      ...images.inEncode,
    };
    const encode = firstChunk
      ? encodeFirstChunk(encodeArgs, firstChunk, (error) => encodeController.abort(error))
      : encodeLadder(encodeArgs);
    images.encodeStarted(encode.done);
    publisher.start();
    const progress = reportTranscodeProgress(ctx, {
      durationSeconds: firstChunk?.toSeconds ?? probe.duration,
      sourceFps: probe.fps,
      encoder: encode.status,
      variants: publisher.variants,
    });
    try {
      const attributes = { "encode.encoder": encoder, "encode.rungs": rungs.map((r) => r.name).join(",") };
      await inSpan("encode", { attributes }, () => encode.done);
    } catch (err) {
      await Promise.all([progress.stop(), publisher.stop(), images.settled()]);
      if ("failure" in publishing) throw publishing.failure;
      throw err;
    }
    const encodeWallSeconds = (Date.now() - encodeStartedAt) / 1000;
    await progress.stop();
    images.encodeEnded();
    // The rest of every rung: its last segments, and its playlist ended.
    let variants: Awaited<ReturnType<typeof publisher.finish>>;
    try {
      variants = await inSpan("publish", {}, () => publisher.finish());
    } finally {
      await images.settled();
    }
    // Counted once its output is out: a run whose publishing failed is retried, and counted then.
    observeLadderEncode({
      rungs: firstChunk ? videoRungs : rungs,
      encoder,
      mediaSeconds: firstChunk?.toSeconds ?? probe.duration - (resumed?.fromSeconds ?? 0),
      wallSeconds: encodeWallSeconds,
      fps: probe.fps,
    });
    const made = await images.published();
    if (signal.aborted) throw abortError(signal);
    if (chunks) {
      await sendSplit();
      await reportFirstChunk(job, ctx, ladder, chunks.length, variants, publisher.segments(), publisher.bitRates(), {
        masterKey: publisher.masterKey,
        ...made,
      });
      return;
    }
    await publishManifest({
      masterKey: publisher.masterKey,
      ...made,
      variants: variants.map((v) => ({
        name: v.name,
        playlistKey: v.playlistKey,
        segmentCount: v.segmentCount,
        ...(v.error !== undefined ? { error: v.error } : {}),
        ...(v.bitRates ? { bitRates: v.bitRates } : {}),
      })),
    });
    await emitTogether(ctx, [
      ...variantOutcomeEvents(job.jobId, ladder, variants),
      { type: "job.succeeded", masterKey: publisher.masterKey, ...made },
    ]);
  } finally {
    signal.removeEventListener("abort", abortEncode);
  }
}

/** A run's poster and storyboard, beside its encode (runImages). */
interface RunImages {
  /** What the ladder's own decode makes of them (`EncodeLadderArgs.poster`, `.storyboard`). */
  inEncode: Pick<EncodeLadderArgs, "poster" | "storyboard">;
  /** Publishes the poster (and a storyboard made apart) once the video is playable; once only. */
  startPoster(): void;
  encodeStarted(done: Promise<void>): void;
  /** After the encode succeeded: publishes the storyboard it made. */
  encodeEnded(): void;
  /** Waits for their uploads, whatever they did (a failure is reported where `published` awaits it). */
  settled(): Promise<void>;
  /** Their keys once published, a run too short to have been playable making its poster now. */
  published(): Promise<{ posterKey: string | null; storyboard?: Storyboard | null }>;
}

/**
 * The poster and the storyboard are published once the video is playable, beside the encode: they
 * are not on the way to the first frame. A retried rung keeps the video's poster and storyboard; an
 * audio-only source has neither. A run that encodes from the source's start makes the poster in the
 * ladder's own decode (its frame early: published at playable), and one that encodes the whole
 * source the storyboard's sheets too (by the end: published then); a resumed or trimmed run decodes
 * the source for them apart, a split run for its storyboard.
 */
async function runImages(
  job: TranscodeJobMessage,
  ctx: JobContext,
  layout: OutputLayout,
  input: ProbedInput,
  probe: ProbeResult,
  { fromStart, split }: { fromStart: boolean; split: boolean },
): Promise<RunImages> {
  const storyboardMade = fromStart && !split ? await storyboardInEncode(ctx, probe) : null;
  const posterMade = fromStart && probe.width !== null ? posterInEncode(ctx, probe) : null;
  /** Whether the encode ran to its end; set once it has started. */
  let encodeSucceeded: Promise<boolean> = Promise.resolve(false);
  let poster: Promise<string | null> | null = null;
  let storyboard: Promise<Storyboard | null> | null = null;
  const startStoryboard = (options: Parameters<typeof publishStoryboard>[4] = {}) => {
    storyboard = publishStoryboard({ jobId: job.jobId, layout: layout.storyboard }, ctx, input, probe, options);
    // Awaited before the job ends; until then a failure must not count as unhandled.
    storyboard.catch(() => {});
  };
  const startPoster = () => {
    if (job.options.rungs || poster || probe.width === null) return;
    const made = posterMade ? { ...posterMade, encodeSucceeded } : undefined;
    poster = publishPoster({ jobId: job.jobId, key: layout.posterKey }, ctx, input, probe, made);
    poster.catch(() => {});
    if (!storyboardMade) startStoryboard();
  };
  return {
    inEncode: {
      ...(storyboardMade ? { storyboard: storyboardMade } : {}),
      ...(posterMade ? { poster: posterMade } : {}),
    },
    startPoster,
    encodeStarted(done) {
      encodeSucceeded = done.then(
        () => true,
        () => false,
      );
    },
    encodeEnded() {
      if (storyboardMade) startStoryboard({ madeInEncode: storyboardMade });
    },
    settled: async () => {
      await Promise.all([settled(poster), settled(storyboard)]);
    },
    async published() {
      startPoster();
      const posterKey = await (poster ?? Promise.resolve(null));
      return { posterKey, ...(storyboard ? { storyboard: await storyboard } : {}) };
    },
  };
}

/**
 * The chunks a run splits its job into, or null when it encodes the whole ladder itself: a job the
 * API lets chunk, of the whole ladder (not a retryVariant) and the whole source (not a clip), of a
 * source with video long enough for two chunks (and, the caller checks, an even frame rate).
 */
function splitChunks(job: TranscodeJobMessage, probe: ProbeResult): Chunk[] | null {
  const { chunking, rungs, trim, segmentSeconds } = job.options;
  if (!chunking || rungs || trim || probe.width === null) return null;
  const chunks = planChunks(segmentPlan(segmentSeconds), probe.duration, chunking);
  return chunks.length >= 2 ? chunks : null;
}

/**
 * The end of a split run: its audio rungs are complete, its video rungs hold the first chunk,
 * whose segments the API lists before every later chunk's. The encode manifest is not marked
 * complete: the video is not, and a redelivered split run must encode again, not report done.
 */
async function reportFirstChunk(
  job: TranscodeJobMessage,
  ctx: JobContext,
  ladder: PlannedRung[],
  /** How many chunks it split the job into (its `job.split`): the API waits for that split to judge the video. */
  chunkCount: number,
  variants: Awaited<ReturnType<HlsPublisher["finish"]>>,
  segments: ReturnType<HlsPublisher["segments"]>,
  bitRates: ReturnType<HlsPublisher["bitRates"]>,
  made: { masterKey: string; posterKey: string | null; storyboard?: Storyboard | null },
): Promise<void> {
  // Every failed rung now, and the audio (published whole); the video rungs are READY once the API
  // has listed every chunk.
  const reported = variants
    .filter((v) => v.error !== undefined || ladder.find((r) => r.name === v.name)?.kind === "AUDIO")
    .map((v) => {
      const rates = bitRates.get(v.name);
      return rates ? { ...v, bitRates: rates } : v;
    });
  const audioBitRates = ladder.flatMap((rung) => {
    const rates = rung.kind === "AUDIO" ? bitRates.get(rung.name) : undefined;
    return rates ? [{ name: rung.name, ...rates }] : [];
  });
  const firstChunk = {
    // What its playlists said: the API's later versions keep it (Safari stops on a change).
    targetDuration: targetDuration(segmentPlan(job.options.segmentSeconds)),
    variants: variants
      .filter((v) => v.error === undefined && ladder.find((r) => r.name === v.name)?.kind === "VIDEO")
      .map((v) => segments.find((s) => s.name === v.name)!),
    ...(audioBitRates.length > 0 ? { audioBitRates } : {}),
    chunkCount,
  };
  await emitTogether(ctx, [
    ...variantOutcomeEvents(job.jobId, ladder, reported),
    { type: "job.succeeded", ...made, firstChunk },
  ]);
}

/**
 * The job's loudness normalization and watermark, prepared before the encode: the measuring pass
 * is a step of the job's progress, and a run after an earlier run of the job reuses its measurement.
 */
async function mediaFiltersOf(
  job: TranscodeJobMessage,
  ctx: JobContext,
  earlierEncode: EarlierEncode,
  input: ProbedInput,
  probe: ProbeResult,
) {
  const { loudness, watermark } = job.options;
  if (!loudness && !watermark) return {};
  const earlier = loudness ? earlierMediaFilters(earlierEncode, job.jobId) : undefined;
  const measuring =
    loudness && probe.hasAudio && !earlier?.loudness ? reportStepProgress(ctx, "Measuring loudness") : null;
  try {
    const prepared = await inSpan("prepare media filters", {}, () =>
      prepareMediaFilters({
        options: job.options,
        storage: ctx.storage,
        workDir: ctx.workDir,
        input,
        probe,
        signal: ctx.signal,
        earlier,
        onMeasuring: (fraction) => measuring?.update(fraction),
      }),
    );
    measuring?.update(1);
    return prepared;
  } finally {
    await measuring?.stop();
  }
}

/**
 * A delivery of a job whose run already published everything (a transport delivered a finished
 * job again) does no work: it reports what that run published, so the job finishes even if the
 * first run's events were lost, and says it did nothing (`alreadyDone`).
 */
async function reportCompletedEncode(
  job: TranscodeJobMessage,
  ctx: JobContext,
  earlier: EarlierEncode,
): Promise<boolean> {
  const done = completedEncode(earlier, job.jobId);
  if (!done) return false;
  const { jobId, attempt } = job;
  log.info("the job's output is complete in storage: acknowledged without work", { jobId, attempt });
  const { masterKey, posterKey: poster, storyboard } = done.complete;
  const made = storyboard === undefined ? {} : { storyboard };
  await emitTogether(ctx, [
    ...variantOutcomeEvents(jobId, done.ladder, done.complete.variants),
    { type: "job.succeeded", masterKey, posterKey: poster, ...made, alreadyDone: true },
  ]);
  return true;
}

/**
 * What the master playlist lists: the whole ladder, or when only some rungs are encoded, those
 * and the other rungs whose published playlists are complete (a rung that failed alone stays out).
 */
async function masterLadder(
  storage: JobContext["storage"],
  hls: OutputLayout["hls"],
  ladder: Rung[],
  rungs: Rung[],
): Promise<Rung[]> {
  if (rungs.length === ladder.length) return ladder;
  const listed: Rung[] = [];
  for (const rung of ladder) {
    const complete =
      rungs.includes(rung) || (await storage.readText(hls.playlistKey(rung.name)))?.includes("#EXT-X-ENDLIST");
    if (complete) listed.push(rung);
  }
  return listed;
}

/** The planned rungs named in `names` (every rung when absent); a name the plan lacks fails the job. */
function rungsToEncode(ladder: PlannedRung[], names: string[] | undefined): PlannedRung[] {
  if (!names) return ladder;
  const missing = names.filter((n) => !ladder.some((r) => r.name === n));
  if (missing.length > 0) {
    const planned = ladder.map((r) => r.name).join(", ");
    const message = `The ladder planned for this source has no rung ${missing.join(", ")} (it has ${planned})`;
    throw new MediaError(message, { retryable: false });
  }
  return ladder.filter((r) => names.includes(r.name));
}

/** The source as this split run probed it, for its chunks (`job.split.source`): they probe it no more. */
function splitSource(input: ProbedInput, probe: ProbeResult): ChunkSource {
  return { probe, format: input.format, ...(input.startTime === undefined ? {} : { startTime: input.startTime }) };
}

/** A clip's trim, for the manifest: a run resumes only the same range of the source. */
function trimOf(input: ProbedInput): Pick<EncodeManifest, "trim"> {
  return input.trim ? { trim: input.trim } : {};
}

/** Waits for a promise to settle, whatever its outcome (a failure is reported where it is awaited). */
async function settled(promise: Promise<unknown> | null): Promise<void> {
  await promise?.catch(() => {});
}
