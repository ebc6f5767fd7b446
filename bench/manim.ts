// Manim benchmark (`npm run bench:manim`): the standard scene (bench/manim-standard-scene.py:
// shapes, Text, a Transform, MathTex; 3.5 s) rendered per quality preset exactly as the worker
// renders it (the same Manim, command line and sandbox), uncached. Prints wall seconds, CPU
// seconds and the peak RSS of the largest process (Manim's Python; LaTeX and dvisvgm are smaller).
//   npm run bench:manim                              every preset
//   npm run bench:manim -- --qualities=LOW,MEDIUM    some
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ManimQuality } from "../src/protocol/source-messages.ts";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const SCENE = path.join(import.meta.dirname, "manim-standard-scene.py");
// Runs Manim as a child and reports what the kernel counted for it once it was reaped.
const MEASURE = String.raw`
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"bench: peak_rss_kb={r.ru_maxrss} cpu_s={r.ru_utime + r.ru_stime:.2f}", file=sys.stderr)
sys.exit(code)
`;

const { values: flags } = parseCommandLine(
  `usage: npm run bench:manim [-- --qualities=LOW,MEDIUM,HIGH,FOURK]
Renders bench/manim-standard-scene.py with the worker's Manim in the sandbox at each quality and
prints wall seconds, CPU seconds and peak memory per quality.`,
  { options: { qualities: { type: "string", default: "LOW,MEDIUM,HIGH,FOURK" } } },
);
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { DEFAULT_MANIM_LIMITS } = await import("../render-worker/handlers/render-manim.ts");
const { locateManim } = await import("../render-worker/manim/capability.ts");
const { MANIM_QUALITY, manimRenderArgs, SCENE_FILE } = await import("../render-worker/manim/command.ts");
const { runSandboxed } = await import("../render-worker/sandbox/bubblewrap.ts");
const qualities = flags.qualities.split(",").map((q) => q.trim()) as ManimQuality[];
for (const q of qualities) {
  if (!MANIM_QUALITY[q])
    usageError(
      "usage: npm run bench:manim [-- --qualities=LOW,MEDIUM,HIGH,FOURK]",
      `Unknown quality ${q}; known: ${Object.keys(MANIM_QUALITY).join(", ")}`,
    );
}

const manim = await locateManim(process.env.MANIM_BIN || undefined);
console.log(
  `Manim: ${manim.command} (${manim.foundBy}); ${os.cpus().length} ` +
    `× ${os.cpus()[0]?.model ?? "CPU"}; ${new Date().toISOString()}`,
);
console.log("quality  size        fps  wall s  CPU s  peak RSS MB");
for (const quality of qualities) {
  const workDir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-manim-"));
  try {
    await copyFile(SCENE, path.join(workDir, SCENE_FILE));
    const result = await runSandboxed({
      command: [
        manim.python,
        "-c",
        MEASURE,
        manim.command,
        ...manimRenderArgs({ quality, renderer: "CAIRO", sceneName: "Standard" }),
      ],
      workDir,
      limits: DEFAULT_MANIM_LIMITS,
      readOnlyPaths: manim.readOnlyPaths,
      env: { PYTHONDONTWRITEBYTECODE: "1" },
    });
    const measured = /bench: peak_rss_kb=(\d+) cpu_s=([\d.]+)/.exec(result.stderrTail);
    if (result.exitCode !== 0 || !measured)
      throw new Error(`${quality} failed (exit ${result.exitCode}): ${result.stderrTail.slice(-2000)}`);
    const q = MANIM_QUALITY[quality];
    const row = [
      quality.padEnd(8),
      `${q.width}x${q.height}`.padEnd(11),
      String(q.fps).padStart(4),
      (result.durationMs / 1000).toFixed(1).padStart(7),
      Number(measured[2]).toFixed(1).padStart(6),
      String(Math.round(Number(measured[1]) / 1024)).padStart(12),
    ];
    console.log(row.join(" "));
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
