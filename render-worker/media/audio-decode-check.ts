import os from "node:os";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { MediaError } from "./errors.ts";
import { runFfmpeg } from "./ffmpeg-process.ts";
import { mediaInputOptions, type ProbedInput } from "./media-input.ts";

/** How much of an audio-only source is decoded before it is accepted. */
const DECODE_CHECK_SECONDS = 30;

/**
 * Decodes the first DECODE_CHECK_SECONDS of an audio-only source's audio and throws a
 * non-retryable MediaError when ffmpeg cannot: a stream whose header is fine but whose packets
 * are not audio (ffmpeg gives up when most packets fail) would otherwise fail every attempt of
 * the encode. Decoding audio costs next to nothing beside encoding it.
 */
export async function checkAudioDecodes(input: ProbedInput, probe: ProbeResult, signal?: AbortSignal): Promise<void> {
  try {
    await runFfmpeg({
      inputs: [{ source: input.url, options: mediaInputOptions(input) }],
      outputs: [{ target: "-", options: ["-map", "0:a:0", "-t", String(DECODE_CHECK_SECONDS), "-f", "null"] }],
      cwd: os.tmpdir(),
      signal,
    });
  } catch (err) {
    // A process that could not start or was stopped says nothing about the file.
    if (!(err instanceof MediaError) || err.exitCode === null || err.exitCode === undefined) throw err;
    // The decoder's own reason; ffmpeg's last lines only say that nothing was written.
    const decodeError = /Error while decoding stream #[\d:]+: (.+)/.exec(err.stderrTail ?? "")?.[1];
    const reason = decodeError ?? err.message.replace(/^ffmpeg exited with code \d+: /, "");
    throw new MediaError(`The file's audio stream (${probe.audioCodec}) does not decode: ${reason}`, {
      retryable: false,
      command: err.command,
      stderrTail: err.stderrTail,
      exitCode: err.exitCode,
      cause: err,
    });
  }
}
