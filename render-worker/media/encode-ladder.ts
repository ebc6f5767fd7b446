import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { MediaError } from "./errors.ts";
import { runFfmpeg, type FfmpegInput, type FfmpegOutput, type FfmpegRun, type FfmpegStatus } from "./ffmpeg-process.ts";
import { audioRungEncoderOptions, type PlannedRung } from "./ladder.ts";
import { decodeLimitOptions, inputSeekOptions, mediaInputOptions, type ProbedInput } from "./media-input.ts";
import { rungEncoder, type VideoEncoder } from "./nvenc.ts";
import { firstVideoFrames } from "./probe.ts";
import {
  frameRateCap,
  LADDER_TUNING,
  type LadderTuning,
  ladderScaleGraph,
  videoEncoderOptions,
} from "./rung-encoding.ts";
import { CUT_SLACK_SECONDS, segmentCuts, segmentFiles, segmentOptions } from "./segment-muxer.ts";
import { segmentCount, segmentPlan, segmentStart, type SegmentPlan } from "./segments.ts";
import { type PosterPlan, posterFilter, posterOutput } from "./poster.ts";
import { type StoryboardPlan, storyboardFilter, storyboardSheetsOutput } from "./storyboard.ts";

export interface EncodeLadderArgs {
  /** The source, opened as the container its probe found. */
  input: ProbedInput;
  probe: ProbeResult;
  ladder: PlannedRung[];
  /** ffmpeg runs here; rung `720p` is written to `720p/seg_00000.ts`… and listed in `720p/index.m3u8`. */
  workDir: string;
  /** The length of every segment but the first. */
  segmentSeconds: number;
  /** The length of the first segment; default `segmentPlan(segmentSeconds)`'s. */
  firstSegmentSeconds?: number;
  signal: AbortSignal;
  /** Default libx264. h264_nvenc needs a GPU that passed `probeNvenc()`. */
  encoder?: VideoEncoder;
  /** Start at segment `segments` (where the plan starts it), continuing an earlier run's timeline. */
  resumeFrom?: { segments: number };
  /**
   * Stop before segment `segments`: with `resumeFrom`, the run writes segments `resumeFrom.segments`
   * to `segments - 1` of every rung as a one-process encode writes them (a chunk: chunks.ts), the
   * last one ending before the first frame at or after the start of segment `segments`. Video rungs
   * only: audio is encoded once, over the whole source. A stop at or past the source's last segment
   * runs to the source's end.
   */
  stopAt?: { segments: number };
  /**
   * Encode this many seconds before `resumeFrom` as well, and drop them: the encoder's rate control
   * and lookahead then reach the run's first segment warmed up on the frames before it, as in a
   * one-process encode, instead of starting there (chunks.ts says what that costs). At most the
   * media before the run; video rungs only.
   */
  preRollSeconds?: number;
  /** MPEG-TS segments (default), or fragmented MP4 (`seg_00000.m4s`…, each with its init). */
  segmentFormat?: SegmentFormat;
  /**
   * libx264 threads per rung; unset, each rung's x264 picks its own from the core count. For
   * comparing thread layouts in the benchmark; the worker leaves it unset.
   */
  x264Threads?: (rung: PlannedRung) => number;
  /** The scaler and libx264 settings; unset, LADDER_TUNING. The benchmark passes others to compare. */
  tuning?: LadderTuning;
  /**
   * Filters applied once to the decoded source, before the ladder is scaled and the audio encoded
   * (a watermark, loudness normalization: media-filters.ts). `video` reads `[0:V:0]` and the extra
   * `inputs` (`[1:v:0]`…) and writes `[src]`; `audio` is a filter chain for `[0:a:0]`.
   */
  sourceFilters?: { inputs: FfmpegInput[]; video?: string; audio?: string };
  /**
   * Also write the storyboard's sheets (`storyboard.ts`) into `outDir`, an existing directory,
   * from the frames this run decodes for the ladder: the source is decoded once for both. The
   * sheets sample the source as it is (before `sourceFilters`), as `makeStoryboardSheets` does. A
   * run that reads the whole source only: no resume, pre-roll, stop or seek.
   */
  storyboard?: { plan: StoryboardPlan; outDir: string };
  /**
   * Also write the poster (`poster.ts`) to `outFile` from the frames this run decodes, as
   * `extractPoster` would in a run of its own; written early (its frame is in the first second)
   * and whole once there. A run of video rungs from the source's start only (one that stops, a split
   * run's first chunk, may: its chunk is longer than the poster's second).
   */
  poster?: { plan: PosterPlan; outFile: string };
  /** ffmpeg's nice value (FfmpegRun.niceness): a split run's audio yields to its video. */
  niceness?: number;
}

