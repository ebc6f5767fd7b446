import { appendFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, expect } from "vitest";

/**
 * With `FILE_CPU_DIR` set, each test file adds a line `cpu-seconds wall-seconds file` to
 * `$FILE_CPU_DIR/files.tsv`: the CPU its process and every child it waited for (workers, API
 * processes, ffmpeg, Chromium, the Manim sandbox) used from its first hook to its last. Postgres'
 * backends and the shared emulators are not in it. Unset, it does nothing (testing.md, "Where the
 * time goes").
 */
const dir = process.env.FILE_CPU_DIR;

/** user + system time of this process and of its waited-for children, in clock ticks (100 a second). */
function ticks(): number {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
}

if (dir) {
  let cpuAt = 0;
  let wallAt = 0;
  beforeAll(() => {
    cpuAt = ticks();
    wallAt = Date.now();
  });
  afterAll(() => {
    const file = path.relative(process.cwd(), expect.getState().testPath ?? "unknown");
    const line = `${((ticks() - cpuAt) / 100).toFixed(2)}\t${((Date.now() - wallAt) / 1000).toFixed(1)}\t${file}\n`;
    appendFileSync(path.join(dir, "files.tsv"), line);
  });
}
