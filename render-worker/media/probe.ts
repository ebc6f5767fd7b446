import { stat } from "node:fs/promises";
import type { ProbeResult } from "../../src/protocol/messages.ts";
import { MediaError } from "./errors.ts";
import { ffprobeJson, type FfprobeJson, type FfprobeJsonStream } from "./ffmpeg.ts";

/** Frames larger than this on either side are refused: x264 levels and players stop there. */
export const MAX_FRAME_SIDE = 8192;

/**
 * Probes a source (path or URL) for what the ladder needs. Width and height are display
 * dimensions: rotation and non-square pixels applied. `rotation` is clockwise degrees, 0, 90,
 * 180 or 270. Throws a non-retryable MediaError with a readable message when the file is not a
 * video this worker can encode.
 */
export async function probeSource(input: string, opts: { signal?: AbortSignal } = {}): Promise<ProbeResult> {
  const isUrl = /^[a-z][a-z0-9+.-]*:/i.test(input);
  if (!isUrl) {
    const file = await stat(input);
    if (file.size === 0) throw notAVideo("the file is empty (0 bytes)");
  }
  let data: FfprobeJson;
  try {
    data = await ffprobeJson(input, { signal: opts.signal });
  } catch (err) {
    if (err instanceof MediaError && !err.retryable) {
      // Reading a URL can fail for reasons that pass: an expired signed URL, a network hiccup.
      const unreachable = isUrl && /Server returned|Connection|I\/O error|Network|resolve|timed out/i.test(err.message);
      const message = unreachable ? `Could not read the source: ${err.message}` : `The file is not a video ffmpeg can read: ${err.message}`;
      throw new MediaError(message, {
        retryable: unreachable,
        command: err.command,
        stderrTail: err.stderrTail,
        exitCode: err.exitCode,
        cause: err,
      });
    }
    throw err;
  }
  return probeResultFrom(data);
}

/** Reads a ProbeResult from ffprobe's JSON; the rules of `probeSource` without the process. */
export function probeResultFrom(data: FfprobeJson): ProbeResult {
  const streams = data.streams ?? [];
  // tty reads any text file as ANSI art: a "video" nobody uploads on purpose.
  if (data.format?.format_name === "tty") throw notAVideo("it is a text file");
  const video = streams.find((s) => s.codec_type === "video" && s.disposition?.attached_pic !== 1);
  const audio = streams.find((s) => s.codec_type === "audio");
  if (!video) {
    const what = audio ? "it has only audio, and audio-only sources are not supported yet" : "it has no audio or video streams";
    throw new MediaError(`The file has no video stream: ${what}`, { retryable: false });
  }
  if (!video.width || !video.height) {
    throw new MediaError("The file's video stream has no frame size; the file may be truncated", { retryable: false });
  }

  const duration = firstPositive(data.format?.duration, video.duration);
  if (duration === null) {
    throw new MediaError("The file has no duration: it may be truncated, empty or a still image", { retryable: false });
  }

  const rotation = clockwiseRotation(video);
  const sar = ratio(video.sample_aspect_ratio, ":");
  const storedWidth = sar !== null && sar > 0 ? Math.round(video.width * sar) : video.width;
  const sideways = rotation === 90 || rotation === 270;
  const width = sideways ? video.height : storedWidth;
  const height = sideways ? storedWidth : video.height;
  if (width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE) {
    throw new MediaError(`The video's frame size ${width}x${height} exceeds the ${MAX_FRAME_SIDE} px limit`, { retryable: false });
  }

  const fps = ratio(video.avg_frame_rate, "/") || ratio(video.r_frame_rate, "/") || 0;
  return {
    duration,
    width,
    height,
    fps: Math.round(fps * 1000) / 1000,
    rotation,
    hasAudio: audio !== undefined,
    videoCodec: video.codec_name ?? "unknown",
    audioCodec: audio?.codec_name ?? null,
  };
}

/**
 * The display matrix's rotation is counterclockwise (ffprobe's convention); the legacy `rotate`
 * tag is clockwise. Both become clockwise degrees, snapped to quarter turns.
 */
function clockwiseRotation(video: FfprobeJsonStream): number {
  const matrix = video.side_data_list?.find((d) => d.side_data_type === "Display Matrix" && typeof d.rotation === "number");
  const degrees = matrix ? -(matrix.rotation as number) : Number(video.tags?.rotate ?? 0);
  if (!Number.isFinite(degrees)) return 0;
  return (((Math.round(degrees / 90) * 90) % 360) + 360) % 360;
}

function notAVideo(reason: string): MediaError {
  return new MediaError(`The file is not a video ffmpeg can read: ${reason}`, { retryable: false });
}

function firstPositive(...values: Array<string | undefined>): number | null {
  for (const value of values) {
    const n = Number(value);
    if (value !== undefined && Number.isFinite(n) && n > 0) return n;
  }
  return null;
}

/** `30000/1001` → 29.97; null for `0/0`, `N/A` and the like. */
function ratio(value: string | undefined, separator: string): number | null {
  const [num, den] = (value ?? "").split(separator).map(Number);
  if (!Number.isFinite(num) || !Number.isFinite(den) || den === 0 || num === 0) return null;
  return num / den;
}