/** The libx264 presets an operator may choose for every rung (X264_PRESET), fastest first. */
export const X264_PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] as const;
export type X264Preset = (typeof X264_PRESETS)[number];

/** The worker's scaling with one libx264 preset on every rung (X264_PRESET) instead of LADDER_TUNING's. */
export function presetTuning(preset: X264Preset): LadderTuning {
  return { scaling: LADDER_TUNING.scaling, x264Options: () => ["-preset", preset] };
}

/**
 * What every transcode run encodes with beside its media and rungs (a whole run, a split run, a
 * chunk: the same, so their segments join): the segment plan, the encoder and its tuning
 * (X264_PRESET), the packaging, the signal that stops it.
 */
export function runEncodeSettings(
  ctx: { encoder?: VideoEncoder; x264Preset?: X264Preset },
  plan: SegmentPlan,
  segmentFormat: SegmentFormat,
  signal: AbortSignal,
): Pick<
  EncodeLadderArgs,
  "segmentSeconds" | "firstSegmentSeconds" | "signal" | "encoder" | "segmentFormat" | "tuning"
> {
  return {
    segmentSeconds: plan.segmentSeconds,
    firstSegmentSeconds: plan.firstSegmentSeconds,
    signal,
    encoder: ctx.encoder ?? "libx264",
    segmentFormat,
    ...(ctx.x264Preset ? { tuning: presetTuning(ctx.x264Preset) } : {}),
  };
}

