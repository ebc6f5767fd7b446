import { readdirSync, readFileSync } from "node:fs";

/** Pids of this process's live children whose command line mentions `entry` (Linux /proc). */
export function childProcessPids(entry: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name in parentheses may hold spaces; the fields after it do not.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) !== process.pid || state === "Z") continue;
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").some((arg) => arg.includes(entry))) pids.push(Number(name));
    } catch {
      // The process exited between listing and reading.
    }
  }
  return pids;
}

function parentPid(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return state === "Z" ? null : Number(ppid);
  } catch {
    return null;
  }
}

/** Pids of every live descendant of `root` (children, grandchildren, …; Linux /proc). */
export function descendantPids(root: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = parentPid(Number(name));
    if (ppid !== null) parents.set(Number(name), ppid);
  }
  const found = new Set<number>([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (found.has(ppid) && !found.has(pid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  found.delete(root);
  return [...found];
}

/** The pids among `pids` that are still alive (not zombies). */
export function alivePids(pids: number[]): number[] {
  return pids.filter((pid) => parentPid(pid) !== null);
}
