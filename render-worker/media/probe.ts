import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { mediaToolPath } from "../../src/shared/media-tools.ts";
import { checkAudioDecodes } from "./audio-decode-check.ts";
import { abortError, MediaError, redactUrls, stderrTailOf, withoutLogPrefix } from "./errors.ts";
import {
  MAX_DECODE_PIXELS,
  mediaInputAt,
  mediaInputOptions,
  probedInput,
  refusedFormatReason,
  type MediaInput,
  type ProbedInput,
} from "./media-input.ts";
import { mediaToolEnv } from "./tool-environment.ts";
import { diesWithWorker } from "./tool-process.ts";

const FFPROBE = mediaToolPath("ffprobe");

/** Frames larger than this on either side are refused: x264 levels and players stop there. */
export const MAX_FRAME_SIDE = 8192;
/**
 * Frames with more pixels than this are refused, whatever their shape (8192x8192 would be 67 Mpx).
 * The largest frame any H.264 level allows is 139,264 macroblocks (35.7 Mpx); 8K UHD (7680x4320,
 * 33.2 Mpx) and DCI 8K (8192x4320, 35.4 Mpx) fit; one decoded 8-bit 4:2:0 frame stays under 54 MB.
 */
export const MAX_FRAME_PIXELS = MAX_DECODE_PIXELS;
/** Frames smaller than one 16x16 macroblock on either side hold nothing worth watching. */
export const MIN_FRAME_SIDE = 16;
/**
 * Average frame rates above this are refused: phone slow motion is 120 or 240 fps, a higher rate
 * is a broken or hostile file, and every frame is encoded once per rung.
 */
export const MAX_FRAME_RATE = 240;
/** Audio with more channels than 7.1 is refused: ffmpeg has no layout to downmix it from. */
export const MAX_AUDIO_CHANNELS = 8;
/** The duration limit when the job sets none: the API's `MAX_DURATION_SECONDS` default. */
export const DEFAULT_MAX_DURATION_SECONDS = 6 * 3600;

const OVERSIZED_FRAME = /Picture size (\d+)x(\d+) exceeds specified max pixel count/;

export interface ProbeLimits {
  /** Sources longer than this are refused; default `DEFAULT_MAX_DURATION_SECONDS`. */
  maxDurationSeconds?: number;
}

/** A source the probe accepted: how ffmpeg must open it, and what the ladder needs to know. */
export interface ProbedSource {
  input: ProbedInput;
  probe: ProbeResult;
  /**
   * The video's frames are not evenly spaced, as far as ffprobe tells (its base rate and average
   * rate differ): a run that seeks into it cannot cut where a one-process encode does (chunks.ts),
   * so it is never split. False for an audio-only source.
   */
  frameRateVaries: boolean;
}

/**
 * Probes a source for what the ladder needs: the container within the upload whitelist (every later ffmpeg run
 * opens the source as it), display dimensions (rotation, non-square pixels; null for audio-only, whose first
 * seconds are decoded here), `rotation` clockwise in degrees. A file that is no video this worker can encode,
 * or declares an enormous frame, rate or duration, is refused here with a non-retryable MediaError.
 */
export async function probeSource(
  location: string,
  opts: { signal?: AbortSignal } & ProbeLimits = {},
): Promise<ProbedSource> {
  const { input, data } = await probeContainer(location, opts);
  const probe = probeResultFrom(data, opts);
  // An audio-only source is cheap to decode: a stream that does not is refused here, not retried.
  if (probe.width === null) await checkAudioDecodes(input, probe, opts.signal);
  return { input, probe, frameRateVaries: probe.width !== null && frameRateVaries(data) };
}

/**
 * ffprobe's view of any media file a tenant gave (a source, a sound), within the upload
 * whitelists; the refusals of `probeSource` that come from the file, not from its streams.
 */
