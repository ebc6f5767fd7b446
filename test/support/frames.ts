import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const FPS = 25;

/** The first `count` frames from `at` seconds of `file`, as 32x18 grey pixels each. */
export async function greyFrames(file: string, count: number, at = 0): Promise<Buffer[]> {
  const { stdout } = await run(
    "ffmpeg",
    [
      "-v",
      "error",
      ...(at > 0 ? ["-ss", at.toFixed(6)] : []),
      "-i",
      file,
      "-frames:v",
      String(count),
      // Every decoded frame once: no frame repeated or dropped to keep a constant rate.
      "-fps_mode",
      "passthrough",
      "-vf",
      "scale=32:18:flags=area,format=gray",
      "-f",
      "rawvideo",
      "-",
    ],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  const size = 32 * 18;
  return Array.from({ length: stdout.length / size }, (_, i) => stdout.subarray(i * size, (i + 1) * size));
}

const difference = (a: Buffer, b: Buffer) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]!), 0) / a.length;

/** Which frame of `source` (by index; makeClip's 25 fps) `frame` shows: the closest of frames `around` ± 3. */
export async function sourceFrameShown(frame: Buffer, source: string, around: number): Promise<number> {
  const first = Math.max(0, around - 3);
  const candidates = await greyFrames(source, 7, first / FPS);
  const differences = candidates.map((candidate) => difference(frame, candidate));
  return first + differences.indexOf(Math.min(...differences));
}

/** How many bits makeFrameCounterClip's counter has: blocks of a tenth of the width. */
const COUNTER_BITS = 10;

/**
 * The frame index each frame of `file` (an encode of makeFrameCounterClip's clip, at any size)
 * shows, in presentation order, every decoded frame once: the counter strip's middle rows
 * averaged over each block, a block brighter than mid-grey a set bit.
 */
export async function frameIndices(file: string): Promise<number[]> {
  const { stdout } = await run(
    "ffmpeg",
    [
      "-v",
      "error",
      "-i",
      file,
      "-fps_mode",
      "passthrough",
      // The strip is the top ninth of the frame (40 of 360 rows); its middle half is read.
      "-vf",
      `crop=iw:ih/18:0:ih/36,scale=${COUNTER_BITS}:1:flags=area,format=gray`,
      "-f",
      "rawvideo",
      "-",
    ],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  return Array.from({ length: stdout.length / COUNTER_BITS }, (_, i) =>
    [...stdout.subarray(i * COUNTER_BITS, (i + 1) * COUNTER_BITS)].reduce(
      (index, value, bit) => index + (value > 128 ? 2 ** bit : 0),
      0,
    ),
  );
}
