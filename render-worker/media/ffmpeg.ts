import { execFile } from "node:child_process";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import ffmpeg from "fluent-ffmpeg";
import type { ProbeResult, Rung } from "../../src/protocol/messages.ts";
import { abortError, MediaError } from "./errors.ts";
import { h264LevelOf, videoRateControl } from "./ladder.ts";
import { mediaInputOptions, type MediaInput, type ProbedInput } from "./media-input.ts";
import { mediaToolEnv } from "./tool-environment.ts";
import { diesWithWorker } from "./tool-process.ts";

/** The parts of `ffprobe -of json -show_format -show_streams` output the worker reads. */
export interface FfprobeJson {
  streams?: FfprobeJsonStream[];
  format?: { format_name?: string; duration?: string };
}

export interface FfprobeJsonStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  sample_aspect_ratio?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
  tags?: { rotate?: string };
  side_data_list?: Array<{ side_data_type?: string; rotation?: number }>;
}

const FFPROBE = process.env.FFPROBE_PATH || "ffprobe";
const FFMPEG = process.env.FFMPEG_PATH || "ffmpeg";

/**
 * The largest frame ffmpeg may decode: a stream whose SPS changes to a huge size after the probe
 * fails instead of allocating it. Matches the probe's frame-area limit.
 */
export const MAX_DECODE_PIXELS = 36_000_000;
const decodeLimit = () => ["-max_pixels", String(MAX_DECODE_PIXELS)];

