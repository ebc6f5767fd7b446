import { mkdir } from "node:fs/promises";
import path from "node:path";
import { TIMELINE_LEAD_SECONDS } from "../../src/protocol/media-timeline.ts";
import type { ProbeResult, Rung, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { MediaError } from "./errors.ts";
import { runFfmpeg, type FfmpegInput, type FfmpegOutput, type FfmpegRun, type FfmpegStatus } from "./ffmpeg-process.ts";
import { audioRungEncoderOptions, type PlannedRung, videoRateControl } from "./ladder.ts";
import { decodeLimitOptions, inputSeekOptions, mediaInputOptions, type ProbedInput } from "./media-input.ts";
import { rungEncoder, type VideoEncoder } from "./nvenc.ts";
import { firstVideoFrames } from "./probe.ts";
import { segmentCount, segmentExtension, segmentPlan, segmentStart, type SegmentPlan } from "./segments.ts";
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

/** How a ladder encode scales its rungs and which libx264 settings each rung gets. */
export interface LadderTuning {
  /** How the filter graph scales the rungs: see ladderScaleGraph. */
  scaling: "intermediate" | "cascade";
  /** libx264 options of a rung of `videoRungs` besides its rate control, profile, level and keyframes. */
  x264Options(rung: Rung, videoRungs: Rung[]): string[];
}

/**
 * The worker's tuning. Every rung keeps libx264 veryfast's rate control, mbtree and lookahead, so
 * each writes its target bits, and the top rungs (most of the pixels) keep veryfast as it is: nothing
 * cheaper measured equal there. The rungs from the intermediate (ladderScaleGraph) down to 360p, at
 * most 540p, lost two or more resamplings to the cascade and score 0.5–1.5 dB higher for it; part of
 * that buys a cheaper search: subpixel refinement 1 instead of 2 and fixed B-frame placement (about
 * −0.5 dB, −15 % CPU). 240p and 144p keep veryfast: they cost next to nothing, and 240p under a 720p
 * source scored 0.17 dB below the cascade with the cheaper search. `npm run bench`
 * prints each rung before and after.
 */
export const LADDER_TUNING: LadderTuning = {
  scaling: "intermediate",
  x264Options(rung, videoRungs) {
    const shortSide = Math.min(rung.width ?? 0, rung.height ?? 0);
    const cheaperSearch = shortSide > 240 && shortSide <= Math.min(540, intermediateShortSide(videoRungs));
    return ["-preset", "veryfast", ...(cheaperSearch ? ["-x264-params", "subme=1:b-adapt=0"] : [])];
  },
};

/** The libx264 presets an operator may choose for every rung (X264_PRESET), fastest first. */
export const X264_PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] as const;
export type X264Preset = (typeof X264_PRESETS)[number];

/** The worker's scaling with one libx264 preset on every rung (X264_PRESET) instead of LADDER_TUNING's. */
export function presetTuning(preset: X264Preset): LadderTuning {
  return { scaling: LADDER_TUNING.scaling, x264Options: () => ["-preset", preset] };
}

