import { writeFile } from "node:fs/promises";
import path from "node:path";
import { runFfmpeg } from "../media/ffmpeg-process.ts";
import { AUDIO_ENCODER_OPTIONS } from "../media/ladder.ts";
import { decodeLimitOptions, mediaInputOptions, type ProbedInput } from "../media/media-input.ts";

/** An input of a composed render: a probed file, or one read in a loop for as long as the graph needs. */
export interface GraphInput {
  input: ProbedInput;
  loop: boolean;
}

export interface RenderGraphArgs {
  inputs: GraphInput[];
  /** A `-filter_complex` graph whose outputs are `[video]` and `[audio]` labels named below. */
  filterGraph: string;
  videoLabel: string;
  audioLabel: string;
  /** Output file, relative to `workDir`; an H.264 + AAC mp4. */
  outFile: string;
  durationSeconds: number;
  /** ffmpeg runs here; the graph's `textfile=` paths are relative to it. */
  workDir: string;
  signal: AbortSignal;
  /** Called with the media time ffmpeg has written so far. */
  onProgress?: (outTimeSeconds: number) => void;
}

/** The frame rate of every composed part. */
export const COMPOSED_FPS = 25;

/** Output settings every composed part shares, so the parts can be joined without re-encoding. */
const COMPOSED_OUTPUT_OPTIONS = [
  "-c:v",
  "libx264",
  "-preset",
  "veryfast",
  "-crf",
  "20",
  "-pix_fmt",
  "yuv420p",
  "-r",
  String(COMPOSED_FPS),
  ...AUDIO_ENCODER_OPTIONS,
];

/** Renders a filter graph (text, shapes, generated sources, the given inputs) to an mp4. */
export async function renderFilterGraph(args: RenderGraphArgs): Promise<void> {
  const onProgress = args.onProgress;
  await runFfmpeg({
    inputs: args.inputs.map(({ input, loop }) => ({
      source: input.url,
      options: [...mediaInputOptions(input), ...(loop ? ["-stream_loop", "-1"] : []), ...decodeLimitOptions()],
    })),
    filterGraph: args.filterGraph,
    outputs: [
      {
        target: args.outFile,
        options: [
          "-map",
          `[${args.videoLabel}]`,
          "-map",
          `[${args.audioLabel}]`,
          ...COMPOSED_OUTPUT_OPTIONS,
          "-t",
          args.durationSeconds.toFixed(3),
          "-movflags",
          "+faststart",
        ],
      },
    ],
    cwd: args.workDir,
    signal: args.signal,
    ...(onProgress ? { onStatus: (status) => onProgress(status.outTimeSeconds) } : {}),
  });
}

/**
 * Joins mp4 parts rendered with the same settings (see `renderFilterGraph`) into one mp4 without
 * re-encoding, with ffmpeg's concat demuxer. Paths are relative to `workDir`.
 */
export async function concatParts(args: {
  parts: string[];
  outFile: string;
  workDir: string;
  signal: AbortSignal;
}): Promise<void> {
  const listFile = "concat-list.txt";
  // The list's own quoting: a part name is ours (`part-000.mp4`), but never trust a name with a quote.
  if (args.parts.some((p) => /['\n\\]/.test(p))) throw new Error("concat parts must have plain file names");
  await writeFile(path.join(args.workDir, listFile), args.parts.map((p) => `file '${p}'\n`).join(""));
  await runFfmpeg({
    // Only the parts may be opened: the list and the mp4s it names, from files in the work dir.
    inputs: [
      { source: listFile, options: ["-protocol_whitelist", "file", "-format_whitelist", "concat,mov", "-f", "concat"] },
    ],
    outputs: [
      { target: args.outFile, options: ["-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-movflags", "+faststart"] },
    ],
    cwd: args.workDir,
    signal: args.signal,
  });
}
