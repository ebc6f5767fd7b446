// What runs on this machine, read from Linux's /proc: which processes a process started or holds in
// its process group, where a process works, and whether a process seen earlier is still the same one.
// Tests, bench/ and scripts/start-check.ts all look here.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { CLOCK_TICKS_PER_SECOND, parseProcStat } from "../../src/shared/proc-stat.ts";

/** One live process; `startTime` (clock ticks since boot) tells a reused pid apart. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  startTime: number;
  command: string;
}

/** The process `pid`, or null when it is gone or a zombie. */
function readProcess(pid: number): ProcessInfo | null {
  try {
    const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
    if (stat.state === "Z" || stat.state === "X") return null;
    // proc(5): 4 is the parent's pid, 5 the process group, 22 the start time.
    return { pid, ppid: stat.field(4), pgrp: stat.field(5), startTime: stat.field(22), command: stat.comm };
  } catch {
    return null;
  }
}

/** Every live (not zombie) process. */
export function listProcesses(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProcess(Number(name));
    if (p) found.push(p);
  }
  return found;
}

/**
 * The live children of `pid` (default this process), read from each of its threads' `children`
 * file: a few small reads, where `listProcesses` reads every process on the machine. A test that
 * samples its children every few milliseconds spent seconds of CPU in that scan while other files
 * ran beside it. A kernel without those files (CONFIG_PROC_CHILDREN) falls back to the scan.
 */
export function childrenOf(pid: number = process.pid): ProcessInfo[] {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const pids = new Set<number>();
  for (const tid of threads) {
    let listed: string;
    try {
      listed = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" && tid === String(pid)) {
        return listProcesses().filter((p) => p.ppid === pid);
      }
      continue;
    }
    for (const child of listed.split(" ")) if (child) pids.add(Number(child));
  }
  return [...pids].flatMap((child) => {
    const p = readProcess(child);
    return p && p.ppid === pid ? [p] : [];
  });
}

/** True while the process seen as `p` runs (same pid, same start time). */
export function stillRunning(p: ProcessInfo): boolean {
  return readProcess(p.pid)?.startTime === p.startTime;
}

/** The pids among `pids` that are still alive (not zombies). */
export function alivePids(pids: number[]): number[] {
  return pids.filter((pid) => readProcess(pid) !== null);
}

/** Seconds since the process started. */
export function ageSeconds(p: ProcessInfo): number {
  const uptime = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  return uptime - p.startTime / CLOCK_TICKS_PER_SECOND;
}

/** The working directory of a process, or null when it is gone or unreadable. */
export function workingDirectory(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** The arguments a process was started with, or none when it is gone or unreadable. */
function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/** Live processes (of `all`) whose working directory is `root` or anywhere below it. */
function workingUnder(root: string, all: ProcessInfo[]): (ProcessInfo & { cwd: string })[] {
  return all
    .map((p) => ({ ...p, cwd: workingDirectory(p.pid) ?? "" }))
    .filter((p) => p.cwd === root || p.cwd.startsWith(`${root}/`));
}

/** Pids of processes whose working directory is `root` or anywhere below it (a worker's job temp dirs). */
export function processesWorkingUnder(root: string): number[] {
  return workingUnder(root, listProcesses()).map((p) => p.pid);
}

/** Pids of live processes whose working directory is `dir`. */
export function processesWithCwd(dir: string): number[] {
  return listProcesses()
    .filter((p) => workingDirectory(p.pid) === dir)
    .map((p) => p.pid);
}

/** ffmpeg processes whose working directory is under `root` (the worker runs each in its job's temp dir). */
export function ffmpegUnder(root: string, all: ProcessInfo[] = listProcesses()): (ProcessInfo & { cwd: string })[] {
  return workingUnder(
    root,
    all.filter((p) => p.command === "ffmpeg"),
  );
}

/**
 * Whether an ffmpeg of one of `jobIds` runs: one whose working directory under `workDir` (the
 * workers' temp dirs, each named after its job) is one of theirs, or one a process of `runners` (the
 * workers running those jobs) started whose working directory is not another job's there (a live
 * broadcast's encode beside it is not theirs).
 */
export function encodesJobs(
  workDir: string,
  jobIds: readonly string[],
  runners: readonly number[],
  all: ProcessInfo[] = listProcesses(),
): boolean {
  const theirs = (cwd: string) => jobIds.some((id) => cwd.includes(id));
  return (
    ffmpegUnder(workDir, all).some((p) => theirs(p.cwd)) ||
    runners.some((pid) =>
      familyOf(pid, all).some((p) => {
        if (p.command !== "ffmpeg") return false;
        const cwd = workingDirectory(p.pid) ?? "";
        return !(cwd === workDir || cwd.startsWith(`${workDir}/`)) || theirs(cwd);
      }),
    )
  );
}

/** Pids of this process's live children whose command line mentions `entry`. */
export function childProcessPids(entry: string): number[] {
  return childrenOf()
    .filter((p) => commandLine(p.pid).some((arg) => arg.includes(entry)))
    .map((p) => p.pid);
}

/**
 * Live processes (of `all`) that `pid` started, directly or not, and with `withGroup` also those in
 * its process group (a child may have left the tree when its parent died).
 */
function spawnedBy(pid: number, all: ProcessInfo[], withGroup: boolean): ProcessInfo[] {
  const found = new Set<number>([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!found.has(p.pid) && (found.has(p.ppid) || (withGroup && p.pgrp === pid))) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => p.pid !== pid && found.has(p.pid));
}

/** Pids of every live descendant of `root` (children, grandchildren, …). */
export function descendantPids(root: number): number[] {
  return spawnedBy(root, listProcesses(), false).map((p) => p.pid);
}

/** Live processes (of `all`, default every one now) started by `pid`, directly or not, or in its process group. */
export function familyOf(pid: number, all: ProcessInfo[] = listProcesses()): ProcessInfo[] {
  return spawnedBy(pid, all, true);
}

/** Live processes in any of the process groups `groups`. */
export function inGroups(groups: Iterable<number>): ProcessInfo[] {
  const wanted = new Set(groups);
  return listProcesses().filter((p) => wanted.has(p.pgrp));
}

/** CPU seconds (user + system) the processes `pids` have used so far; one that exited counts none. */
export function cpuSecondsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
      ticks += stat.field(14) + stat.field(15);
    } catch {
      // Exited meanwhile.
    }
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}