/** The short side of the smallest rung at least half the top rung's: the scaling intermediate. */
function intermediateShortSide(videoRungs: Rung[]): number {
  const sides = videoRungs.map((r) => Math.min(r.width ?? 0, r.height ?? 0));
  const half = (sides[0] ?? 0) / 2;
  return Math.min(...sides.filter((side) => side >= half));
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
  const { input, ladder, workDir, segmentSeconds } = args;
  const plan: SegmentPlan = {
    segmentSeconds,
    firstSegmentSeconds: args.firstSegmentSeconds ?? segmentPlan(segmentSeconds).firstSegmentSeconds,
  };
  const videoRungs = ladder.filter((r) => r.kind === "VIDEO");
  const audioRungs = ladder.filter((r) => r.kind === "AUDIO");
  const firstSegment = args.resumeFrom?.segments ?? 0;
  const format = args.segmentFormat ?? "TS";
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
  const fps = args.probe.fps;
  const encoder = args.encoder ?? "libx264";
  const tuning = args.tuning ?? LADDER_TUNING;
  const threads = (rung: PlannedRung): string[] =>
    rungEncoder(encoder, rung) === "libx264" && args.x264Threads ? ["-threads", String(args.x264Threads(rung))] : [];

  const { video: videoFilter, audio: audioFilter, inputs: extraInputs = [] } = args.sourceFilters ?? {};
  const source = videoFilter ? "[src]" : "[0:V:0]";
  // The graph's timestamps count from the seek, and trim drops every frame from `end` on: the run
  // keeps exactly the frames before the stop, the next run's seek the ones after. ffmpeg stops
  // reading the input once the trim has ended.
  const stop = stopSegment === null ? "" : `trim=end=${(segmentStart(plan, stopSegment) - runStart).toFixed(6)}`;
  const seeks = seek.includes("-ss");
  if (args.storyboard && (seeks || firstSegment > 0 || stopSegment !== null || videoRungs.length === 0))
    throw new Error("A run makes the storyboard only when it reads the whole source for video rungs");
  if (args.poster && (seeks || firstSegment > 0 || videoRungs.length === 0))
    throw new Error("A run makes the poster only when it reads the source from its start for video rungs");

  /** The run's command once the media times of its first video frames are known. */
  const command = (video: VideoStart): Pick<FfmpegRun, "filterGraph" | "outputs"> => {
    // The video counts its time from its first frame: see VideoStart.
    const videoTiming = [stop, ...(seeks ? ["setpts=PTS-STARTPTS"] : [])].filter(Boolean).join(",");
    const graph = [
      ...(videoRungs.length > 0 && videoFilter ? [videoFilter] : []),
      ...(videoRungs.length > 0 && videoTiming ? [`${source}${videoTiming}[timed]`] : []),
      ...(videoRungs.length > 0
        ? [ladderScaleGraph(videoRungs, tuning.scaling, videoTiming ? "[timed]" : source)]
        : []),
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
  };

  let latest: FfmpegStatus | null = null;
  let startedAt: number | null = null;
  const done = Promise.all(ladder.map((r) => mkdir(path.join(workDir, r.name), { recursive: true })))
    .then(async () =>
      videoRungs.length > 0 && seeks
        ? videoStartAfterSeek(input, runStart, fromSeconds, args.signal)
        : { first: runStart, kept: fromSeconds },
    )
    .then((video) =>
      runFfmpeg({
        inputs: [
          { source: input.url, options: [...mediaInputOptions(input), ...decodeLimitOptions(), ...seek] },
          ...extraInputs,
        ],
        ...command(video),
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

/**
 * How far below a cut its keyframe and its segment start are asked for: the encoder compares the
 * cut with a frame's time in floating point and the segment muxer in whole microseconds, so a
 * frame exactly on a cut (every whole second at 25 fps) might fall a hair short of it in one of
 * them and not in the other. No frame comes within 1 µs of a cut without being on it.
 */
const CUT_SLACK_SECONDS = 1e-6;

/**
 * The options that encode one video rung: its rate control, its H.264 profile and level, and a
 * keyframe at the run's first frame, at the first frame `keyframes` (a first cut's seconds) or more
 * after it and then every `segmentSeconds` of media time, so every rung's segments start at the
 * same times and each starts with an IDR frame. `keyframes: "source"` puts them where the input has
 * its own instead (beside a rung copied from a live publisher), and x264's own interval past them.
 * No scene-cut keyframes: they would land at different frames in different rungs.
 */
export function videoEncoderOptions(
  encoder: VideoEncoder,
  rung: PlannedRung,
  segmentSeconds: number,
  fps: number,
  videoRungs: Rung[],
  x264Options: LadderTuning["x264Options"] = LADDER_TUNING.x264Options,
  keyframes: number | "source" = segmentSeconds,
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
    keyframes === "source" ? "source" : keyframeTimes(segmentSeconds, keyframes),
  ];
  // x264 makes a keyframe every 250 frames on its own: past two segments, it never comes before the input's.
  const ownInterval = keyframes === "source" ? ["-g", String(Math.ceil(fps * segmentSeconds * 2) + 1)] : [];
  if (encoder === "libx264")
    return ["-c:v", "libx264", ...x264Options(rung, videoRungs), ...common, "-sc_threshold", "0", ...ownInterval];
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
 * The filter graph of a ladder; video rung `i` comes out as `[v{i}]`.
 *
 * `intermediate` (the worker's): the rungs down to half the top rung's size are each scaled from the
 * decoded source, and the smallest of them (540p under a 1080p top) feeds the rungs below it. No
 * rung inherits more than one earlier resampling, and the small rungs' scalers read the intermediate
 * (a quarter of a 1080p frame) instead of the source: bicubic's filter, and so its cost, grows with
 * the ratio, and every rung straight from a 1080p source cost about a tenth more CPU in all.
 * `cascade`: the source is scaled to the top rung and each rung from the one above, which scores
 * 0.5–1.8 dB PSNR lower from 540p down at the same bits.
 * Exported for the benchmark, which runs it without encoders.
 */
export function ladderScaleGraph(
  videoRungs: Rung[],
  scaling: LadderTuning["scaling"] = LADDER_TUNING.scaling,
  // `V` skips attached pictures (cover art), the same stream the probe measured.
  decoded = "[0:V:0]",
): string {
  if (scaling === "cascade") {
    const last = videoRungs.length - 1;
    return videoRungs
      .map((rung, i) => {
        const from = i === 0 ? decoded : `[c${i - 1}]`;
        // setsar=1: even rounding leaves a sliver of aspect error that scale would turn into odd pixel shapes.
        const step = `scale=${rung.width}:${rung.height}:flags=bicubic,setsar=1${i === 0 ? ",format=yuv420p" : ""}`;
        return i === last ? `${from}${step}[v${i}]` : `${from}${step},split=2[v${i}][c${i}]`;
      })
      .join(";");
  }
  // format=yuv420p inside the scale step: one swscale pass converts and resizes.
  const scale = (rung: Rung) => `scale=${rung.width}:${rung.height}:flags=bicubic,format=yuv420p,setsar=1`;
  const intermediate = intermediateShortSide(videoRungs);
  const fromSource = Math.max(
    1,
    videoRungs.filter((r) => Math.min(r.width ?? 0, r.height ?? 0) >= intermediate).length,
  );
  const below = videoRungs.length - fromSource;
  const fanOut = (count: number, label: (j: number) => string) =>
    `split=${count}${Array.from({ length: count }, (_, j) => label(j)).join("")}`;
  const graph = fromSource > 1 ? [`${decoded}${fanOut(fromSource, (j) => `[s${j}]`)}`] : [];
  videoRungs.forEach((rung, i) => {
    const input = fromSource === 1 && i === 0 ? decoded : i < fromSource ? `[s${i}]` : `[m${i}]`;
    const output =
      i === fromSource - 1 && below > 0
        ? `,${fanOut(below + 1, (j) => (j === 0 ? `[v${i}]` : `[m${i + j}]`))}`
        : `[v${i}]`;
    graph.push(`${input}${scale(rung)}${output}`);
  });
  return graph.join(";");
}

/** The filtered audio as `[a0]`, or split into `[a0]`…`[a{n-1}]` for several audio rungs. */
function audioFanOut(count: number): string {
  if (count === 1) return "[a0]";
  return `,asplit=${count}${Array.from({ length: count }, (_, i) => `[a${i}]`).join("")}`;
}

/**
 * ffmpeg writes constant frame rate at the source's nominal rate, which pads a variable-rate
 * phone video (nominal 60, average 35) with duplicated frames; capping at the average keeps the
 * frame count and the duration. A constant-rate source keeps its own rate: the cap is a
 * thousandth above the probe's average, which is rounded to thousandths. At the rounded average
 * itself, 30000/1001 fps (29.97003, probed as 29.97) was written at 2997/100: every frame 33 ns
 * later than the one before it, MPEG-TS timestamps 3004 ticks apart instead of 3003 every 333
 * frames (measured on a 24 s clip, 2026-11-23).
 */
function frameRateCap(averageFps: number): string[] {
  return averageFps > 0 ? ["-fpsmax", ((Math.round(averageFps * 1000) + 1) / 1000).toString()] : [];
}

/**
 * ffmpeg's `-force_key_frames` expression: the first frame, then every cut (`n_forced` counts the
 * forced ones; `t` counts from the first frame).
 */
function keyframeTimes(segmentSeconds: number, firstCutSeconds: number): string {
  if (firstCutSeconds === segmentSeconds) return `expr:gte(t,n_forced*${segmentSeconds})`;
  const firstCut = Number(firstCutSeconds.toFixed(6));
  return `expr:gte(t,if(n_forced,${firstCut}+(n_forced-1)*${segmentSeconds},0))`;
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
const AAC_PRIMING_SECONDS = 1024 / 48_000;

/** A cut this close to the source's end would leave a sliver of a last segment (a few AAC frames): none there. */
const END_MARGIN_SECONDS = 0.1;

/**
 * The cuts of a run that starts at segment `firstSegment`, in media time: up to the start of its
 * last segment when it stops at `stopSegment`, else on past the source's end: the probe's duration
 * may fall short of what the decoder finds, and a cut past the end costs nothing.
 */
function segmentCuts(plan: SegmentPlan, firstSegment: number, duration: number, stopSegment: number | null): number[] {
  const last = stopSegment === null ? segmentCount(plan, duration * 1.1 + 60) : stopSegment - 1;
  const cuts: number[] = [];
  for (let i = firstSegment + 1; i <= last; i++) {
    const at = segmentStart(plan, i);
    if (Math.abs(at - duration) < END_MARGIN_SECONDS) continue;
    cuts.push(at);
  }
  return cuts;
}

/**
 * One rung as the segment muxer writes it: MPEG-TS segments cut at `cuts` (seconds after the
 * output's time 0, which is `zeroSeconds` of media time; on the first keyframe at or after each,
 * which the video encoder forced there; every audio packet is one), numbered from `firstSegment`,
 * and an m3u8 list of them. The hls muxer cannot do this: with event playlists FFmpeg 5.1 applies
 * `-hls_init_time` to every segment. The list is written to a temporary file and renamed, after
 * the segment it adds was written, so whatever it lists is complete; the publisher writes the
 * playlists players read.
 */
export function segmentOptions(
  rung: Rung,
  format: SegmentFormat,
  firstSegment: number,
  zeroSeconds: number,
  /** Where to cut; `everySeconds`: a live encode's, whose end is not known (a cut every so often). */
  cuts: number[] | { everySeconds: number },
): string[] {
  return [
    // Several outputs fed by one filter graph buffer packets while the slowest catches up.
    "-max_muxing_queue_size",
    "4096",
    // Timestamps go to the segment muxer as the encoder made them: its cuts and its list's
    // durations count from 0, and `-initial_offset` moves them in each segment's file.
    "-avoid_negative_ts",
    "disabled",
    "-f",
    "segment",
    ...(format === "FMP4" ? FRAGMENTED_MP4_SEGMENT : ["-segment_format", "mpegts"]),
    ...(Array.isArray(cuts)
      ? [
          "-segment_times",
          // A run of one segment (a chunk, a resume before the last) has no cut: one past any source. FFmpeg
          // reads a plain number of seconds here, not an exponent ("1e9" fails the run).
          cuts.length > 0 ? cuts.map((cut) => cut.toFixed(6)).join(",") : "1000000000",
        ]
      : ["-segment_time", String(cuts.everySeconds)]),
    "-initial_offset",
    (TIMELINE_LEAD_SECONDS + zeroSeconds).toFixed(6),
    "-segment_start_number",
    String(firstSegment),
    "-segment_list",
    `${rung.name}/${RUNG_PLAYLIST}`,
    "-segment_list_type",
    "m3u8",
  ];
}

/**
 * Each fMP4 segment is a fragmented MP4 file of its own (the publisher splits off its init): an
 * empty moov, the segment's samples in one fragment at its close. The segment muxer's inner mp4
 * muxer would shift every segment's timestamps to 0 and move the first one's B-frame delay into an
 * edit list; `frag_discont` without edit lists and without that shift makes each fragment's
 * decode time (tfdt) the packets' own, so the segments continue one another as MPEG-TS ones do.
 */
const FRAGMENTED_MP4_SEGMENT = [
  "-segment_format",
  "mp4",
  "-segment_format_options",
  "movflags=empty_moov+default_base_moof+frag_discont:use_editlist=0:avoid_negative_ts=disabled",
];

/** The segment files of a rung, relative to the work dir (the segment muxer's output). */
function segmentFiles(rung: Rung, format: SegmentFormat): string {
  return `${rung.name}/seg_%05d.${segmentExtension(format)}`;
}
