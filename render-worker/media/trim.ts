import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import type { TranscodeOptions } from "../../src/protocol/transcode-messages.ts";
import { MediaError } from "./errors.ts";
import type { ProbedInput } from "./media-input.ts";

/** A clip shorter than this would be a frame or none. */
const MIN_CLIP_SECONDS = 0.1;

/**
 * The probed source as a clip's transcode sees it: the input reads only `trim` (its end no later
 * than the source's) and the probe lasts the clip's length. Without a trim, the source as it is.
 * A trim that starts at or after the source's end fails the job: no retry changes the source.
 */
export function trimProbedSource(
  probed: { input: ProbedInput; probe: ProbeResult },
  trim: TranscodeOptions["trim"],
): { input: ProbedInput; probe: ProbeResult } {
  if (!trim) return probed;
  const end = Math.min(trim.end, probed.probe.duration);
  if (end - trim.start < MIN_CLIP_SECONDS) {
    const message =
      `The clip (${trim.start} s to ${trim.end} s) is outside the source, which lasts ` +
      `${probed.probe.duration.toFixed(3)} s`;
    throw new MediaError(message, { retryable: false });
  }
  // The first frame kept is the first that starts at or after `trim.start`; seeking to its start
  // exactly keeps ffmpeg from repeating it to fill the gap before it (a constant-rate output), and
  // the clip lasts from there to the end of the last frame that starts before `end`.
  const onFrame = (t: number) => (probed.probe.fps > 0 ? Math.ceil(t * probed.probe.fps - 1e-6) / probed.probe.fps : t);
  const start = Number(onFrame(trim.start).toFixed(6));
  return {
    input: { ...probed.input, trim: { start, end } },
    probe: { ...probed.probe, duration: Number((Math.min(onFrame(end), probed.probe.duration) - start).toFixed(6)) },
  };
}
