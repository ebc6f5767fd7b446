// What runs on this machine, read from Linux's /proc: which processes belong to a process group,
// where an ffmpeg works, and whether a process seen earlier is still the same one.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** One live process; `startTime` (clock ticks since boot) tells a reused pid apart. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  startTime: number;
  command: string;
}

function readProcess(pid: number): ProcessInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    // Fields after the command name: state ppid pgrp session tty tpgid flags … starttime is the 20th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return null;
    return { pid, ppid: Number(fields[1]), pgrp: Number(fields[2]), startTime: Number(fields[19]), command };
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

/** True while the process seen as `p` runs (same pid, same start time). */
export function stillRunning(p: ProcessInfo): boolean {
  return readProcess(p.pid)?.startTime === p.startTime;
}

// Linux reports start times in clock ticks; USER_HZ is 100 on every architecture it runs on here.
const TICKS_PER_SECOND = 100;

/** Seconds since the process started. */
export function ageSeconds(p: ProcessInfo): number {
  const uptime = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  return uptime - p.startTime / TICKS_PER_SECOND;
}

/** The working directory of a process, or null when it is gone or unreadable. */
export function workingDirectory(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** ffmpeg processes whose working directory is under `root` (the worker runs each in its job's temp dir). */
export function ffmpegUnder(root: string, all: ProcessInfo[] = listProcesses()): (ProcessInfo & { cwd: string })[] {
  return all
    .filter((p) => p.command === "ffmpeg")
    .map((p) => ({ ...p, cwd: workingDirectory(p.pid) ?? "" }))
    .filter((p) => p.cwd === root || p.cwd.startsWith(`${root}/`));
}

/** Live processes (of `all`, default every one now) started by `pid`, directly or not, or in its process group (a child may have left it). */
export function familyOf(pid: number, all: ProcessInfo[] = listProcesses()): ProcessInfo[] {
  const found = new Set<number>([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!found.has(p.pid) && (found.has(p.ppid) || p.pgrp === pid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => p.pid !== pid && found.has(p.pid));
}

/** Live processes in any of the process groups `groups`. */
export function inGroups(groups: Iterable<number>): ProcessInfo[] {
  const wanted = new Set(groups);
  return listProcesses().filter((p) => wanted.has(p.pgrp));
}
