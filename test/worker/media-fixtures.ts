import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readlinkSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll } from "vitest";

const run = promisify(execFile);

export interface ClipSpec {
  width: number;
  height: number;
  seconds: number;
  audio: boolean;
  /** Written as the stream's legacy `rotate` tag, which the mp4 muxer turns into a display matrix. */
  rotate?: number;
  fps?: number;
}

let fixtureDir: string | undefined;
const made = new Map<string, Promise<string>>();

// Registered when a test file imports this module, so every file that makes media cleans it up.
afterAll(async () => {
  const dir = fixtureDir;
  fixtureDir = undefined;
  made.clear();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A temp dir for the current test file's media, removed after its last test. */
export function fixturesDir(): string {
  fixtureDir ??= mkdtempSync(path.join(tmpdir(), "videograph-fixtures-"));
  return fixtureDir;
}

/** Runs ffmpeg quietly and fails with its stderr. */
export async function runFfmpeg(args: string[]): Promise<void> {
  await run("ffmpeg", ["-nostdin", "-hide_banner", "-v", "error", "-y", ...args]);
}

/**
 * An H.264 (+ AAC) mp4 generated with lavfi's `testsrc2` and `sine`; the same spec returns the
 * same file within a test process.
 */
export function makeClip(spec: ClipSpec): Promise<string> {
  const fps = spec.fps ?? 25;
  const name = `clip-${spec.width}x${spec.height}-${spec.seconds}s-${fps}fps-${spec.audio ? "av" : "v"}-r${spec.rotate ?? 0}.mp4`;
  let clip = made.get(name);
  if (!clip) {
    clip = generate(path.join(fixturesDir(), name), spec, fps);
    made.set(name, clip);
  }
  return clip;
}

async function generate(file: string, spec: ClipSpec, fps: number): Promise<string> {
  const encoded = spec.rotate ? `${file}.unrotated.mp4` : `${file}.tmp.mp4`;
  await runFfmpeg([
    "-f", "lavfi", "-i", `testsrc2=size=${spec.width}x${spec.height}:rate=${fps}:duration=${spec.seconds}`,
    ...(spec.audio ? ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${spec.seconds}`] : []),
    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
    ...(spec.audio ? ["-c:a", "aac", "-b:a", "96k"] : []),
    encoded,
  ]);
  if (spec.rotate) {
    // FFmpeg 5.1 writes the rotate tag into the display matrix only when stream-copying.
    await runFfmpeg(["-i", encoded, "-map", "0", "-c", "copy", "-metadata:s:v:0", `rotate=${spec.rotate}`, `${file}.tmp.mp4`]);
    await rm(encoded, { force: true });
  }
  await rename(`${file}.tmp.mp4`, file);
  return file;
}

/** Pids of live processes whose working directory is `dir` (Linux /proc). */
export function processesWithCwd(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === dir) pids.push(Number(entry));
    } catch {
      // The process exited or is not ours to inspect.
    }
  }
  return pids;
}