/** Signed URLs (a GCS source) must not end up in job errors and logs: drop their query strings. */
export function redactUrls(text: string): string {
  return text.replace(/(https?:\/\/[^\s?"']+)\?[^\s"']*/g, "$1?…");
}
const STDERR_TAIL_LINES = 20;

/**
 * Runs ffprobe on an input, within its whitelists, and returns its JSON. Fails with a MediaError
 * whose message is ffprobe's own short reason (`moov atom not found; Invalid data found when
 * processing input`).
 */
export function ffprobeJson(input: MediaInput, opts: { signal?: AbortSignal; timeoutMs?: number; maxPixels?: number } = {}): Promise<FfprobeJson> {
  // -max_pixels makes the decoder refuse a huge frame instead of allocating it (a decompression bomb).
  const limit = opts.maxPixels ? ["-max_pixels", String(opts.maxPixels)] : [];
  const args = ["-v", "error", ...mediaInputOptions(input), ...limit, "-of", "json", "-show_format", "-show_streams", input.url];
  const command = redactUrls([FFPROBE, ...args].join(" "));
  return new Promise((resolve, reject) => {
    const ffprobe = diesWithWorker(FFPROBE, args);
    execFile(
      ffprobe.file,
      ffprobe.args,
      { maxBuffer: 32 * 1024 * 1024, timeout: opts.timeoutMs ?? 60_000, killSignal: "SIGKILL", signal: opts.signal, env: mediaToolEnv() },
      (error, stdout, stderr) => {
        if (opts.signal?.aborted) return reject(abortError(opts.signal));
        const stderrTail = tailOf(stderr.split(/\r\n|\r|\n/));
        if (error) {
          const exitCode = typeof error.code === "number" ? error.code : null;
          const timedOut = error.killed === true && exitCode === null;
          const reason = timedOut ? "ffprobe timed out" : exitCode === null ? error.message : shortReason(stderr, input.url);
          // A process that could not run or was cut off says nothing about the file.
          return reject(new MediaError(reason, { retryable: exitCode === null, command, stderrTail, exitCode, cause: error }));
        }
        try {
          resolve(JSON.parse(stdout) as FfprobeJson);
        } catch (cause) {
          reject(new MediaError("ffprobe printed invalid JSON", { retryable: true, command, stderrTail, cause }));
        }
      },
    );
  });
}

/** What the encoder has done so far, sampled by the caller's timer. */
export interface EncodeStats {
  /** Media time ffmpeg has encoded up to. */
  outTimeSeconds: number | null;
  /** Frames per second ffmpeg reports. */
  fps: number | null;
  /** Media seconds encoded per wall-clock second since ffmpeg started. */
  speed: number | null;
}

/** The H.264 encoders the worker uses: x264 on any CPU, NVENC on NVIDIA GPUs that have the engine. */
export type VideoEncoder = "libx264" | "h264_nvenc";

export interface EncodeLadderArgs {
  /** The source, opened as the container its probe found. */
  input: ProbedInput;
  probe: ProbeResult;
  ladder: Rung[];
  /** ffmpeg runs here; rung `720p` is written to `720p/index.m3u8` and `720p/seg_00000.ts`… */
  workDir: string;
  segmentSeconds: number;
  signal: AbortSignal;
  /** Default libx264. h264_nvenc needs a GPU that passed `probeNvenc()`. */
  encoder?: VideoEncoder;
  /** Start at segment `segments` (at `fromSeconds` of media time), continuing an earlier run's timeline. */
  resumeFrom?: { segments: number; fromSeconds: number };
}

export interface LadderEncode {
  /** Settles when ffmpeg exits: a MediaError on failure, an AbortError when the signal fired. */
  done: Promise<void>;
  stats(): EncodeStats;
}

/**
 * Encodes every rung in one ffmpeg process: the source is decoded once and scaled for every rung in
 * one filter graph, and each rung is written as an HLS event playlist whose segments start on
 * keyframes at the same media times in every rung.
 */
export function encodeLadder(args: EncodeLadderArgs): LadderEncode {
  const { input, ladder, workDir, segmentSeconds } = args;
  const videoRungs = ladder.filter((r) => r.kind === "VIDEO");
  const audioRungs = ladder.filter((r) => r.kind === "AUDIO");
  const from = args.resumeFrom ?? { segments: 0, fromSeconds: 0 };
  // -ss before the input seeks accurately: decoding starts at the keyframe before, frames before
  // `fromSeconds` are dropped, and the first one kept gets a forced keyframe as in the earlier run.
  const seek = from.fromSeconds > 0 ? ["-ss", from.fromSeconds.toFixed(6)] : [];
  const command = ffmpeg(input.url, { cwd: workDir, stdoutLines: 50 }).inputOptions("-nostdin", "-hide_banner", ...mediaInputOptions(input), ...decodeLimit(), ...seek);
  const timeline = timelineOptions(from.segments, from.fromSeconds);

  if (videoRungs.length > 0) command.complexFilter(ladderScaleGraph(videoRungs));
  videoRungs.forEach((rung, i) => {
    const encoder = rungEncoder(args.encoder ?? "libx264", rung);
    command
      .output(`${rung.name}/index.m3u8`)
      .outputOptions("-map", `[v${i}]`, ...frameRateCap(args.probe.fps), ...videoEncoderOptions(encoder, rung, segmentSeconds, args.probe.fps), ...timeline, ...hlsOptions(rung, segmentSeconds));
  });
  for (const rung of audioRungs) {
    command
      .output(`${rung.name}/index.m3u8`)
      .outputOptions("-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000", ...timeline, ...hlsOptions(rung, segmentSeconds));
  }

  let latest: { outTimeSeconds: number; fps: number | null } | null = null;
  let startedAt: number | null = null;
  // Only stores the latest figures: the caller samples them on its own timer. Read from stderr:
  // fluent-ffmpeg's 'progress' event would run its own ffprobe on the source, outside the whitelists.
  command.on("stderr", (line: string) => {
    const outTimeSeconds = timemarkSeconds(/\btime=(\S+)/.exec(line)?.[1]);
    if (outTimeSeconds === null) return;
    const fps = Number(/\bfps=\s*([\d.]+)/.exec(line)?.[1]);
    latest = { outTimeSeconds, fps: Number.isFinite(fps) ? fps : null };
  });

  const done = Promise.all(ladder.map((r) => mkdir(path.join(workDir, r.name), { recursive: true }))).then(() =>
    runFfmpeg(command, args.signal, () => {
      startedAt = Date.now();
    }),
  );

  return {
    done: done.then(() => undefined),
    stats() {
      if (latest === null || startedAt === null) return { outTimeSeconds: null, fps: null, speed: null };
      const wallSeconds = (Date.now() - startedAt) / 1000;
      // ffmpeg counts from where this run started, not from the timeline offset.
      return { outTimeSeconds: from.fromSeconds + latest.outTimeSeconds, fps: latest.fps, speed: wallSeconds > 0 ? latest.outTimeSeconds / wallSeconds : null };
    },
  };
}

/**
 * NVENC's H.264 encoder refuses frames narrower or lower than this ("Frame Dimension less than
 * the minimum supported value"; FFmpeg trac #9251: 144x144 fails, 145x145 encodes).
 */
export const NVENC_MIN_SIDE = 145;

/** The encoder for one rung: h264_nvenc falls back to libx264 for rungs NVENC cannot encode (144p). */
export function rungEncoder(encoder: VideoEncoder, rung: Rung): VideoEncoder {
  if (encoder !== "h264_nvenc") return encoder;
  return Math.min(rung.width ?? 0, rung.height ?? 0) < NVENC_MIN_SIDE ? "libx264" : encoder;
}

/**
 * The options that encode one video rung: its rate control, its H.264 profile and level, and a
 * keyframe at every multiple of `segmentSeconds` of media time, so every rung's segments start at
 * the same times and each starts with an IDR frame. No scene-cut keyframes: they would land at
 * different frames in different rungs.
 */
export function videoEncoderOptions(encoder: VideoEncoder, rung: Rung, segmentSeconds: number, fps: number): string[] {
  const rate = videoRateControl(rung);
  const common = [
    "-profile:v", "high",
    "-level:v", h264LevelOf(rung),
    "-b:v", String(rate.bitrate),
    "-maxrate", String(rate.maxrate),
    "-bufsize", String(rate.bufsize),
    "-force_key_frames", `expr:gte(t,n_forced*${segmentSeconds})`,
  ];
  if (encoder === "libx264") return ["-c:v", "libx264", "-preset", "veryfast", ...common, "-sc_threshold", "0"];
  // Twice a segment's frames: the forced keyframes come first, and the same GOP length in every
  // rung keeps any periodic IDR at the same frame in all of them.
  const gop = 2 * Math.max(1, Math.round((fps > 0 ? fps : 30) * segmentSeconds));
  return [
    "-c:v", "h264_nvenc",
    "-preset", "p4",
    "-tune", "hq",
    "-rc", "vbr",
    ...common,
    // ffmpeg marks forced keyframes as I frames; NVENC makes them IDR only when told to.
    "-forced-idr", "1",
    "-g", String(gop),
    "-bf", "3",
    "-rc-lookahead", "20",
    "-no-scenecut", "1",
  ];
}

/**
 * Whether H.264 can be encoded with NVENC here: a 0.1 s encode of a generated frame, the one
 * check that covers GPU, driver, the libnvidia-encode library mounted into the container and
 * ffmpeg's build. Never rejects: any failure is `false`, and `onFailure` gets ffmpeg's reason.
 */
export async function probeNvenc(opts: { timeoutMs?: number; onFailure?: (reason: string) => void } = {}): Promise<boolean> {
  const command = ffmpeg({ cwd: tmpdir(), stdoutLines: 50 })
    // Both sides at least NVENC_MIN_SIDE, or a healthy GPU would fail the probe.
    .input("color=c=black:s=256x256:r=25:d=0.1")
    .inputFormat("lavfi")
    .inputOptions("-nostdin", "-hide_banner")
    .output("-")
    .outputOptions("-c:v", "h264_nvenc", "-f", "null");
  try {
    await runFfmpeg(command, AbortSignal.timeout(opts.timeoutMs ?? 30_000));
    return true;
  } catch (err) {
    // The encoder's own line ("Cannot load libcuda.so.1", "No capable devices found") says more
    // than ffmpeg's closing "Conversion failed!".
    const encoderLines = ((err as MediaError).stderrTail ?? "").split("\n").filter((l) => !/^\s/.test(l) && /nvenc|cuda|nvidia/i.test(l));
    opts.onFailure?.(encoderLines.length ? encoderLines.map((l) => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "")).join("; ") : (err as Error).message);
    return false;
  }
}

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
  const height = Math.max(2, Math.floor(Math.min(720, probe.height) / 2) * 2);
  const width = Math.max(2, Math.min(Math.floor(probe.width / 2) * 2, Math.round((probe.width * height) / probe.height / 2) * 2));
  // A source of a frame or two has nothing after its first frame to seek to.
  const at = probe.duration < 0.5 ? 0 : Math.min(1, probe.duration / 3);
  const command = ffmpeg(args.input.url, { cwd: path.dirname(outFile), stdoutLines: 50 })
    .inputOptions("-nostdin", "-hide_banner", ...mediaInputOptions(args.input), ...decodeLimit(), "-ss", at.toFixed(3))
    .output(path.basename(outFile))
    .outputOptions(
      "-map", "0:V:0",
      "-frames:v", "1",
      "-vf", `scale=${width}:${height}:flags=bicubic,setsar=1`,
      "-q:v", "3",
      "-f", "image2",
      "-update", "1",
    );
  const commandLine = await runFfmpeg(command, args.signal);
  const written = await stat(outFile).catch(() => null);
  if (!written || written.size === 0) {
    throw new MediaError(`ffmpeg wrote no poster frame at ${at.toFixed(3)} s`, { retryable: false, command: commandLine });
  }
}

/**
 * The filter graph of a ladder: a cascade where the source is scaled to the top rung, each rung
 * is scaled from the one above it, and a `split` hands every rung's frames to its encoder; video
 * rung `i` comes out as `[v{i}]`. Scaling from the next larger rung instead of the source costs
 * less per frame. Exported for the benchmark, which runs it without encoders.
 */
export function ladderScaleGraph(videoRungs: Rung[]): string {
  const last = videoRungs.length - 1;
  return videoRungs
    .map((rung, i) => {
      // `V` skips attached pictures (cover art), the same stream the probe measured.
      const from = i === 0 ? "[0:V:0]" : `[c${i - 1}]`;
      // setsar=1: even rounding leaves a sliver of aspect error that scale would turn into odd pixel shapes.
      const scale = `scale=${rung.width}:${rung.height}:flags=bicubic,setsar=1${i === 0 ? ",format=yuv420p" : ""}`;
      return i === last ? `${from}${scale}[v${i}]` : `${from}${scale},split=2[v${i}][c${i}]`;
    })
    .join(";");
}

/**
 * ffmpeg writes constant frame rate at the source's nominal rate, which pads a variable-rate
 * phone video (nominal 60, average 35) with duplicated frames; capping at the average keeps the
 * frame count and the duration. A constant-rate source is unchanged (its average is its rate).
 */
function frameRateCap(averageFps: number): string[] {
  return averageFps > 0 ? ["-fpsmax", (Math.ceil(averageFps * 1000) / 1000).toString()] : [];
}

/**
 * Every output's timestamps start this far in, so that no encoder's first timestamps (B-frame
 * reordering, AAC priming) are negative: the TS muxer would shift such a timeline by that run's
 * own encoder delay, and a resumed run's segments would not continue the earlier ones exactly.
 */
const TIMELINE_LEAD_SECONDS = 10;

/** Segment numbers and timestamps of a run that starts at segment `segments`, `fromSeconds` in. */
function timelineOptions(segments: number, fromSeconds: number): string[] {
  return ["-output_ts_offset", (TIMELINE_LEAD_SECONDS + fromSeconds).toFixed(6), "-start_number", String(segments)];
}

function hlsOptions(rung: Rung, segmentSeconds: number): string[] {
  return [
    // Several outputs fed by one filter graph buffer packets while the slowest catches up.
    "-max_muxing_queue_size", "4096",
    "-f", "hls",
    "-hls_time", String(segmentSeconds),
    "-hls_playlist_type", "event",
    // temp_file: a segment appears under its name only once closed, and the playlist is replaced
    // by rename, so whatever the playlist lists is complete.
    "-hls_flags", "independent_segments+temp_file",
    "-hls_segment_filename", `${rung.name}/seg_%05d.ts`,
  ];
}

/**
 * fluent-ffmpeg has no option for the child's environment or its launcher, and its one spawn
 * would hand down the worker's whole environment and outlive a killed worker: this command's
 * spawns get the media tools' environment and die with the worker (diesWithWorker).
 */
function asMediaTool(command: ffmpeg.FfmpegCommand): void {
  const spawnable = command as unknown as {
    _spawnFfmpeg: (args: string[], options: object, ...callbacks: unknown[]) => void;
    _getFfmpegPath: (callback: (err: Error | null, path?: string) => void) => void;
  };
  const spawnFfmpeg = spawnable._spawnFfmpeg;
  const launcher = diesWithWorker(FFMPEG, []);
  spawnable._getFfmpegPath = (callback) => callback(null, launcher.file);
  spawnable._spawnFfmpeg = function (this: unknown, args, options, ...callbacks) {
    const env = typeof options === "object" ? { ...options, env: mediaToolEnv() } : options;
    return spawnFfmpeg.call(this, [...launcher.args, ...args], env, ...callbacks);
  };
}

/** Runs a prepared command; resolves with its command line, kills it with SIGKILL on abort. */
function runFfmpeg(command: ffmpeg.FfmpegCommand, signal: AbortSignal | undefined, onSpawn?: () => void): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    let commandLine = "";
    let spawned = false;
    let diskFull = false;
    const stderrTail: string[] = [];
    const onAbort = () => {
      // Before 'start' there is no process yet; the 'start' handler kills it then.
      if (spawned) command.kill("SIGKILL");
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const settle = () => signal?.removeEventListener("abort", onAbort);

    command.on("start", (line: string) => {
      spawned = true;
      commandLine = redactUrls(line);
      if (signal?.aborted) {
        command.kill("SIGKILL");
        return;
      }
      onSpawn?.();
    });
    command.on("stderr", (line: string) => {
      if (line.trim() === "" || /^\s*(frame|size)=/.test(line)) return;
      if (DISK_FULL.test(line)) diskFull = true;
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
    });
    command.on("error", (err: Error) => {
      settle();
      if (signal?.aborted) return reject(abortError(signal));
      const exitCode = exitCodeOf(err);
      const what = exitCode === null ? err.message.replace(/:.*$/s, "") : `ffmpeg exited with code ${exitCode}`;
      reject(
        new MediaError(spawned ? `${what}: ${errorSummary(stderrTail) ?? "no error message"}` : `ffmpeg could not start: ${err.message}`, {
          retryable: true,
          command: commandLine || undefined,
          stderrTail: stderrTail.join("\n") || undefined,
          exitCode,
          cause: err,
        }),
      );
    });
    command.on("end", () => {
      settle();
      if (signal?.aborted) return reject(abortError(signal));
      if (diskFull) {
        // The HLS muxer logs a failed segment or playlist write and carries on to exit 0.
        const details = { retryable: true, command: commandLine || undefined, stderrTail: stderrTail.join("\n") || undefined, exitCode: 0 };
        return reject(new MediaError("ffmpeg ran out of disk space in the work dir (No space left on device)", details));
      }
      resolve(commandLine);
    });
    asMediaTool(command);
    command.run();
  });
}

