import type { LoudnessTarget } from "../../src/protocol/media-filters.ts";
import { runFfmpeg, type FfmpegStatus } from "./ffmpeg-process.ts";
import { MediaError } from "./errors.ts";
import { mediaInputOptions, type ProbedInput } from "./media-input.ts";

/** What loudnorm's measuring pass found, as its second pass takes it (`measured_*`, `offset`). */
export interface LoudnessMeasurement {
  integratedLufs: number;
  truePeakDb: number;
  lra: number;
  thresholdLufs: number;
  offsetLu: number;
}

/**
 * loudnorm's first pass over the source's first audio stream alone (`-vn`: video packets are read
 * but not decoded). Null when the audio is silence (no loudness to measure: it is left as it is).
 * `onStatus` gets ffmpeg's position, for the step's progress.
 */
export async function measureLoudness(args: {
  input: ProbedInput;
  target: LoudnessTarget;
  workDir: string;
  signal: AbortSignal;
  onStatus?: (status: FfmpegStatus) => void;
}): Promise<LoudnessMeasurement | null> {
  const lines: string[] = [];
  const { integratedLufs: I, truePeakDb: TP, lra: LRA } = args.target;
  await runFfmpeg({
    inputs: [{ source: args.input.url, options: mediaInputOptions(args.input) }],
    outputs: [
      {
        target: "-",
        options: [
          "-map",
          "0:a:0",
          "-vn",
          "-sn",
          "-dn",
          "-af",
          `loudnorm=I=${I}:TP=${TP}:LRA=${LRA}:print_format=json`,
          "-f",
          "null",
        ],
      },
    ],
    cwd: args.workDir,
    signal: args.signal,
    onStderr: (line) => {
      // The report is the last JSON object loudnorm prints; keep only what can be part of it.
      if (/^\s*[{}"]/.test(line)) lines.push(line.trim());
    },
    ...(args.onStatus ? { onStatus: args.onStatus } : {}),
  });
  const start = lines.lastIndexOf("{");
  const report = start >= 0 ? parseReport(lines.slice(start).join("")) : null;
  if (!report) throw new MediaError("loudnorm's measuring pass printed no measurement", { retryable: true });
  const measured = {
    integratedLufs: Number(report.input_i),
    truePeakDb: Number(report.input_tp),
    lra: Number(report.input_lra),
    thresholdLufs: Number(report.input_thresh),
    offsetLu: Number(report.target_offset),
  };
  return Object.values(measured).every(Number.isFinite) ? measured : null;
}

function parseReport(text: string): Record<string, string> | null {
  try {
    const end = text.indexOf("}");
    return JSON.parse(text.slice(0, end + 1)) as Record<string, string>;
  } catch {
    return null;
  }
}

/**
 * loudnorm's second pass: one gain for the whole programme (`linear`), from the measurement, so a
 * run resumed part-way applies the same gain as the run before it. loudnorm itself falls back to
 * its dynamic mode when one gain cannot meet the true-peak or range target. It works at 192 kHz:
 * the audio goes back to the ladder's 48 kHz after it.
 */
export function loudnormFilter(target: LoudnessTarget, m: LoudnessMeasurement): string {
  // Clamped to loudnorm's option ranges: a measurement outside them would fail the encode.
  const clamp = (v: number, min: number, max: number) => Math.min(max, Math.max(min, v)).toFixed(2);
  return [
    `loudnorm=I=${target.integratedLufs}:TP=${target.truePeakDb}:LRA=${target.lra}`,
    `measured_I=${clamp(m.integratedLufs, -99, 0)}:measured_TP=${clamp(m.truePeakDb, -99, 99)}`,
    `measured_LRA=${clamp(m.lra, 0, 99)}:measured_thresh=${clamp(m.thresholdLufs, -99, 0)}`,
    `offset=${clamp(m.offsetLu, -99, 99)}:linear=true:print_format=none,aresample=48000`,
  ].join(":");
}
