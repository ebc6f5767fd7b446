// Renders bench/manim-standard-scene.py with the worker's own Manim handler (sandbox, MEDIUM
// quality) and tiles six evenly spaced frames of the movie into docs/manim-frames.png, the
// picture of a real render in docs/manim-and-compositions.md (`npm run docs:manim-frames`).
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run docs:manim-frames
Renders bench/manim-standard-scene.py with the worker's own Manim handler (sandbox, MEDIUM) and
tiles six frames of the movie into docs/manim-frames.png.`,
  {},
);
// The renderer is imported once the command line is read: --help needs none of it.
const { renderManim } = await import("../render-worker/handlers/render-manim.ts");
const { createLocalWorkerStorage } = await import("../render-worker/storage/local.ts");

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "..");
const OUTPUT = path.join(root, "docs/manim-frames.png");
const FRAMES = 6;

const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-docs-manim-"));
try {
  const outputKey = "frames/standard.mp4";
  await renderManim(
    {
      v: 2,
      type: "render_manim",
      jobId: "00000000-0000-4000-8000-000000000001",
      attempt: 1,
      videoId: "00000000-0000-4000-8000-000000000002",
      tenantId: "docs",
      code: await readFile(path.join(root, "bench/manim-standard-scene.py"), "utf8"),
      sceneName: "Standard",
      quality: "MEDIUM",
      renderer: "CAIRO",
      outputKey,
      cachePrefix: "manim-cache/docs",
    },
    {
      storage: createLocalWorkerStorage(path.join(dir, "data")),
      emit: async () => {},
      signal: new AbortController().signal,
      workDir: path.join(dir, "work"),
      progressIntervalMs: 1000,
      manim: { bin: process.env.MANIM_BIN || undefined },
    },
  );
  const movie = path.join(dir, "data", outputKey);
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", movie]);
  const duration = Number(stdout);
  // Frames at the middle of six equal slices, so the first is not blank and the last is the end state.
  await run("ffmpeg", [
    "-v",
    "error",
    "-y",
    "-i",
    movie,
    "-vf",
    `fps=${FRAMES}/${duration},scale=480:-2,tile=3x2:padding=6:color=white`,
    "-frames:v",
    "1",
    OUTPUT,
  ]);
  console.log(`wrote ${path.relative(root, OUTPUT)} from a ${duration.toFixed(1)} s render`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
