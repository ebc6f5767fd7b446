import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, Rung } from "../../src/protocol/messages.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { runFfmpeg, type FfmpegOutput, type FfmpegStatus } from "./ffmpeg-process.ts";
import { AUDIO_ENCODER_OPTIONS, videoRateControl, type PlannedRung } from "./ladder.ts";
import { decodeLimitOptions, mediaInputOptions, type ProbedInput } from "./media-input.ts";
import { rungEncoder, type VideoEncoder } from "./nvenc.ts";

export interface EncodeLadderArgs {
  /** The source, opened as the container its probe found. */
  input: ProbedInput;
  probe: ProbeResult;
  ladder: PlannedRung[];
  /** ffmpeg runs here; rung `720p` is written to `720p/index.m3u8` and `720p/seg_00000.ts`… */
  workDir: string;
  segmentSeconds: number;
  signal: AbortSignal;
  /** Default libx264. h264_nvenc needs a GPU that passed `probeNvenc()`. */
  encoder?: VideoEncoder;
  /** Start at segment `segments` (at `fromSeconds` of media time), continuing an earlier run's timeline. */
  resumeFrom?: { segments: number; fromSeconds: number };
  /**
   * libx264 threads per rung; unset, each rung's x264 picks its own from the core count. For
   * comparing thread layouts in the benchmark; the worker leaves it unset.
   */
  x264Threads?: (rung: PlannedRung) => number;
}

/** What the encoder has said so far: its latest status line and when it started. */
export interface EncoderStatus extends FfmpegStatus {
  /** `Date.now()` when ffmpeg started. */
  startedAt: number;
  /** The media time this run started at (`resumeFrom.fromSeconds`); `outTimeSeconds` counts from it. */
  fromSeconds: number;
}

export interface LadderEncode {
  /** Settles when ffmpeg exits: a MediaError on failure, an AbortError when the signal fired. */
  done: Promise<void>;
  /** The latest status; null until ffmpeg has started and written its first status line. */
  status(): EncoderStatus | null;
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
  const timeline = timelineOptions(from.segments, from.fromSeconds);
  const fps = args.probe.fps;
  const encoder = args.encoder ?? "libx264";
  const threads = (rung: PlannedRung): string[] =>
    rungEncoder(encoder, rung) === "libx264" && args.x264Threads ? ["-threads", String(args.x264Threads(rung))] : [];

  const outputs: FfmpegOutput[] = [
    ...videoRungs.map((rung, i) => ({
      target: `${rung.name}/${RUNG_PLAYLIST}`,
      options: [
        "-map",
        `[v${i}]`,
        ...frameRateCap(fps),
        ...videoEncoderOptions(rungEncoder(encoder, rung), rung, segmentSeconds, fps),
        ...threads(rung),
        ...timeline,
        ...hlsOptions(rung, segmentSeconds),
      ],
    })),
    ...audioRungs.map((rung) => ({
      target: `${rung.name}/${RUNG_PLAYLIST}`,
      options: ["-map", "0:a:0", ...AUDIO_ENCODER_OPTIONS, ...timeline, ...hlsOptions(rung, segmentSeconds)],
    })),
  ];

  let latest: FfmpegStatus | null = null;
  let startedAt: number | null = null;
  const done = Promise.all(ladder.map((r) => mkdir(path.join(workDir, r.name), { recursive: true }))).then(() =>
    runFfmpeg({
      inputs: [{ source: input.url, options: [...mediaInputOptions(input), ...decodeLimitOptions(), ...seek] }],
      ...(videoRungs.length > 0 ? { filterGraph: ladderScaleGraph(videoRungs) } : {}),
      outputs,
      cwd: workDir,
      signal: args.signal,
      onStart: () => {
        startedAt = Date.now();
      },
      // Only stores the latest figures: the caller samples them on its own timer.
      onStatus: (status) => {
        latest = status;
      },
    }),
  );

  return {
    done: done.then(() => undefined),
    status() {
      if (latest === null || startedAt === null) return null;
      return { ...latest, startedAt, fromSeconds: from.fromSeconds };
    },
  };
}

/**
 * The options that encode one video rung: its rate control, its H.264 profile and level, and a
 * keyframe at every multiple of `segmentSeconds` of media time, so every rung's segments start at
 * the same times and each starts with an IDR frame. No scene-cut keyframes: they would land at
 * different frames in different rungs.
 */
export function videoEncoderOptions(
  encoder: VideoEncoder,
  rung: PlannedRung,
  segmentSeconds: number,
  fps: number,
): string[] {
  if (rung.h264Level === undefined) throw new Error(`Rung ${rung.name} is not a video rung`);
  const rate = videoRateControl(rung);
  const common = [
    "-profile:v",
    "high",
    // x264 and NVENC spell level_idc 31 as `3.1`.
    "-level:v",
    (rung.h264Level / 10).toFixed(1),
    "-b:v",
    String(rate.bitrate),
    "-maxrate",
    String(rate.maxrate),
    "-bufsize",
    String(rate.bufsize),
    "-force_key_frames",
    `expr:gte(t,n_forced*${segmentSeconds})`,
  ];
  if (encoder === "libx264") return ["-c:v", "libx264", "-preset", "veryfast", ...common, "-sc_threshold", "0"];
  // Twice a segment's frames: the forced keyframes come first, and the same GOP length in every
  // rung keeps any periodic IDR at the same frame in all of them.
  const gop = 2 * Math.max(1, Math.round((fps > 0 ? fps : 30) * segmentSeconds));
  return [
    "-c:v",
    "h264_nvenc",
    "-preset",
    "p4",
    "-tune",
    "hq",
    "-rc",
    "vbr",
    ...common,
    // ffmpeg marks forced keyframes as I frames; NVENC makes them IDR only when told to.
    "-forced-idr",
    "1",
    "-g",
    String(gop),
    "-bf",
    "3",
    "-rc-lookahead",
    "20",
    "-no-scenecut",
    "1",
  ];
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
    "-max_muxing_queue_size",
    "4096",
    "-f",
    "hls",
    "-hls_time",
    String(segmentSeconds),
    "-hls_playlist_type",
    "event",
    // temp_file: a segment appears under its name only once closed, and the playlist is replaced
    // by rename, so whatever the playlist lists is complete.
    "-hls_flags",
    "independent_segments+temp_file",
    "-hls_segment_filename",
    `${rung.name}/seg_%05d.ts`,
  ];
}
