import { stat } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { MediaError } from "./errors.ts";
import { runFfmpeg } from "./ffmpeg-process.ts";
import { decodeLimitOptions, inputSeekOptions, mediaInputOptions, type ProbedInput } from "./media-input.ts";

export interface ExtractPosterArgs {
  input: ProbedInput;
  probe: ProbeResult;
  /** Where to write the JPEG; ffmpeg runs in its directory. */
  outFile: string;
  signal?: AbortSignal;
}

/** Which frame a poster shows and its size: the first at or after `at` seconds, scaled to width × height. */
export interface PosterPlan {
  at: number;
  width: number;
  height: number;
}

/**
 * The poster of a source with pictures: its frame at min(1 s, duration / 3) (the first, for a source
 * of a frame or two), at most 720 px high, even dimensions.
 */
export function planPoster(probe: ProbeResult): PosterPlan {
  if (probe.width === null || probe.height === null) {
    throw new MediaError("An audio-only source has no frame to make a poster of", { retryable: false });
  }
  const height = Math.max(2, Math.floor(Math.min(720, probe.height) / 2) * 2);
  const scaledWidth = Math.round((probe.width * height) / probe.height / 2) * 2;
  const width = Math.max(2, Math.min(Math.floor(probe.width / 2) * 2, scaledWidth));
  // A source of a frame or two has nothing after its first frame to show.
  const at = probe.duration < 0.5 ? 0 : Math.min(1, probe.duration / 3);
  return { at, width, height };
}

/**
 * The poster's branch of a run: of the frames it is handed, the first at or after `plan.at` (in
 * the run's own time: from the source's start, or a clip's), scaled. It ends after that frame, so
 * a ladder's run (`EncodeLadderArgs.poster`) goes on with its other outputs alone. The frame is
 * picked from decoded frames, not by seeking: a seek into a stream whose next keyframe is past the
 * end (an MPEG-TS upload with one keyframe) decodes nothing.
 */
export function posterFilter(plan: PosterPlan): string {
  return `trim=start=${plan.at.toFixed(6)},trim=end_frame=1,scale=${plan.width}:${plan.height}:flags=bicubic,setsar=1`;
}

/**
 * The poster's output: one JPEG, written under a temporary name and renamed (`atomic_writing`), so
 * that a file found at `outFile` is whole while the run that writes it goes on.
 */
export function posterOutput(outFile: string, map: string): { target: string; options: string[] } {
  return {
    target: outFile,
    options: ["-map", map, "-q:v", "3", "-f", "image2", "-update", "1", "-atomic_writing", "1"],
  };
}

/**
 * Writes the poster (`planPoster`) in an ffmpeg run of its own, for a run that does not decode the
 * source from its start (a resumed or clipped run; a live recording): the frame and bytes a
 * ladder's run that makes it writes.
 */
export async function extractPoster(args: ExtractPosterArgs): Promise<void> {
  const { probe, outFile } = args;
  const plan = planPoster(probe);
  const commandLine = await runFfmpeg({
    inputs: [
      {
        source: args.input.url,
        // A clip is read from its start; the poster's time counts from there.
        options: [...mediaInputOptions(args.input), ...decodeLimitOptions(), ...inputSeekOptions(args.input, 0)],
      },
    ],
    filterGraph: `[0:V:0]${posterFilter(plan)}[poster]`,
    outputs: [posterOutput(path.basename(outFile), "[poster]")],
    cwd: path.dirname(outFile),
    signal: args.signal,
  });
  if (!(await posterWritten(outFile))) {
    const message = `ffmpeg wrote no poster frame at ${plan.at.toFixed(3)} s`;
    throw new MediaError(message, { retryable: false, command: commandLine });
  }
}

/** Whether a poster file is there and not empty. */
export async function posterWritten(outFile: string): Promise<boolean> {
  const written = await stat(outFile).catch(() => null);
  return written !== null && written.size > 0;
}
