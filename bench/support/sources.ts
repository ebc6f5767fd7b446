// The generated sources the encoding benchmarks read (`npm run bench`, `npm run bench:latency`, and
// the load test's and chaos run's clips): each a lavfi video source beside a tone, written once as a
// mezzanine file. lavfi only, deterministic, made on this machine; nothing is downloaded.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A video frame size; both even, as 4:2:0 needs. */
interface FrameSize {
  width: number;
  height: number;
}

/** One generated source: what it is, and the lavfi graph that draws `seconds` of it. */
interface BenchSource {
  description: string;
  video(size: FrameSize & { fps: number; seconds: number }): string;
}

const even = (n: number) => 2 * Math.round(n / 2);

/** How much larger than the frame the camera's scene is: the frame pans across the difference. */
const CAMERA_SCENE_SCALE = 1.25;

export const BENCH_SOURCES = {
  testsrc2: {
    description: "lavfi's test pattern: flat colour fields, a few moving shapes, a still background",
    video: ({ width, height, fps, seconds }) => `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`,
  },
  camera: {
    description:
      `testsrc2 at ${CAMERA_SCENE_SCALE}× the frame's size, panned to and fro under it, with temporal grain ` +
      "(noise=alls=10:allf=t)",
    video: ({ width, height, fps, seconds }) => {
      const scene = `${even(width * CAMERA_SCENE_SCALE)}x${even(height * CAMERA_SCENE_SCALE)}`;
      // A pan that x264's motion search can follow: sideways over 7 s and up and down over 5 s, at
      // 1080p30 up to about 7 px a frame sideways and 6 up or down (crop moves in whole chroma pixels).
      // The grain is new in every frame, as a sensor's: no block of one frame repeats in the next.
      return [
        `testsrc2=size=${scene}:rate=${fps}:duration=${seconds}`,
        "format=yuv420p",
        `crop=w=${width}:h=${height}:x='(iw-ow)/2*(1+sin(2*PI*t/7))':y='(ih-oh)/2*(1+sin(2*PI*t/5))'`,
        // The noise filter starts from a fixed seed: the same grain on every run.
        "noise=alls=10:allf=t",
      ].join(",");
    },
  },
} satisfies Record<string, BenchSource>;

export type BenchSourceName = keyof typeof BENCH_SOURCES;

export const BENCH_SOURCE_NAMES = Object.keys(BENCH_SOURCES) as BenchSourceName[];

/** How every source is written, for the benchmarks' headers. */
export const MEZZANINE = "H.264 (libx264 ultrafast, CRF 18, yuv420p) + a 440 Hz tone in AAC 128 kb/s, 48 kHz";

/** The names in a comma-separated `--sources` value, in its order; throws naming the known ones on any other. */
export function parseSourceNames(value: string): BenchSourceName[] {
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new Error(`--sources names none; known: ${BENCH_SOURCE_NAMES.join(", ")}`);
  for (const name of names)
    if (!Object.hasOwn(BENCH_SOURCES, name))
      throw new Error(`Unknown source ${name}; known: ${BENCH_SOURCE_NAMES.join(", ")}`);
  return [...new Set(names)] as BenchSourceName[];
}

/** A source clip: which source, how long, its frame size (even) and rate (default 30). */
export interface SourceClip {
  source: BenchSourceName;
  seconds: number;
  width: number;
  height: number;
  fps?: number;
}

/** ffmpeg's arguments that write `clip` to `file` as the MEZZANINE encoding. */
export function sourceCommand(clip: SourceClip, file: string): string[] {
  const { source, seconds, width, height } = clip;
  const fps = clip.fps ?? 30;
  return [
    "-nostdin",
    "-hide_banner",
    "-v",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    BENCH_SOURCES[source].video({ width, height, fps, seconds }),
    "-f",
    "lavfi",
    "-i",
    `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-crf",
    "18",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-b:a",
    "128k",
    file,
  ];
}

/**
 * Writes `seconds` of `source` at `width`x`height` (even) and `fps` (default 30) to
 * `{dir}/{source}-{width}x{height}.mp4` as the MEZZANINE encoding, and returns its path.
 */
export async function generateSource(dir: string, clip: SourceClip, signal?: AbortSignal): Promise<string> {
  const file = path.join(dir, `${clip.source}-${clip.width}x${clip.height}.mp4`);
  await run("ffmpeg", sourceCommand(clip, file), signal ? { signal } : {});
  return file;
}
