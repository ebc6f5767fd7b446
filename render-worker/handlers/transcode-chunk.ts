import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import type { TranscodeChunkJobMessage } from "../../src/protocol/transcode-messages.ts";
import { hlsLayout } from "../../src/protocol/storage-layout.ts";
import { inSpan } from "../../src/shared/tracing.ts";
import { estimateJobMemoryBytes } from "../admission.ts";
import { log } from "../log.ts";
import { chunkRange } from "../media/chunks.ts";
import { encodeLadder, runEncodeSettings } from "../media/encode-ladder.ts";
import { abortError, MediaError } from "../media/errors.ts";
import { createHlsPublisher } from "../media/hls-publisher.ts";
import { mediaInputAt, type ProbedInput, probedInput } from "../media/media-input.ts";
import { prepareMediaFilters } from "../media/media-filters.ts";
import { probeSource } from "../media/probe.ts";
import { segmentPlan, targetDuration } from "../media/segments.ts";
import { observeLadderEncode } from "../metrics.ts";
import { reportTranscodeProgress } from "../progress/job-progress.ts";
import type { JobContext } from "./types.ts";

/**
 * Encodes one chunk of a split transcode (`job.split`): its segments of the split run's video rungs, as one
 * whole-source process writes them (chunks.ts), published write-once with no playlist: the API lists them from
 * `chunk.succeeded`. A run again encodes the chunk again; a published segment with another cut fails it.
 */
export async function transcodeChunk(job: TranscodeChunkJobMessage, ctx: JobContext): Promise<void> {
  const audio = job.ladder.filter((r) => r.kind !== "VIDEO").map((r) => r.name);
  if (audio.length > 0) {
    throw new MediaError(`A chunk encodes video rungs only, not ${audio.join(", ")}`, { retryable: false });
  }
  const source = await ctx.storage.inputFor(job.sourceKey);
  const { input, probe } =
    probedBySplitRun(job, source) ??
    (await inSpan("probe", {}, () =>
      probeSource(source, { signal: ctx.signal, maxDurationSeconds: job.options.maxDurationSeconds }),
    ));
  const releaseMemory = ctx.reserveMemory?.(estimateJobMemoryBytes(probe)) ?? (() => {});
  try {
    // Only once admitted, as a transcode: a delivery handed back for lack of memory never started a run.
    await ctx.emit({ type: "job.started" });
    await encodeAndPublishChunk(job, ctx, input, probe);
  } finally {
    releaseMemory();
  }
}

/**
 * The source as the split run probed it (`job.source`), opened as the container it found: no probe
 * of its own. Null where the message has none (a split run before it) or names a container this
 * worker's upload whitelist does not hold: the chunk probes the source as any run does.
 */
function probedBySplitRun(
  job: TranscodeChunkJobMessage,
  source: string,
): { input: ProbedInput; probe: ProbeResult } | null {
  if (!job.source) return null;
  const { probe, format, startTime } = job.source;
  const input = probedInput(mediaInputAt(source), format);
  if (!input) return null;
  return { input: startTime === undefined ? input : { ...input, startTime }, probe };
}

async function encodeAndPublishChunk(
  job: TranscodeChunkJobMessage,
  ctx: JobContext,
  input: ProbedInput,
  probe: ProbeResult,
): Promise<void> {
  const { storage, signal, workDir } = ctx;
  const { chunk, ladder } = job;
  const segments = segmentPlan(job.options.segmentSeconds);
  const segmentFormat = job.options.segmentFormat ?? "TS";
  const encoder = ctx.encoder ?? "libx264";
  const chunkSeconds = chunk.toSeconds - chunk.fromSeconds;
  // The watermark as the split run applies it; a chunk has no audio, so no loudness.
  const { sourceFilters } = job.options.watermark
    ? await inSpan("prepare media filters", {}, () =>
        prepareMediaFilters({
          options: { watermark: job.options.watermark },
          storage,
          workDir,
          input,
          probe,
          signal,
          earlier: undefined,
          onMeasuring: () => {},
        }),
      )
    : {};
  if (signal.aborted) throw abortError(signal);

  // Stops ffmpeg when the job is canceled or when publishing fails.
  const encodeController = new AbortController();
  const abortEncode = () => encodeController.abort(signal.reason);
  signal.addEventListener("abort", abortEncode, { once: true });
  const publishing: { failure?: unknown } = {};
  const publisher = createHlsPublisher({
    storage,
    workDir,
    hls: hlsLayout(job.outputPrefix),
    ladder,
    probe,
    segmentFormat,
    contentProtection: job.options.contentProtection,
    targetDuration: targetDuration(segments),
    segmentsOnly: true,
    progressSeconds: () => chunkSeconds,
    onError: (error) => {
      publishing.failure = error;
      encodeController.abort(error);
    },
  });
  try {
    const encodeStartedAt = Date.now();
    const encode = encodeLadder({
      input,
      probe,
      ladder,
      workDir,
      ...runEncodeSettings(ctx, segments, segmentFormat, encodeController.signal),
      ...(sourceFilters ? { sourceFilters } : {}),
      ...chunkRange(chunk),
    });
    publisher.start();
    const progress = reportTranscodeProgress(ctx, {
      durationSeconds: chunkSeconds,
      fromSeconds: chunk.fromSeconds,
      sourceFps: probe.fps,
      encoder: encode.status,
      variants: publisher.variants,
    });
    try {
      const attributes = {
        "encode.encoder": encoder,
        "encode.rungs": ladder.map((r) => r.name).join(","),
        "encode.chunk": chunk.index,
      };
      await inSpan("encode", { attributes }, () => encode.done);
    } catch (err) {
      await Promise.all([progress.stop(), publisher.stop()]);
      if ("failure" in publishing) throw publishing.failure;
      throw err;
    }
    await progress.stop();
    observeLadderEncode({
      rungs: ladder,
      encoder,
      mediaSeconds: chunkSeconds,
      wallSeconds: (Date.now() - encodeStartedAt) / 1000,
      fps: probe.fps,
    });
    const variants = await inSpan("publish", {}, () => publisher.finish());
    if (signal.aborted) throw abortError(signal);
    const published = publisher.segments();
    // Every rung's segments or none: the API lists a chunk once, for every rung.
    const failed = variants.flatMap((v, i) =>
      v.error !== undefined ? [v.error] : published[i]!.segments.length === 0 ? [`${v.name} wrote no segment`] : [],
    );
    if (failed.length > 0) throw new Error(`Chunk ${chunk.index} was not published whole: ${failed.join("; ")}`);
    log.info("chunk published", { jobId: job.jobId, chunk: chunk.index, segments: published[0]!.segments.length });
    await ctx.emit({ type: "chunk.succeeded", chunk: chunk.index, variants: published });
  } finally {
    signal.removeEventListener("abort", abortEncode);
  }
}
