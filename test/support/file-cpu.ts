import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
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
 *
 * With `FILE_CPU_PROFILE=1` as well, each file's process also writes V8's CPU profile of the file
 * (its hooks and tests, not its imports) to `$FILE_CPU_DIR/<pid>-<name>.cpuprofile`, for Chrome's
 * DevTools or a script. V8 samples its thread whenever it is not waiting for events, so a blocking
 * call (`execFileSync`, a spawn waiting for its child's exec) and time spent waiting for a core on
 * a busy machine count as if they were CPU: read it for where a file's JavaScript goes, and take
 * CPU seconds from `files.tsv` and process accounting.
 */
const dir = process.env.FILE_CPU_DIR;
const profiling = dir && process.env.FILE_CPU_PROFILE === "1" ? new Session() : null;

if (dir) {
  mkdirSync(dir, { recursive: true });
  let cpuAt = 0;
  let wallAt = 0;
  beforeAll(async () => {
    cpuAt = processTreeCpuSeconds();
    wallAt = Date.now();
    if (profiling) {
      profiling.connect();
      await profiling.post("Profiler.enable");
      await profiling.post("Profiler.start");
    }
  });
  afterAll(async () => {
    const file = path.relative(process.cwd(), expect.getState().testPath ?? "unknown");
    if (profiling) {
      const { profile } = await profiling.post("Profiler.stop");
      profiling.disconnect();
      writeFileSync(path.join(dir, `${process.pid}-${path.basename(file)}.cpuprofile`), JSON.stringify(profile));
    }
    const line = `${(processTreeCpuSeconds() - cpuAt).toFixed(2)}\t${((Date.now() - wallAt) / 1000).toFixed(1)}\t${file}\n`;
    appendFileSync(path.join(dir, "files.tsv"), line);
    appendFileSync(path.join(dir, "spans.tsv"), `${process.pid}\t${wallAt}\t${Date.now()}\t${file}\n`);
  });
}
