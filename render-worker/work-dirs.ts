import { mkdtemp, readdir, readFile, readlink, rm, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseProcStat } from "../src/shared/proc-stat.ts";
import { log } from "./log.ts";

const ROOT_PREFIX = "videograph-worker-";
const OWNER_FILE = "owner.json";
const TOUCH_MS = 60_000;
/** An owner this worker cannot check directly (another container) is dead once its file is this old. */
const STALE_MS = 5 * TOUCH_MS;

/** Who owns a worker's temp root: a process, named so that a reused pid is not taken for it. */
interface Owner {
  /** Boot id and pid namespace: pids are comparable only within the same one. */
  pidSpace: string;
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/{pid}/stat, field 22). */
  startTicks: number;
}

export interface WorkDirs {
  /** This worker's own directory; each job's temp dir is made inside it. */
  readonly root: string;
  /** Removes this worker's directory (at shutdown, after the last job). */
  release(): Promise<void>;
}

async function pidSpace(): Promise<string> {
  const [boot, namespace] = await Promise.all([
    readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "unknown-boot"),
    readlink("/proc/self/ns/pid").catch(() => "unknown-namespace"),
  ]);
  return `${boot.trim()}/${namespace}`;
}

/** The start time of `pid`, or null when no such process exists. */
async function startTicksOf(pid: number | "self"): Promise<number | null> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8")).field(22);
  } catch {
    return null;
  }
}

async function isAlive(owner: Owner, ownerFile: string, here: string): Promise<boolean> {
  if (owner.pidSpace === here) return (await startTicksOf(owner.pid)) === owner.startTicks;
  const touched = (await stat(ownerFile)).mtimeMs;
  return Date.now() - touched < STALE_MS;
}

/**
 * Removes the temp roots of workers that are gone: killed (SIGKILL, OOM, a lost machine), they
 * never ran their `finally`. A root whose owner is alive, or that another worker is creating
 * right now, is left alone, so workers can share a host and a temp dir.
 */
export async function removeDeadWorkersDirs(tmpDir: string, keep?: string): Promise<string[]> {
  const here = await pidSpace();
  const removed: string[] = [];
  const entries = await readdir(tmpDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || !entry.name.startsWith(ROOT_PREFIX)) continue;
    const dir = path.join(tmpDir, entry.name);
    if (dir === keep) continue;
    const ownerFile = path.join(dir, OWNER_FILE);
    try {
      const text = await readFile(ownerFile, "utf8").catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return null;
        throw err;
      });
      const dead =
        text === null
          ? Date.now() - (await stat(dir)).mtimeMs >= STALE_MS
          : !(await isAlive(JSON.parse(text) as Owner, ownerFile, here));
      if (!dead) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
      log.info("removed the temp dir of a worker that is gone", { dir });
    } catch (err) {
      log.warn("could not check or remove a worker's temp dir", { dir, err: (err as Error).message });
    }
  }
  return removed;
}

/**
 * Creates this worker's temp root in `tmpDir`, marked with its owner, after removing those of
 * workers that are gone; the same sweep runs every minute, for roots of other containers that
 * only age out.
 */
export async function claimWorkDirs(tmpDir: string): Promise<WorkDirs> {
  const root = await mkdtemp(path.join(tmpDir, ROOT_PREFIX));
  const ownerFile = path.join(root, OWNER_FILE);
  const owner: Owner = { pidSpace: await pidSpace(), pid: process.pid, startTicks: (await startTicksOf("self")) ?? 0 };
  await writeFile(ownerFile, JSON.stringify(owner));
  await removeDeadWorkersDirs(tmpDir, root);
  const timer = setInterval(() => {
    const now = new Date();
    utimes(ownerFile, now, now)
      .then(() => removeDeadWorkersDirs(tmpDir, root))
      .catch((err: Error) => log.warn("temp dir upkeep failed", { err: err.message }));
  }, TOUCH_MS).unref();
  return {
    root,
    async release() {
      clearInterval(timer);
      await rm(root, { recursive: true, force: true });
    },
  };
}