const DISK_FULL = /No space left on device|Disk quota exceeded/i;

/** ffmpeg ends with its reason in unindented lines; indented ones describe the input. */
function errorSummary(stderrTail: string[]): string | null {
  const reasons = stderrTail.filter((l) => !/^\s/.test(l)).slice(-2);
  return reasons.length > 0 ? reasons.map((l) => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "")).join(" ") : null;
}

function exitCodeOf(err: Error): number | null {
  const match = /exited with code (\d+)/.exec(err.message);
  return match ? Number(match[1]) : null;
}

/** `00:01:02.50` → 62.5; null for `N/A` and other non-times. */
function timemarkSeconds(timemark: string | undefined): number | null {
  const match = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(timemark ?? "");
  if (!match) return null;
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

function tailOf(lines: string[]): string | undefined {
  const kept = lines.filter((l) => l.trim() !== "" && !/^\s*(frame|size)=/.test(l));
  return kept.slice(-STDERR_TAIL_LINES).join("\n") || undefined;
}

/** ffprobe's error lines without their `[demuxer @ 0x…]` and `input:` prefixes, deduplicated. */
function shortReason(stderr: string, input: string): string {
  const reasons = stderr
    .split(/\r\n|\r|\n/)
    .map((l) => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, "").trim())
    .map((l) => (l.startsWith(`${input}: `) ? l.slice(input.length + 2) : l))
    .filter((l) => l !== "");
  return [...new Set(reasons)].join("; ") || "ffprobe failed without saying why";
}

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

