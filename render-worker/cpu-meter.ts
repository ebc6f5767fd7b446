import { readFileSync } from "node:fs";
import type { RunUsage } from "../src/protocol/job-events.ts";
import { CLOCK_TICKS_PER_SECOND, parseProcStat } from "../src/shared/proc-stat.ts";

/**
 * CPU seconds of this process (process.cpuUsage) and of the child processes it has reaped
 * (cutime + cstime of /proc/self/stat, which include their own reaped children: ffmpeg, ffprobe,
 * bubblewrap and manim). A child's CPU counts once it has exited. 0 for children where /proc is missing.
 */
export function processTreeCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6 + reapedChildrenCpuSeconds();
}

function reapedChildrenCpuSeconds(): number {
  try {
    const stat = parseProcStat(readFileSync("/proc/self/stat", "utf8"));
    // cutime and cstime.
    return (stat.field(16) + stat.field(17)) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/**
 * The CPU each run used. The worker's counter is shared by its runs, so every time a run starts,
 * ends or reads its figure, the CPU used since the last such moment is divided equally between the
 * runs that were running meanwhile: exact with WORKER_CONCURRENCY=1, a fair share above it (a
 * child's CPU lands in the interval in which it exits).
 */
export function createCpuMeter(read: () => number = processTreeCpuSeconds) {
  const runs = new Map<string, { cpuSeconds: number; startedAt: number }>();
  let last = read();
  function sample(): void {
    const now = read();
    const share = runs.size > 0 ? (now - last) / runs.size : 0;
    last = now;
    for (const run of runs.values()) run.cpuSeconds += share;
  }
  return {
    start(runId: string): void {
      sample();
      runs.set(runId, { cpuSeconds: 0, startedAt: Date.now() });
    },
    /** What the run used so far; null for a run the meter does not know. */
    usage(runId: string): RunUsage | null {
      sample();
      const run = runs.get(runId);
      if (!run) return null;
      return { cpuSeconds: Math.max(0, run.cpuSeconds), wallSeconds: (Date.now() - run.startedAt) / 1000 };
    },
    stop(runId: string): void {
      sample();
      runs.delete(runId);
    },
  };
}
