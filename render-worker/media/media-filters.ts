import path from "node:path";
import type { LoudnessTarget, Watermark } from "../../src/protocol/media-filters.ts";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import type { TranscodeOptions } from "../../src/protocol/transcode-messages.ts";
import type { WorkerStorage } from "../storage/types.ts";
import type { EncodeLadderArgs } from "./encode-ladder.ts";
import type { FfmpegStatus } from "./ffmpeg-process.ts";
import { loudnormFilter, measureLoudness, type LoudnessMeasurement } from "./loudness.ts";
import type { ProbedInput } from "./media-input.ts";
import { watermarkGraph, watermarkInput } from "./watermark.ts";

/**
 * What a run applies besides the ladder, as its encode manifest records it: a resumed run of the
 * job reuses the measurement (so its audio gets the same gain) and keeps the segments only when
 * this is the same.
 */
export interface AppliedMediaFilters {
  /** `measured` null: the audio is silence and is left as it is. */
  loudness?: { target: LoudnessTarget; measured: LoudnessMeasurement | null };
  watermark?: Watermark;
}

/**
 * Prepares the job's loudness normalization and watermark: measures the audio (unless `earlier`, a
 * run of the same job, measured it for the same target) and fetches the watermark image into the
 * work dir. Returns nothing to apply when the job asks for neither (or for loudness of a silent
 * source without audio).
 */
export async function prepareMediaFilters(args: {
  options: Pick<TranscodeOptions, "loudness" | "watermark">;
  storage: WorkerStorage;
  workDir: string;
  input: ProbedInput;
  probe: ProbeResult;
  signal: AbortSignal;
  earlier: AppliedMediaFilters | undefined;
  /** The measuring pass's position, 0..1: it is a step of the job's progress. */
  onMeasuring: (fraction: number) => void;
}): Promise<{ applied?: AppliedMediaFilters; sourceFilters?: EncodeLadderArgs["sourceFilters"] }> {
  const { options, probe } = args;
  const applied: AppliedMediaFilters = {};
  const sourceFilters: NonNullable<EncodeLadderArgs["sourceFilters"]> = { inputs: [] };
  // An audio-only source has no picture to draw on: its watermark is not applied.
  const { width, height } = probe;
  const picture = width !== null && height !== null ? { width, height } : null;
  const image = options.watermark && picture ? fetchWatermark(args, options.watermark) : null;
  if (options.loudness && probe.hasAudio) {
    const target = options.loudness;
    const reused = args.earlier?.loudness;
    const measured =
      reused && JSON.stringify(reused.target) === JSON.stringify(target)
        ? reused.measured
        : await measureLoudness({
            input: args.input,
            target,
            workDir: args.workDir,
            signal: args.signal,
            onStatus: (s: FfmpegStatus) => args.onMeasuring(probe.duration > 0 ? s.outTimeSeconds / probe.duration : 0),
          });
    applied.loudness = { target, measured };
    if (measured) sourceFilters.audio = loudnormFilter(target, measured);
  }
  if (options.watermark && image && picture) {
    sourceFilters.inputs.push(watermarkInput(await image, options.watermark));
    sourceFilters.video = watermarkGraph(options.watermark, picture);
    applied.watermark = options.watermark;
  }
  if (!applied.loudness && !applied.watermark) return {};
  return { applied, sourceFilters };
}

/** Downloads the image beside the measuring pass; a failure is reported where it is awaited. */
function fetchWatermark(args: { storage: WorkerStorage; workDir: string }, watermark: Watermark): Promise<string> {
  const file = path.join(args.workDir, `watermark.${watermark.format}`);
  const download = args.storage.download(watermark.key, file).then(() => file);
  download.catch(() => {});
  return download;
}