/** Output settings every composed part shares, so the parts can be joined without re-encoding. */
const COMPOSED_OUTPUT_OPTIONS = [
  "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-r", "25",
  "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
];

/** Renders a filter graph (text, shapes, generated sources, the given inputs) to an mp4. */
export async function renderFilterGraph(args: RenderGraphArgs): Promise<void> {
  const command = ffmpeg({ cwd: args.workDir, stdoutLines: 50 });
  for (const input of args.inputs) {
    command.input(input.input.url).inputOptions(...mediaInputOptions(input.input), ...(input.loop ? ["-stream_loop", "-1"] : []), ...decodeLimit());
  }
  command
    .complexFilter(args.filterGraph)
    .output(args.outFile)
    .outputOptions(
      "-map", `[${args.videoLabel}]`,
      "-map", `[${args.audioLabel}]`,
      ...COMPOSED_OUTPUT_OPTIONS,
      "-t", args.durationSeconds.toFixed(3),
      "-movflags", "+faststart",
    );
  command.addOption("-nostdin").addOption("-hide_banner");
  if (args.onProgress) {
    const onProgress = args.onProgress;
    // fluent-ffmpeg's 'progress' event would first ffprobe input 0, which a graph of generated sources lacks.
    command.on("stderr", (line: string) => {
      const seconds = timemarkSeconds(/\btime=(\S+)/.exec(line)?.[1]);
      if (seconds !== null) onProgress(seconds);
    });
  }
  await runFfmpeg(command, args.signal);
}

/**
 * Joins mp4 parts rendered with the same settings (see `renderFilterGraph`) into one mp4 without
 * re-encoding, with ffmpeg's concat demuxer. Paths are relative to `workDir`.
 */
export async function concatParts(args: { parts: string[]; outFile: string; workDir: string; signal: AbortSignal }): Promise<void> {
  const listFile = "concat-list.txt";
  // The list's own quoting: a part name is ours (`part-000.mp4`), but never trust a name with a quote.
  if (args.parts.some((p) => /['\n\\]/.test(p))) throw new Error("concat parts must have plain file names");
  await writeFile(path.join(args.workDir, listFile), args.parts.map((p) => `file '${p}'\n`).join(""));
  const command = ffmpeg({ cwd: args.workDir, stdoutLines: 50 })
    .input(listFile)
    // Only the parts may be opened: the list and the mp4s it names, from files in the work dir.
    .inputOptions("-nostdin", "-hide_banner", "-protocol_whitelist", "file", "-format_whitelist", "concat,mov", "-f", "concat")
    .output(args.outFile)
    .outputOptions("-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-movflags", "+faststart");
  await runFfmpeg(command, args.signal);
}
