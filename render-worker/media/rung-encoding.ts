import type { Rung } from "../../src/protocol/media-facts.ts";
import { videoRateControl, type PlannedRung } from "./ladder.ts";
import type { VideoEncoder } from "./nvenc.ts";

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

/** The short side of the smallest rung at least half the top rung's: the scaling intermediate. */
function intermediateShortSide(videoRungs: Rung[]): number {
  const sides = videoRungs.map((r) => Math.min(r.width ?? 0, r.height ?? 0));
  const half = (sides[0] ?? 0) / 2;
  return Math.min(...sides.filter((side) => side >= half));
}

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

/**
 * ffmpeg writes constant frame rate at the source's nominal rate, which pads a variable-rate
 * phone video (nominal 60, average 35) with duplicated frames; capping at the average keeps the
 * frame count and the duration. A constant-rate source keeps its own rate: the cap is a
 * thousandth above the probe's average, which is rounded to thousandths. At the rounded average
 * itself, 30000/1001 fps (29.97003, probed as 29.97) was written at 2997/100: every frame 33 ns
 * later than the one before it, MPEG-TS timestamps 3004 ticks apart instead of 3003 every 333
 * frames (measured on a 24 s clip, 2026-11-23).
 */
export function frameRateCap(averageFps: number): string[] {
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