export async function probeContainer(
  location: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ input: ProbedInput; data: FfprobeJson }> {
  const input = mediaInputAt(location);
  const isUrl = input.protocols !== "file";
  if (!isUrl) {
    const file = await stat(location);
    if (file.size === 0) throw notAVideo("the file is empty (0 bytes)");
  }
  let data: FfprobeJson;
  try {
    data = await ffprobeJson(input, { signal: opts.signal, maxPixels: MAX_FRAME_PIXELS });
  } catch (err) {
    if (err instanceof MediaError && !err.retryable) {
      const notWhitelisted = /\[([^\]@\s]+) @ 0x[0-9a-f]+\] Format not on whitelist/.exec(err.stderrTail ?? "");
      const details = { command: err.command, stderrTail: err.stderrTail, exitCode: err.exitCode };
      if (notWhitelisted) {
        throw new MediaError(refusedFormatReason(notWhitelisted[1]!), { retryable: false, ...details });
      }
      // Run with -max_pixels, ffprobe stops at a larger frame instead of decoding it, and prints no streams.
      const oversized = OVERSIZED_FRAME.exec(err.stderrTail ?? err.message);
      if (oversized) {
        const [width, height] = [Number(oversized[1]), Number(oversized[2])];
        const tooLarge = refused(`The video's frame size ${width}x${height} is too large`);
        throw frameSizeError(width, height, width * height) ?? tooLarge;
      }
      // Reading a URL can fail for reasons that pass: an expired signed URL, a network hiccup.
      const unreachable = isUrl && /Server returned|Connection|I\/O error|Network|resolve|timed out/i.test(err.message);
      const message = unreachable
        ? `Could not read the source: ${err.message}`
        : `The file is not a video ffmpeg can read: ${err.message}`;
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
  const probed = probedInput(input, data.format?.format_name);
  if (probed === null) throw refused(refusedFormatReason(data.format?.format_name ?? "unknown"));
  return { input: { ...probed, startTime: containerStartTime(data) }, data };
}

/** The container's start time (seconds) in ffprobe's `format` section; 0 where it gives none. */
function containerStartTime(data: FfprobeJson): number {
  return Number(data.format?.start_time ?? 0) || 0;
}

/** How far after the last of `firstVideoFrames`' times it looks for a frame. */
const FRAME_SEARCH_SECONDS = 5;

/**
 * The exact media time (seconds; of the clip, with a trim) of the first video frame at or after
 * each of `times`, in order: the frame a run that seeks there (`inputSeekOptions`) starts with.
 * Read from the packets' timestamps, from the keyframe before the first time on, without
 * decoding; null where no frame starts within 5 s after the last time (the source has ended).
 */
export async function firstVideoFrames(
  input: ProbedInput,
  times: number[],
  opts: { signal?: AbortSignal } = {},
): Promise<(number | null)[]> {
  const probe = (show: string[]) => ffprobeJson(input, { signal: opts.signal, maxPixels: MAX_FRAME_PIXELS, show });
  // ffmpeg's -ss counts from the file's start time: the interval is read in the file's own timestamps.
  const start = input.startTime ?? containerStartTime(await probe(["-show_entries", "format=start_time"]));
  const origin = start + (input.trim?.start ?? 0);
  const from = origin + Math.min(...times);
  const to = origin + Math.max(...times) + FRAME_SEARCH_SECONDS;
  const data = await probe([
    "-select_streams",
    "V:0",
    "-read_intervals",
    `${from.toFixed(6)}%${to.toFixed(6)}`,
    "-show_entries",
    "stream=time_base:packet=pts,flags",
  ]);
  const [num, den] = (data.streams?.[0]?.time_base ?? "").split("/").map(Number);
  if (!num || !den) return times.map(() => null);
  // Packets the demuxer marks for discarding (before an edit list's start) are never shown.
  const shown = (data.packets ?? [])
    .filter((p) => p.pts !== undefined && !p.flags?.includes("D"))
    .map((p) => (p.pts! * num) / den - origin)
    .sort((a, b) => a - b);
  // 1 ns of slack: the times are whole microseconds, the packets' whole ticks of their time base.
  return times.map((at) => shown.find((t) => t >= at - 1e-9) ?? null);
}

/**
 * The streams of a file the worker wrote (a segment) and every packet of them: stream, pts and
 * duration in the stream's time base.
 */
export function probePackets(input: ProbedInput, opts: { signal?: AbortSignal } = {}): Promise<FfprobeJson> {
  const entries =
    "stream=index,codec_type,codec_name,profile,width,height,pix_fmt,sample_rate,channels,time_base:" +
    "packet=stream_index,pts,duration,flags";
  return ffprobeJson(input, { signal: opts.signal, show: ["-show_entries", entries] });
}

/** Reads a ProbeResult from ffprobe's JSON; the rules of `probeSource` without the process. */
export function probeResultFrom(data: FfprobeJson, limits: ProbeLimits = {}): ProbeResult {
  const streams = data.streams ?? [];
  // tty reads any text file as ANSI art: a "video" nobody uploads on purpose.
  if (data.format?.format_name === "tty") throw notAVideo("it is a text file");
  const video = streams.find((s) => s.codec_type === "video" && s.disposition?.attached_pic !== 1);
  const audio = streams.find((s) => s.codec_type === "audio");
  if (!video) {
    if (audio) return audioOnlyProbeResult(data, audio, limits);
    throw refused("The file has no audio or video stream: there is nothing to play in it");
  }
  if (!video.width || !video.height) {
    throw refused("The file's video stream has no frame size; the file may be truncated");
  }

  const rotation = clockwiseRotation(video);
  const sar = ratio(video.sample_aspect_ratio, ":");
  const storedWidth = sar !== null && sar > 0 ? Math.round(video.width * sar) : video.width;
  const sideways = rotation === 90 || rotation === 270;
  const width = sideways ? video.height : storedWidth;
  const height = sideways ? storedWidth : video.height;
  // Decoding costs the stored frame; players and users see the displayed one.
  const sizeError = frameSizeError(width, height, video.width * video.height);
  if (sizeError) throw sizeError;

  const duration = firstPositive(data.format?.duration, video.duration);
  if (duration === null) throw refused("The file has no duration: it may be truncated, empty or a still image");
  checkDuration("video", duration, video, limits);

  const fps = Math.round((ratio(video.avg_frame_rate, "/") || ratio(video.r_frame_rate, "/") || 0) * 1000) / 1000;
  if (fps > MAX_FRAME_RATE) {
    throw refused(`The video's frame rate of ${fps} fps is above the ${MAX_FRAME_RATE} fps limit`);
  }

  return {
    duration,
    width,
    height,
    fps,
    rotation,
    hasAudio: audio !== undefined,
    videoCodec: video.codec_name ?? "unknown",
    audioCodec: audio?.codec_name ?? null,
  };
}

/**
 * An audio-only source (a podcast, music): no frame, and the audio stream's channels and bitrate
 * for the audio ladder. More than MAX_AUDIO_CHANNELS channels are refused: ffmpeg knows no layout
 * to downmix them from, and no player plays them.
 */
function audioOnlyProbeResult(data: FfprobeJson, audio: FfprobeJsonStream, limits: ProbeLimits): ProbeResult {
  const channels = audio.channels ?? 0;
  if (channels > MAX_AUDIO_CHANNELS) {
    throw refused(`The audio has ${channels} channels; the limit is ${MAX_AUDIO_CHANNELS} (7.1 surround)`);
  }
  if (channels === 0 || !(Number(audio.sample_rate) > 0)) {
    throw refused("The file's audio stream has no channels or sample rate; the file may be truncated");
  }
  const duration = firstPositive(data.format?.duration, audio.duration);
  if (duration === null) throw refused("The audio has no duration: the file may be truncated or hold no samples");
  checkDuration("audio", duration, audio, limits);
  const bitrate = Math.round(Number(audio.bit_rate));
  return {
    duration,
    width: null,
    height: null,
    fps: 0,
    rotation: 0,
    hasAudio: true,
    videoCodec: null,
    audioCodec: audio.codec_name ?? "unknown",
    audioChannels: channels,
    audioBitrate: Number.isFinite(bitrate) && bitrate > 0 ? bitrate : null,
  };
}

/** Refuses a source longer than the limit; a header can declare a duration its stream does not have. */
function checkDuration(what: "video" | "audio", duration: number, stream: FfprobeJsonStream, limits: ProbeLimits) {
  const declared = Math.max(duration, firstPositive(stream.duration) ?? 0);
  const maxDuration = limits.maxDurationSeconds ?? DEFAULT_MAX_DURATION_SECONDS;
  if (declared > maxDuration) {
    throw refused(`The ${what} is ${formatDuration(declared)} long; the limit is ${formatDuration(maxDuration)}`);
  }
}

/** The error for a frame outside the limits, or null; `pixels` is the decoded frame's area. */
function frameSizeError(width: number, height: number, pixels: number): MediaError | null {
  const size = `The video's frame size ${width}x${height}`;
  if (width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE) {
    return refused(`${size} exceeds the ${MAX_FRAME_SIDE} px limit per side`);
  }
  if (pixels > MAX_FRAME_PIXELS) {
    // Rounded up, so the figure never reads as equal to the limit it exceeds.
    const megapixels = Math.ceil(pixels / 100_000) / 10;
    return refused(`${size} (${megapixels} megapixels) exceeds the ${MAX_FRAME_PIXELS / 1_000_000} megapixel limit`);
  }
  if (width < MIN_FRAME_SIDE || height < MIN_FRAME_SIDE) {
    return refused(`${size} is too small: each side must be at least ${MIN_FRAME_SIDE} px`);
  }
  return null;
}

/** `25920` → `7 h 12 min`, `40.2` → `41 s`: whole seconds, rounded up, zero parts left out. */
function formatDuration(seconds: number): string {
  const total = Math.ceil(seconds);
  const parts = [
    [Math.floor(total / 3600), "h"],
    [Math.floor((total % 3600) / 60), "min"],
    [total % 60, "s"],
  ] as const;
  return parts
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n} ${unit}`)
    .join(" ");
}

/**
 * The display matrix's rotation is counterclockwise (ffprobe's convention); the legacy `rotate`
 * tag is clockwise. Both become clockwise degrees, snapped to quarter turns.
 */
function clockwiseRotation(video: FfprobeJsonStream): number {
  const matrix = video.side_data_list?.find(
    (d) => d.side_data_type === "Display Matrix" && typeof d.rotation === "number",
  );
  const degrees = matrix ? -(matrix.rotation as number) : Number(video.tags?.rotate ?? 0);
  if (!Number.isFinite(degrees)) return 0;
  return (((Math.round(degrees / 90) * 90) % 360) + 360) % 360;
}

function notAVideo(reason: string): MediaError {
  return refused(`The file is not a video ffmpeg can read: ${reason}`);
}

/** A source this worker will never encode: retrying cannot help. */
function refused(message: string): MediaError {
  return new MediaError(message, { retryable: false });
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
  const [num = Number.NaN, den = Number.NaN] = (value ?? "").split(separator).map(Number);
  if (!Number.isFinite(num) || !Number.isFinite(den) || den === 0 || num === 0) return null;
  return num / den;
}

/** The parts of `ffprobe -of json -show_format -show_streams` output the worker reads. */
export interface FfprobeJson {
  streams?: FfprobeJsonStream[];
  format?: { format_name?: string; duration?: string; start_time?: string };
  packets?: {
    stream_index?: number;
    pts?: number;
    pts_time?: string;
    size?: string;
    duration?: number;
    flags?: string;
  }[];
}

export interface FfprobeJsonStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  profile?: string;
  level?: number;
  pix_fmt?: string;
  width?: number;
  height?: number;
  sample_aspect_ratio?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  time_base?: string;
  duration?: string;
  channels?: number;
  sample_rate?: string;
  bit_rate?: string;
  disposition?: { attached_pic?: number };
  tags?: { rotate?: string };
  side_data_list?: Array<{ side_data_type?: string; rotation?: number }>;
}

interface FfprobeOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  maxPixels?: number;
  /** What to print; default the format and the streams. */
  show?: string[];
}

/** What a live feed's first seconds say of its video: its H.264 profile and level, and its packets. */
export interface LiveVideoSample {
  profile: string | null;
  level: number | null;
  pixFmt: string | null;
  /** Each video packet: its time (s), bytes and whether it is a keyframe, in order. */
  packets: { time: number; bytes: number; keyframe: boolean }[];
}

/**
 * Reads the first `seconds` of a live feed's video (a reader joins at a keyframe: live.ts) and
 * returns what they say; fails as `probeSource` does.
 */
export async function sampleLiveVideo(
  input: MediaInput,
  seconds: number,
  signal?: AbortSignal,
): Promise<LiveVideoSample> {
  const json = await ffprobeJson(input, {
    signal,
    timeoutMs: (seconds + 10) * 1000,
    show: [
      "-read_intervals",
      `%+${seconds}`,
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=profile,level,pix_fmt:packet=pts_time,size,flags",
    ],
  });
  const stream = json.streams?.[0];
  return {
    profile: stream?.profile ?? null,
    level: stream?.level ?? null,
    pixFmt: stream?.pix_fmt ?? null,
    packets: (json.packets ?? []).flatMap((p) => {
      const time = Number(p.pts_time);
      const bytes = Number(p.size);
      return Number.isFinite(time) && Number.isFinite(bytes)
        ? [{ time, bytes, keyframe: p.flags?.startsWith("K") ?? false }]
        : [];
    }),
  };
}

/**
 * Runs ffprobe on an input, within its whitelists, and returns its JSON. Fails with a MediaError
 * whose message is ffprobe's own short reason (`moov atom not found; Invalid data found when
 * processing input`).
 */
function ffprobeJson(input: MediaInput, opts: FfprobeOptions = {}): Promise<FfprobeJson> {
  // -max_pixels makes the decoder refuse a huge frame instead of allocating it (a decompression bomb).
  const limit = opts.maxPixels ? ["-max_pixels", String(opts.maxPixels)] : [];
  const args = [
    "-v",
    "error",
    ...mediaInputOptions(input),
    ...limit,
    "-of",
    "json",
    ...(opts.show ?? ["-show_format", "-show_streams"]),
    input.url,
  ];
  const command = redactUrls([FFPROBE, ...args].join(" "));
  const ffprobe = diesWithWorker(FFPROBE, args);
  const execOptions = {
    maxBuffer: 32 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 60_000,
    killSignal: "SIGKILL" as const,
    signal: opts.signal,
    env: mediaToolEnv(),
  };
  return new Promise((resolve, reject) => {
    execFile(ffprobe.file, ffprobe.args, execOptions, (error, stdout, stderr) => {
      if (opts.signal?.aborted) return reject(abortError(opts.signal));
      const stderrTail = stderrTailOf(stderr);
      if (error) {
        const exitCode = typeof error.code === "number" ? error.code : null;
        const timedOut = error.killed === true && exitCode === null;
        const reason = timedOut
          ? "ffprobe timed out"
          : exitCode === null
            ? error.message
            : shortReason(stderr, input.url);
        // A process that could not run or was cut off says nothing about the file.
        const retryable = exitCode === null;
        return reject(new MediaError(reason, { retryable, command, stderrTail, exitCode, cause: error }));
      }
      try {
        resolve(JSON.parse(stdout) as FfprobeJson);
      } catch (cause) {
        reject(new MediaError("ffprobe printed invalid JSON", { retryable: true, command, stderrTail, cause }));
      }
    });
  });
}

/** ffprobe's error lines without their `[demuxer @ 0x…]` and `input:` prefixes, deduplicated. */
function shortReason(stderr: string, input: string): string {
  const reasons = stderr
    .split(/\r\n|\r|\n/)
    .map((l) => withoutLogPrefix(l).trim())
    .map((l) => (l.startsWith(`${input}: `) ? l.slice(input.length + 2) : l))
    .filter((l) => l !== "" && !/^Last message repeated/.test(l));
  return [...new Set(reasons)].join("; ") || "ffprobe failed without saying why";
}

/** Whether the video stream's base rate (`r_frame_rate`) and average rate differ by more than 0.5 %. */
function frameRateVaries(data: FfprobeJson): boolean {
  const video = (data.streams ?? []).find((s) => s.codec_type === "video" && s.disposition?.attached_pic !== 1);
  const base = ratio(video?.r_frame_rate, "/");
  const average = ratio(video?.avg_frame_rate, "/");
  return !(base && average && Math.abs(base - average) <= base * 0.005);
}
