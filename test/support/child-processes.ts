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
