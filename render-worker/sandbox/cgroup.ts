import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { processAlive } from "../../src/shared/proc-stat.ts";
import { log } from "../log.ts";

/** What one sandboxed run may use in total, over all of its processes. */
export interface RunCgroupLimits {
  memoryBytes: number;
  processes: number;
  /** CPUs' worth of time per period (1 = one core); unset = no quota. */
  cpus?: number;
}

/** Usage of a run's cgroup so far. */
export interface RunCgroupUsage {
  /** Highest memory charged to the run (RSS, page cache, tmpfs), or null when the kernel does not say. */
  memoryPeakBytes: number | null;
  /** Processes the kernel killed because the run reached its memory limit. */
  oomKills: number;
  /** CPU time of every process of the run, or null without CPU accounting. */
  cpuSeconds: number | null;
  /** Most processes and threads alive at once, or null when the kernel does not say. */
  processesPeak: number | null;
}

/**
 * One sandboxed run's own cgroup: the kernel holds the run as a whole to its memory, process and
 * CPU limits, however many processes it forks.
 */
export interface RunCgroup {
  version: "v1" | "v2";
  /** The `cgroup.procs` files a process writes its pid into to join the run (one per v1 hierarchy). */
  procsFiles: string[];
  usage(): Promise<RunCgroupUsage>;
  /** SIGKILLs every process in the run. */
  killAll(): Promise<void>;
  /** Kills what is left and removes the cgroup. */
  remove(): Promise<void>;
}

type Layout =
  | { version: "v2"; parent: string; cpu: boolean }
  | { version: "v1"; memory: string; pids: string; cpu: string | null; cpuacct: string | null }
  | { version: null; reason: string };

let layout: Promise<Layout> | undefined;

/**
 * Creates a cgroup for one run with its limits set, under the worker's own cgroup. Null when the
 * machine gives the worker no writable cgroup with memory and pids controllers; that is logged
 * once, loudly, as the limits then hold per process only.
 */
