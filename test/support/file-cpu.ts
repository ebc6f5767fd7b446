import { appendFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { processTreeCpuSeconds } from "../../render-worker/cpu-meter.ts";

/**
 * With `FILE_CPU_DIR` set, each test file adds a line `cpu-seconds wall-seconds file` to
 * `$FILE_CPU_DIR/files.tsv`: the CPU its process and every child it waited for (workers, API
 * processes, ffmpeg, Chromium, the Manim sandbox) used from its first hook to its last, counted as
 * the worker's own meter counts a run (`processTreeCpuSeconds`). Postgres' backends and the shared
 * emulators are not in it. It also adds `pid start-ms end-ms file` to `spans.tsv`: the vitest
 * process that ran the file and when, to charge a program's starts (scripts/tool-call-log.c) to
 * the file whose process they descend from. The directory is made if missing. Unset, it does
 * nothing (testing.md, "Where the time goes").
 */
const dir = process.env.FILE_CPU_DIR;

if (dir) {
  mkdirSync(dir, { recursive: true });
  let cpuAt = 0;
  let wallAt = 0;
  beforeAll(() => {
    cpuAt = processTreeCpuSeconds();
    wallAt = Date.now();
  });
  afterAll(() => {
    const file = path.relative(process.cwd(), expect.getState().testPath ?? "unknown");
    const line = `${(processTreeCpuSeconds() - cpuAt).toFixed(2)}\t${((Date.now() - wallAt) / 1000).toFixed(1)}\t${file}\n`;
    appendFileSync(path.join(dir, "files.tsv"), line);
    appendFileSync(path.join(dir, "spans.tsv"), `${process.pid}\t${wallAt}\t${Date.now()}\t${file}\n`);
  });
}
