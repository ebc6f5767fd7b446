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
