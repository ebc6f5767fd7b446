/**
 * What a thumbnail or animated-preview request may ask for. Query values are hostile: only plain
 * decimal numbers are read, times must fall inside the video, widths are even and bounded. Times
 * are rounded to a tenth of a second so that near-identical requests share one cached image.
 */

const THUMBNAIL_WIDTH = { min: 16, max: 1920, default: 320 } as const;
/**
 * Animated previews cost CPU and storage in proportion to width × frames (a 10 s, 640 px GIF of
 * grainy footage is ~18 MB and seconds of CPU), so both are bounded: at most MAX_ANIMATED_SECONDS,
 * ANIMATED_WIDTH.max pixels wide, and width × seconds at most MAX_ANIMATED_WIDTH_SECONDS
 * (320 px for 5 s, 480 px for 3.3 s). The defaults (240 px, 3 s) are well inside.
 */
export const ANIMATED_WIDTH = { min: 16, max: 480, default: 240 } as const;
/** The longest animated preview, in seconds. */
export const MAX_ANIMATED_SECONDS = 5;
/** The most width × seconds an animated preview may have. */
export const MAX_ANIMATED_WIDTH_SECONDS = 1600;
/** Frames per second of an animated preview. */
export const ANIMATED_FPS = 10;

export type AnimatedFormat = "webp" | "gif";

export interface ThumbnailRequest {
  kind: "thumbnail";
  /** Milliseconds, a multiple of 100. */
  timeMs: number;
  width: number;
}

export interface AnimatedRequest {
  kind: "animated";
  format: AnimatedFormat;
  startMs: number;
  endMs: number;
  width: number;
}

export type ImageRequest = ThumbnailRequest | AnimatedRequest;
export type Parsed<T> = T | { problem: string };

const DECIMAL = /^\d{1,7}(\.\d{1,6})?$/;

/** A time in seconds as milliseconds rounded to 100 ms, or a problem. */
function timeParam(params: URLSearchParams, name: string, fallback?: number): Parsed<number> {
  const raw = params.get(name);
  if (raw === null && fallback !== undefined) return fallback;
  if (raw === null || !DECIMAL.test(raw)) return { problem: `${name} must be a number of seconds, e.g. ${name}=12.5` };
  return Math.round(Number(raw) * 10) * 100;
}

function widthParam(params: URLSearchParams, bounds: { min: number; max: number; default: number }): Parsed<number> {
  const raw = params.get("width");
  if (raw === null) return bounds.default;
  const width = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(width >= bounds.min && width <= bounds.max) || width % 2 !== 0) {
    return { problem: `width must be an even number of pixels from ${bounds.min} to ${bounds.max}` };
  }
  return width;
}

const isProblem = (v: unknown): v is { problem: string } => typeof v === "object" && v !== null && "problem" in v;

/** `?time=&width=` of a thumbnail of a video `durationSeconds` long. */
export function parseThumbnailRequest(params: URLSearchParams, durationSeconds: number): Parsed<ThumbnailRequest> {
  const timeMs = timeParam(params, "time");
  if (isProblem(timeMs)) return timeMs;
  const durationMs = Math.floor(durationSeconds * 1000);
  if (timeMs > durationMs + 50) return { problem: `time must be within the video (0 to ${durationSeconds} s)` };
  const width = widthParam(params, THUMBNAIL_WIDTH);
  if (isProblem(width)) return width;
  return { kind: "thumbnail", timeMs: Math.min(timeMs, durationMs), width };
}

/** `?start=&end=&width=` of an animated preview; `end` defaults to `start` + 3 s (within the video). */
export function parseAnimatedRequest(
  params: URLSearchParams,
  format: AnimatedFormat,
  durationSeconds: number,
): Parsed<AnimatedRequest> {
  const durationMs = Math.floor(durationSeconds * 1000);
  const startMs = timeParam(params, "start", 0);
  if (isProblem(startMs)) return startMs;
  const endMs = timeParam(params, "end", Math.min(durationMs, startMs + 3000));
  if (isProblem(endMs)) return endMs;
  if (startMs >= durationMs) return { problem: `start must be within the video (0 to ${durationSeconds} s)` };
  if (endMs > durationMs + 50) return { problem: `end must be within the video (0 to ${durationSeconds} s)` };
  if (endMs <= startMs) return { problem: "end must be after start" };
  if (endMs - startMs > MAX_ANIMATED_SECONDS * 1000) {
    return { problem: `an animated preview lasts at most ${MAX_ANIMATED_SECONDS} s` };
  }
  const width = widthParam(params, ANIMATED_WIDTH);
  if (isProblem(width)) return width;
  const seconds = (Math.min(endMs, durationMs) - startMs) / 1000;
  if (width * seconds > MAX_ANIMATED_WIDTH_SECONDS) {
    const longest = Math.floor((MAX_ANIMATED_WIDTH_SECONDS / width) * 10) / 10;
    return {
      problem: `an animated preview ${width} px wide lasts at most ${longest} s (width × seconds at most ${MAX_ANIMATED_WIDTH_SECONDS})`,
    };
  }
  return { kind: "animated", format, startMs, endMs: Math.min(endMs, durationMs), width };
}