export async function createRunCgroup(limits: RunCgroupLimits): Promise<RunCgroup | null> {
  layout ??= detectLayout().then((found) => {
    if (found.version === null) {
      log.error(
        "sandbox: no writable cgroup; memory and process limits hold per process only (RLIMIT_AS, " +
          "RLIMIT_NPROC), not per render",
        {
          reason: found.reason,
          needs:
            "cgroup v2 with the memory and pids controllers delegated to the worker (a writable cgroup subtree), or " +
            "writable cgroup v1 memory and pids hierarchies",
        },
      );
    } else {
      log.info("sandbox: each run gets its own cgroup", { version: found.version });
    }
    return found;
  });
  const found = await layout;
  if (found.version === null) return null;
  const name = `${RUN_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
  return found.version === "v2" ? createV2(found.parent, name, limits, found.cpu) : createV1(found, name, limits);
}

const RUN_PREFIX = "videograph-run-";

async function detectLayout(): Promise<Layout> {
  const found = await findLayout();
  if (found.version === "v2") await removeRunsOfDeadWorkers([found.parent]);
  if (found.version === "v1") await removeRunsOfDeadWorkers([found.memory, found.pids, found.cpu, found.cpuacct]);
  return found;
}

/** A worker that was killed could not remove its runs' cgroups; empty ones of dead pids go now. */
async function removeRunsOfDeadWorkers(parents: (string | null)[]): Promise<void> {
  for (const parent of new Set(parents)) {
    if (!parent) continue;
    for (const name of await readdir(parent).catch(() => [])) {
      const pid = Number(name.slice(RUN_PREFIX.length).split("-")[0]);
      if (!name.startsWith(RUN_PREFIX) || !Number.isInteger(pid) || processAlive(pid)) continue;
      await rmdir(path.join(parent, name)).catch(() => {});
    }
  }
}

async function findLayout(): Promise<Layout> {
  try {
    const memberships = parseProcCgroup(await readFile("/proc/self/cgroup", "utf8"));
    const unifiedOnly = memberships.size === 1 && memberships.has("");
    if (unifiedOnly && existsSync("/sys/fs/cgroup/cgroup.controllers"))
      return await prepareV2(path.join("/sys/fs/cgroup", memberships.get("")!));
    const mounts = parseV1Mounts(await readFile("/proc/self/mountinfo", "utf8"));
    const dirOf = (controller: string) => {
      const mount = mounts.get(controller);
      const own = memberships.get(controller);
      if (!mount || own === undefined || !own.startsWith(mount.root)) return null;
      return path.join(mount.mountPoint, own.slice(mount.root.length));
    };
    const memory = dirOf("memory");
    const pids = dirOf("pids");
    if (!memory || !pids)
      return { version: null, reason: "neither a cgroup v2 hierarchy nor cgroup v1 memory and pids hierarchies" };
    for (const dir of [memory, pids]) await probeWritable(dir);
    return { version: "v1", memory, pids, cpu: dirOf("cpu"), cpuacct: dirOf("cpuacct") };
  } catch (err) {
    return { version: null, reason: (err as Error).message };
  }
}

/** Controller (v1) or "" (v2) → the worker's cgroup path in it. */
function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.trim().split("\n")) {
    const [, controllers, cgroupPath] = line.match(/^\d+:([^:]*):(.*)$/) ?? [];
    if (controllers === undefined || cgroupPath === undefined) continue;
    for (const c of controllers.split(",")) out.set(c, cgroupPath);
  }
  return out;
}

/** v1 controller → where its hierarchy is mounted and which of its cgroups the mount shows as root. */
function parseV1Mounts(text: string): Map<string, { mountPoint: string; root: string }> {
  const out = new Map<string, { mountPoint: string; root: string }>();
  for (const line of text.trim().split("\n")) {
    const [before = "", after = ""] = line.split(" - ");
    const [, , , root, mountPoint] = before.split(" ");
    const [fsType, , superOptions = ""] = after.split(" ");
    if (fsType !== "cgroup" || root === undefined || mountPoint === undefined) continue;
    for (const option of superOptions.split(",")) {
      if (!out.has(option)) out.set(option, { root, mountPoint });
    }
  }
  return out;
}

async function probeWritable(dir: string): Promise<void> {
  const probe = path.join(dir, `videograph-probe-${process.pid}`);
  await mkdir(probe);
  await rmdir(probe);
}

/**
 * cgroup v2 lets a cgroup hand controllers to its children only while it holds no processes
 * itself, so the worker (and anything else in its cgroup) moves into a leaf beside the runs.
 */
async function prepareV2(own: string): Promise<Layout> {
  const available = (await readFile(path.join(own, "cgroup.controllers"), "utf8")).trim().split(/\s+/);
  for (const needed of ["memory", "pids"]) {
    if (!available.includes(needed))
      return { version: null, reason: `cgroup v2 controller ${needed} is not delegated to ${own}` };
  }
  const wanted = ["memory", "pids", ...(available.includes("cpu") ? ["cpu"] : [])];
  const enable = () => writeFile(path.join(own, "cgroup.subtree_control"), wanted.map((c) => `+${c}`).join(" "));
  try {
    await enable();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EBUSY") throw err;
    const leaf = path.join(own, "videograph-worker");
    await mkdir(leaf, { recursive: true });
    for (const pid of (await readFile(path.join(own, "cgroup.procs"), "utf8")).trim().split("\n").filter(Boolean)) {
      await writeFile(path.join(leaf, "cgroup.procs"), pid).catch(() => {});
    }
    await enable();
  }
  await probeWritable(own);
  return { version: "v2", parent: own, cpu: wanted.includes("cpu") };
}

const CPU_PERIOD_US = 100_000;

async function createV2(parent: string, name: string, limits: RunCgroupLimits, cpu: boolean): Promise<RunCgroup> {
  const dir = path.join(parent, name);
  await mkdir(dir);
  const file = (f: string) => path.join(dir, f);
  const cgroup: RunCgroup = {
    version: "v2",
    procsFiles: [file("cgroup.procs")],
    async usage() {
      const events = await readFile(file("memory.events"), "utf8");
      const cpuStat = await readFile(file("cpu.stat"), "utf8");
      return {
        memoryPeakBytes: await readNumber(file("memory.peak")),
        oomKills: Number(events.match(/^oom_kill (\d+)$/m)?.[1] ?? 0),
        cpuSeconds: Number(cpuStat.match(/^usage_usec (\d+)$/m)?.[1] ?? 0) / 1e6,
        processesPeak: await readNumber(file("pids.peak")),
      };
    },
    async killAll() {
      if (existsSync(file("cgroup.kill"))) await writeFile(file("cgroup.kill"), "1").catch(() => {});
      else await killProcsOf([file("cgroup.procs")]);
    },
    remove: () => removeDirs([dir], () => cgroup.killAll(), [file("cgroup.procs")]),
  };
  try {
    await writeFile(file("memory.max"), String(limits.memoryBytes));
    if (existsSync(file("memory.swap.max"))) await writeFile(file("memory.swap.max"), "0");
    // One process over the limit ends the whole run, as a limit on the run should.
    if (existsSync(file("memory.oom.group"))) await writeFile(file("memory.oom.group"), "1");
    await writeFile(file("pids.max"), String(limits.processes));
    if (cpu && limits.cpus)
      await writeFile(file("cpu.max"), `${Math.round(limits.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
    return cgroup;
  } catch (err) {
    await cgroup.remove();
    throw err;
  }
}

async function createV1(
  dirs: Extract<Layout, { version: "v1" }>,
  name: string,
  limits: RunCgroupLimits,
): Promise<RunCgroup> {
  const memory = path.join(dirs.memory, name);
  const pids = path.join(dirs.pids, name);
  const cpu = dirs.cpu && limits.cpus ? path.join(dirs.cpu, name) : null;
  // cpu and cpuacct are often one hierarchy: the Set below makes that one dir.
  const cpuacct = dirs.cpuacct ? path.join(dirs.cpuacct, name) : null;
  const dirsMade = [...new Set([memory, pids, cpu, cpuacct].filter((d): d is string => d !== null))];
  const procsFiles = dirsMade.map((d) => path.join(d, "cgroup.procs"));
  const cgroup: RunCgroup = {
    version: "v1",
    procsFiles,
    async usage() {
      const oom = await readFile(path.join(memory, "memory.oom_control"), "utf8");
      const cpuNs = cpuacct ? await readNumber(path.join(cpuacct, "cpuacct.usage")) : null;
      return {
        memoryPeakBytes: await readNumber(path.join(memory, "memory.max_usage_in_bytes")),
        oomKills: Number(oom.match(/^oom_kill (\d+)$/m)?.[1] ?? 0),
        cpuSeconds: cpuNs === null ? null : cpuNs / 1e9,
        processesPeak: await readNumber(path.join(pids, "pids.peak")),
      };
    },
    killAll: () => killProcsOf(procsFiles),
    remove: () => removeDirs(dirsMade, () => cgroup.killAll(), procsFiles),
  };
  try {
    for (const dir of dirsMade) await mkdir(dir);
    await writeFile(path.join(memory, "memory.limit_in_bytes"), String(limits.memoryBytes));
    // Without it swap would extend the limit; it must not be below limit_in_bytes, so it comes second.
    const memsw = path.join(memory, "memory.memsw.limit_in_bytes");
    if (existsSync(memsw)) await writeFile(memsw, String(limits.memoryBytes));
    await writeFile(path.join(pids, "pids.max"), String(limits.processes));
    if (cpu) {
      const period = (await readNumber(path.join(cpu, "cpu.cfs_period_us"))) ?? CPU_PERIOD_US;
      await writeFile(path.join(cpu, "cpu.cfs_quota_us"), String(Math.round(limits.cpus! * period)));
    }
    return cgroup;
  } catch (err) {
    await cgroup.remove();
    throw err;
  }
}

async function readNumber(file: string): Promise<number | null> {
  try {
    const n = Number((await readFile(file, "utf8")).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

async function pidsIn(procsFiles: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const f of procsFiles) {
    const text = await readFile(f, "utf8").catch(() => "");
    for (const pid of text.split("\n").filter(Boolean)) pids.add(Number(pid));
  }
  return [...pids];
}

async function killProcsOf(procsFiles: string[]): Promise<void> {
  for (const pid of await pidsIn(procsFiles)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }
}

const REMOVE_TIMEOUT_MS = 5000;

/** rmdir fails while a cgroup has processes: kill them and wait until the kernel has reaped them. */
async function removeDirs(dirs: string[], killAll: () => Promise<void>, procsFiles: string[]): Promise<void> {
  const deadline = Date.now() + REMOVE_TIMEOUT_MS;
  while ((await pidsIn(procsFiles)).length > 0 && Date.now() < deadline) {
    await killAll();
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const dir of dirs) {
    try {
      await rmdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") log.warn("sandbox: run cgroup not removed", { dir, code });
    }
  }
}