/** What the encoder has said so far: its latest status line and when it started. */
export interface EncoderStatus extends FfmpegStatus {
  /** `Date.now()` when ffmpeg started. */
  startedAt: number;
  /** The media time this run started at (the start of `resumeFrom.segments`); `outTimeSeconds` counts from it. */
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
 * one filter graph, and each rung is written as MPEG-TS (or fMP4) segments and an m3u8 list of them, cut at
 * the same media times in every rung (`segments.ts`: a short first segment, then full ones), each
 * video segment starting on a keyframe. A run that starts part-way (a resume, a chunk, a clip)
 * first reads from the source's packets where its first video frames lie (VideoStart).
 */
export function encodeLadder(args: EncodeLadderArgs): LadderEncode {
  const { input, ladder, workDir } = args;
  const run = planLadderRun(args);
  const { fromSeconds } = run;
  let latest: FfmpegStatus | null = null;
  let startedAt: number | null = null;
  const done = Promise.all(ladder.map((r) => mkdir(path.join(workDir, r.name), { recursive: true })))
    .then(async () =>
      run.videoRungs.length > 0 && run.seeks
        ? videoStartAfterSeek(input, run.runStart, fromSeconds, args.signal)
        : { first: run.runStart, kept: fromSeconds },
    )
    .then((video) =>
      runFfmpeg({
        inputs: [
          { source: input.url, options: [...mediaInputOptions(input), ...decodeLimitOptions(), ...run.seek] },
          ...(args.sourceFilters?.inputs ?? []),
        ],
        ...ladderCommand(args, run, video),
        cwd: workDir,
        signal: args.signal,
        ...(args.niceness === undefined ? {} : { niceness: args.niceness }),
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
      // A storyboard's last sheet lasts its whole grid of tiles: once it is written, ffmpeg's time
      // is past the source's end.
      const { duration } = args.probe;
      const outTimeSeconds = args.storyboard ? Math.min(latest.outTimeSeconds, duration) : latest.outTimeSeconds;
      return { ...latest, outTimeSeconds, startedAt, fromSeconds };
    },
  };
}

/** Where a ladder run starts and stops, in segments and media time, worked out once from its args. */
interface LadderRun {
  plan: SegmentPlan;
  videoRungs: PlannedRung[];
  audioRungs: PlannedRung[];
  firstSegment: number;
  fromSeconds: number;
  preRoll: number;
  /** Where decoding starts: `fromSeconds` less the pre-roll. */
  runStart: number;
  /** The input's seek options; `seeks` when they hold `-ss`. */
  seek: string[];
  seeks: boolean;
  stopSegment: number | null;
  /** The trim that ends the video before `stopSegment`; "" when it runs to the source's end. */
  stop: string;
  cuts: number[];
}

/** The run `args` ask for, or an error for one the ladder cannot encode. */
function planLadderRun(args: EncodeLadderArgs): LadderRun {
  const { input, ladder, segmentSeconds } = args;
  const plan: SegmentPlan = {
    segmentSeconds,
    firstSegmentSeconds: args.firstSegmentSeconds ?? segmentPlan(segmentSeconds).firstSegmentSeconds,
  };
  const videoRungs = ladder.filter((r) => r.kind === "VIDEO");
  const audioRungs = ladder.filter((r) => r.kind === "AUDIO");
  const firstSegment = args.resumeFrom?.segments ?? 0;
  const fromSeconds = segmentStart(plan, firstSegment);
  const preRoll = Math.min(args.preRollSeconds ?? 0, fromSeconds);
  if (preRoll > 0 && audioRungs.length > 0) throw new Error("A run with a pre-roll encodes video rungs only");
  // -ss before the input seeks accurately: decoding starts at the keyframe before, frames before
  // the pre-roll or `fromSeconds` are dropped, and the first one kept gets a forced keyframe (so
  // does the first at `fromSeconds` after a pre-roll) as in the earlier run.
  const runStart = fromSeconds - preRoll;
  const seek = inputSeekOptions(input, runStart);
  // The probe's duration may fall short of what the decoder finds: a stop at the last segment
  // trims nothing, so the run still ends where the source does.
  const stopSegment =
    args.stopAt && args.stopAt.segments < segmentCount(plan, args.probe.duration) ? args.stopAt.segments : null;
  if (stopSegment !== null && stopSegment <= firstSegment)
    throw new Error(`A run from segment ${firstSegment} cannot stop before segment ${stopSegment}`);
  if (stopSegment !== null && audioRungs.length > 0)
    throw new Error("A run that stops before the source's end encodes video rungs only");
  const cuts = segmentCuts(plan, firstSegment, args.probe.duration, stopSegment);
  // The graph's timestamps count from the seek, and trim drops every frame from `end` on: the run
  // keeps exactly the frames before the stop, the next run's seek the ones after. ffmpeg stops
  // reading the input once the trim has ended.
  const stop = stopSegment === null ? "" : `trim=end=${(segmentStart(plan, stopSegment) - runStart).toFixed(6)}`;
  const seeks = seek.includes("-ss");
  if (args.storyboard && (seeks || firstSegment > 0 || stopSegment !== null || videoRungs.length === 0))
    throw new Error("A run makes the storyboard only when it reads the whole source for video rungs");
  if (args.poster && (seeks || firstSegment > 0 || videoRungs.length === 0))
    throw new Error("A run makes the poster only when it reads the source from its start for video rungs");
  const run = { plan, videoRungs, audioRungs, firstSegment, fromSeconds, preRoll, runStart, seek, seeks };
  return { ...run, stopSegment, stop, cuts };
}

/** The run's command once the media times of its first video frames are known. */
function ladderCommand(
  args: EncodeLadderArgs,
  run: LadderRun,
  video: VideoStart,
): Pick<FfmpegRun, "filterGraph" | "outputs"> {
  const { plan, videoRungs, audioRungs, firstSegment, fromSeconds, preRoll, seeks, stop, cuts } = run;
  const { segmentSeconds } = args;
  const format = args.segmentFormat ?? "TS";
  const fps = args.probe.fps;
  const encoder = args.encoder ?? "libx264";
  const tuning = args.tuning ?? LADDER_TUNING;
  const threads = (rung: PlannedRung): string[] =>
    rungEncoder(encoder, rung) === "libx264" && args.x264Threads ? ["-threads", String(args.x264Threads(rung))] : [];
  const { video: videoFilter, audio: audioFilter } = args.sourceFilters ?? {};
  const source = videoFilter ? "[src]" : "[0:V:0]";
  // The video counts its time from its first frame: see VideoStart.
  const videoTiming = [stop, ...(seeks ? ["setpts=PTS-STARTPTS"] : [])].filter(Boolean).join(",");
  const graph = [
    ...(videoRungs.length > 0 && videoFilter ? [videoFilter] : []),
    ...(videoRungs.length > 0 && videoTiming ? [`${source}${videoTiming}[timed]`] : []),
    ...(videoRungs.length > 0 ? [ladderScaleGraph(videoRungs, tuning.scaling, videoTiming ? "[timed]" : source)] : []),
    ...(audioRungs.length > 0 && audioFilter ? [`[0:a:0]${audioFilter}${audioFanOut(audioRungs.length)}`] : []),
    // The decoder hands every frame to the ladder's chain and to this one.
    ...(args.storyboard ? [`[0:V:0]${storyboardFilter(args.storyboard.plan)}[storyboard]`] : []),
    ...(args.poster ? [`[0:V:0]${posterFilter(args.poster.plan)}[poster]`] : []),
  ].join(";");
  // The encoder's keyframes: the run's first frame, then the first at or after each segment start
  // after it (after a pre-roll: from `fromSeconds` on, where the pre-roll ends), its `t` counting
  // from the first frame.
  const firstCut = (preRoll > 0 ? fromSeconds : segmentStart(plan, firstSegment + 1)) - video.first;
  const outputs: FfmpegOutput[] = [
    ...videoRungs.map((rung, i) => ({
      target: segmentFiles(rung, format),
      options: [
        "-map",
        `[v${i}]`,
        ...frameRateCap(fps),
        ...videoEncoderOptions(
          rungEncoder(encoder, rung),
          rung,
          segmentSeconds,
          fps,
          videoRungs,
          tuning.x264Options,
          firstCut - CUT_SLACK_SECONDS,
        ),
        ...threads(rung),
        ...(preRoll > 0 ? preRollOptions(video.kept - video.first) : []),
        // The segment muxer's time 0 is the run's first kept frame (its list's first duration
        // counts from 0), so every video cut and offset counts from there.
        ...segmentOptions(
          rung,
          format,
          firstSegment,
          video.kept,
          cuts.map((cut) => cut - video.kept - CUT_SLACK_SECONDS),
        ),
      ],
    })),
    ...audioRungs.map((rung, i) => ({
      target: segmentFiles(rung, format),
      options: [
        "-map",
        audioFilter ? `[a${i}]` : "0:a:0",
        ...audioRungEncoderOptions(rung),
        // The audio is cut exactly where the run starts (`fromSeconds`: an audio run has no
        // pre-roll). The AAC encoder's first packet (its priming) starts this long before it:
        // the audio is cut that much earlier, so a resumed run's first packet follows the kept ones.
        ...segmentOptions(
          rung,
          format,
          firstSegment,
          fromSeconds,
          cuts.map((cut) => cut - fromSeconds - AAC_PRIMING_SECONDS),
        ),
      ],
    })),
  ];
  if (args.storyboard) outputs.push(storyboardSheetsOutput(args.storyboard.outDir, "[storyboard]"));
  if (args.poster) outputs.push(posterOutput(args.poster.outFile, "[poster]"));
  return { ...(graph ? { filterGraph: graph } : {}), outputs };
}

/**
 * Where a run's video starts, in media time: its first frame (`first`, the pre-roll's when it has
 * one) and the first frame of its first segment (`kept`).
 *
 * ffmpeg writes video at a constant frame rate, on a grid of whole frame intervals counted from
 * the output's time 0, which after a seek (`-ss`) is the seek point: a frame that comes after it
 * is moved onto the grid. At 25 fps a frame starts every whole second, so the seek point is a
 * frame's time. At 30000/1001 fps the first frame at or after second s comes 0.03·s of an interval
 * later (frame 510 at 17.017 s): the run moved it to 17 s, or showed it twice when it was half an
 * interval late or more, and every later frame moved with it; a resumed run or a chunk then
 * repeated a frame at its join and shifted its timestamps by up to half an interval (−17 ms at
 * 17 s), and a frame could cross a cut. A run that seeks therefore counts its video's time from
 * its first frame (`setpts=PTS-STARTPTS`), whose exact time is read from the source's packets
 * beforehand, and takes its keyframes, cuts and timestamps from there. (`-copyts` alone does not
 * do it on FFmpeg 5.1: `-force_key_frames`' `t` counts from the first frame anyway, and the
 * segment muxer lists its first segment as starting at time 0.)
 */
interface VideoStart {
  first: number;
  kept: number;
}

/** The VideoStart of a run that seeks to `runStart` and keeps its frames from `fromSeconds` on. */
async function videoStartAfterSeek(
  input: ProbedInput,
  runStart: number,
  fromSeconds: number,
  signal: AbortSignal,
): Promise<VideoStart> {
  let frames: (number | null)[];
  try {
    frames = await firstVideoFrames(input, [runStart, fromSeconds], { signal });
  } catch (err) {
    // The source was probed whole before: reading it again failing is the reading's fault (a
    // network hiccup), as an ffmpeg failure is taken to be.
    if (!(err instanceof MediaError)) throw err;
    const details = { retryable: true, command: err.command, stderrTail: err.stderrTail, cause: err };
    throw new MediaError(`Could not read where the source's frames start: ${err.message}`, details);
  }
  const [first, kept] = frames;
  // No frame found (past the source's end): the run writes no video, whatever the offsets.
  return { first: first ?? runStart, kept: kept ?? fromSeconds };
}

/** The filtered audio as `[a0]`, or split into `[a0]`…`[a{n-1}]` for several audio rungs. */
function audioFanOut(count: number): string {
  if (count === 1) return "[a0]";
  return `,asplit=${count}${Array.from({ length: count }, (_, i) => `[a${i}]`).join("")}`;
}

/**
 * Drops a run's pre-roll once encoded: every packet before the second keyframe, the one forced at
 * the pre-roll's end (a pre-roll of a few seconds holds no other: x264 makes one every 250 frames
 * at most, NVENC every two segments). The noise filter with amount 0 changes no byte of the rest
 * (`noise` evaluates `pts` in a time base FFmpeg 5.1 does not tell it, hence the keyframe count).
 * What is kept is moved `seconds` earlier (the pre-roll's length, from its first frame to the
 * first frame kept), so the segment muxer's timeline and cuts start at the run's first segment as
 * without a pre-roll.
 */
function preRollOptions(seconds: number): string[] {
  if (seconds <= 0) return [];
  return ["-bsf:v", "noise=amount=0:drop=not(st(0\\,ld(0)+key*gt(n\\,0)))", "-output_ts_offset", (-seconds).toFixed(6)];
}

/** ffmpeg's AAC encoder starts with 1024 samples of priming, at the audio rung's 48 kHz. */
export const AAC_PRIMING_SECONDS = 1024 / 48_000;
