import { stat } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult } from "../../src/protocol/messages.ts";
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

/** Writes one JPEG frame from min(1 s, duration / 3), at most 720 px high, even dimensions. */
export async function extractPoster(args: ExtractPosterArgs): Promise<void> {
  const { probe, outFile } = args;
  if (probe.width === null || probe.height === null) {
    throw new MediaError("An audio-only source has no frame to make a poster of", { retryable: false });
  }
  const height = Math.max(2, Math.floor(Math.min(720, probe.height) / 2) * 2);
  const scaledWidth = Math.round((probe.width * height) / probe.height / 2) * 2;
  const width = Math.max(2, Math.min(Math.floor(probe.width / 2) * 2, scaledWidth));
  // A source of a frame or two has nothing after its first frame to seek to.
  const at = probe.duration < 0.5 ? 0 : Math.min(1, probe.duration / 3);
  const commandLine = await runFfmpeg({
    inputs: [
      {
        source: args.input.url,
        options: [...mediaInputOptions(args.input), ...decodeLimitOptions(), ...inputSeekOptions(args.input, at)],
      },
    ],
    outputs: [
      {
        target: path.basename(outFile),
        options: [
          "-map",
          "0:V:0",
          "-frames:v",
          "1",
          "-vf",
          `scale=${width}:${height}:flags=bicubic,setsar=1`,
          "-q:v",
          "3",
          "-f",
          "image2",
          "-update",
          "1",
        ],
      },
    ],
    cwd: path.dirname(outFile),
    signal: args.signal,
  });
  const written = await stat(outFile).catch(() => null);
  if (!written || written.size === 0) {
    const message = `ffmpeg wrote no poster frame at ${at.toFixed(3)} s`;
    throw new MediaError(message, { retryable: false, command: commandLine });
  }
}
