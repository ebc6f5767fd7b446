import path from "node:path";
import { MediaError } from "./errors.ts";

/**
 * The demuxers a tenant's file may be opened with: containers that hold their media themselves
 * and name no other file. Playlists and lists (hls, dash, concat, image2 patterns, tee…) are not
 * here: they make ffmpeg open the files or URLs they list, another tenant's media among them.
 * `yuv4mpegpipe` (y4m) is a header and raw frames, kept because editing tools export it.
 */
const UPLOAD_FORMATS = [
  "mov",
  "matroska",
  "mpegts",
  "avi",
  "flv",
  "ogg",
  "wav",
  "mp3",
  "aac",
  "flac",
  "yuv4mpegpipe",
] as const;
export type UploadFormat = (typeof UPLOAD_FORMATS)[number];

const UPLOAD_FORMAT_NAMES = "MP4/MOV, Matroska/WebM, MPEG-TS, AVI, FLV, Ogg, WAV, MP3, AAC, FLAC or Y4M";

/** How ffmpeg opens one input: where, over which protocols, and (once probed) as which container. */
export interface MediaInput {
  /** `file:` and an absolute path, or an http(s) URL. */
  url: string;
  /** Exactly the protocols the location needs; never one that opens another location (concat, subfile, crypto…). */
  protocols: string;
  format: UploadFormat | null;
}

/** The part of a source a clip encodes, in seconds of the source. */
interface SourceTrim {
  start: number;
  end: number;
}

/**
 * An input whose container the probe found and checked: ffmpeg opens it as exactly that. With
 * `trim`, only that part of it is read (a clip): its time 0 is the trim's start.
 */
export type ProbedInput = MediaInput & {
  format: UploadFormat;
  trim?: SourceTrim;
  /**
   * The container's start time in seconds, where the probe that found the container read it: a
   * seek counts from it (`firstVideoFrames` reads it itself where it is absent).
   */
  startTime?: number;
};

/**
 * The input at a storage location: a path (`file:` is added, so a colon in a name is never read
 * as a protocol) or a signed http(s) URL. Anything else is refused before ffmpeg sees it.
 */
export function mediaInputAt(location: string): MediaInput {
  if (location.startsWith("/") || !location.includes(":")) {
    return { url: `file:${path.resolve(location)}`, protocols: "file", format: null };
  }
  if (/^https:\/\//i.test(location)) return { url: location, protocols: "https,tls,tcp", format: null };
  if (/^http:\/\//i.test(location)) return { url: location, protocols: "http,tcp", format: null };
  const scheme = location.slice(0, location.indexOf(":") + 1);
  const message = `The worker reads sources only from a file path or an http(s) URL, not ${scheme}`;
  throw new MediaError(message, { retryable: false });
}

/** A file the worker wrote itself (narration, a rendered part), opened as `format` and nothing else. */
export function ownMediaFile(file: string, format: UploadFormat): ProbedInput {
  return { url: `file:${file}`, protocols: "file", format };
}

/** The probed input, or null when ffprobe named a container outside the whitelist. */
export function probedInput(input: MediaInput, formatName: string | undefined): ProbedInput | null {
  const names = (formatName ?? "").split(",");
  const format = UPLOAD_FORMATS.find((f) => names.includes(f));
  return format ? { ...input, format } : null;
}

/** ffmpeg and ffprobe options placed before `-i`: the whitelists, and the container once known. */
export function mediaInputOptions(input: MediaInput): string[] {
  return [
    "-protocol_whitelist",
    input.protocols,
    "-format_whitelist",
    UPLOAD_FORMATS.join(","),
    ...(input.format ? ["-f", input.format] : []),
    // External data references of QuickTime files are off by default; an mp4 must never turn them on.
    // ffprobe ignores the option for other containers, ffmpeg refuses it, so it goes where it applies.
    ...(input.format === null || input.format === "mov" ? ["-enable_drefs", "0"] : []),
  ];
}

/**
 * Input options that start reading at `at` seconds of the input (of its trim, when it has one) and
 * stop at the trim's end. `-ss` before `-i` seeks accurately: decoding starts at the keyframe
 * before, and the frames (and audio samples) before `at` are dropped.
 */
export function inputSeekOptions(input: ProbedInput, at: number): string[] {
  const from = (input.trim?.start ?? 0) + at;
  const seek = from > 0 ? ["-ss", from.toFixed(6)] : [];
  return input.trim ? [...seek, "-t", Math.max(0, input.trim.end - from).toFixed(6)] : seek;
}

/**
 * The largest frame ffmpeg may decode: a stream whose SPS changes to a huge size after the probe
 * fails instead of allocating it. The probe refuses larger frames up front.
 */
export const MAX_DECODE_PIXELS = 36_000_000;

/** The input option that makes the decoder refuse a frame larger than MAX_DECODE_PIXELS. */
export function decodeLimitOptions(): string[] {
  return ["-max_pixels", String(MAX_DECODE_PIXELS)];
}

/** The readable reason for a file whose container ffmpeg recognised but the whitelist refused. */
export function refusedFormatReason(demuxer: string): string {
  const opensOthers = (file: string, what: string, verb: string) =>
    `The file is ${file}, not a video: ${what} makes ffmpeg open the other files it ${verb}, ` +
    "so only single media files are accepted";
  switch (demuxer) {
    case "hls":
      return opensOthers("an HLS playlist", "a playlist", "lists");
    case "dash":
      return opensOthers("a DASH manifest", "a manifest", "lists");
    case "concat":
      return opensOthers("an ffmpeg concat list", "a list", "names");
    case "tty":
      return "The file is not a video ffmpeg can read: it is a text file";
  }
  if (demuxer === "image2" || demuxer.endsWith("_pipe")) {
    return `The file is a still image (${demuxer.replace(/_pipe$/, "")}), not a video`;
  }
  return `The file's format (${demuxer}) is not accepted: upload ${UPLOAD_FORMAT_NAMES}`;
}
