import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { chown, lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { constants as osConstants } from "node:os";
import type { Writable } from "node:stream";
import { createRunCgroup, type RunCgroup, type RunCgroupUsage } from "./cgroup.ts";
import { noUserNamespacesFilter } from "./seccomp.ts";

/** Where the job's work dir appears inside the sandbox. */
const SANDBOX_WORK_DIR = "/job";
/** HOME inside the sandbox: in its private /tmp, writable by the program. */
const SANDBOX_HOME = "/tmp/home";

/**
 * Every limit a sandboxed program runs under. With a cgroup of the run's own (see cgroup.ts)
 * memory, processes and CPU time hold for the run as a whole; without one only per process.
 */
export interface SandboxLimits {
  /**
   * CPU seconds of the whole run (its cgroup's accounting; the run is killed past it), and of
   * each process (RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later).
   */
  cpuSeconds: number;
  /** Wall-clock time of the whole sandbox; then every process in it is killed. */
  wallMs: number;
  /**
   * Memory of the whole run, tmpfs included (the cgroup's limit: the kernel's OOM killer acts
   * at it and the run is ended), and address space per process (RLIMIT_AS: allocations beyond it fail).
   */
  memoryBytes: number;
  /**
   * Processes and threads of the run (the cgroup's pids.max) and of the sandbox's own uid
   * (RLIMIT_NPROC): fork beyond either fails.
   */
  processes: number;
  /** CPUs' worth of time the run may use at once (the cgroup's CPU quota); unset, no quota. */
  cpus?: number;
  /**
   * Size of the work dir: no file may grow to it (RLIMIT_FSIZE), and the sandbox is killed when
   * the dir's total reaches it.
   */
  outputBytes: number;
  /** Bytes of stdout plus stderr; the sandbox is killed when it prints more. */
  logBytes: number;
}

/**
 * The limit the sandbox was stopped by. The process limit, and the per-process memory limit,
 * make calls fail instead.
 */
type SandboxLimit = "cpu" | "wall" | "output" | "log" | "memory";

export interface SandboxRunArgs {
  /** argv inside the sandbox; the program is looked up on the sandbox's PATH. */
  command: string[];
  /** Host dir bound read-write at `/job`, the program's cwd; the only writable place besides `/tmp`. */
  workDir: string;
  limits: SandboxLimits;
  /** Extra host paths bound read-only at the same path (a program outside /usr). */
  readOnlyPaths?: string[];
  /** Variables added to the sandbox's otherwise clean environment (PATH replaces the default). */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Output as it arrives, within `logBytes`. */
  onOutput?(stream: "stdout" | "stderr", text: string): void;
  /** Called once bwrap runs: its pid outside, and the uid the program runs as outside. */
  onSpawn?(info: { pid: number; uid: number }): void;
}

export interface SandboxResult {
  /** bwrap's exit status in shell encoding: the program's code, or 128 + n when signal n killed it. */
  exitCode: number | null;
  /** The signal that ended the program (from the encoding above), or SIGKILL when the supervisor killed it. */
  signal: NodeJS.Signals | null;
  /** The limit that stopped the program, null when none did. */
  limit: SandboxLimit | null;
  stdout: string;
  stderrTail: string;
  /** The bwrap command line, for operators. */
  command: string;
  durationMs: number;
  /** The run's own cgroup, or null when the machine gave none and limits held per process only. */
  cgroup: "v1" | "v2" | null;
  /** From the run's cgroup; null without one. */
  memoryPeakBytes: number | null;
  cpuSeconds: number | null;
  processesPeak: number | null;
}

const STDOUT_KEPT = 64 * 1024;
const STDERR_TAIL = 8 * 1024;
const USAGE_POLL_MS = 200;
/** Per-run uids come from here, far above any uid a system or container image hands out. */
const SANDBOX_UID_BASE = 2_000_000_000;
const SANDBOX_UID_SPAN = 100_000_000;
/** PATH inside the sandbox unless the caller sets one; only /usr and its symlinks are there to find. */
export const DEFAULT_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin";

const uidsInUse = new Set<number>();
/** bwrap reads the seccomp filter from this fd, the child's fourth stdio entry. */
const SECCOMP_FD = 3;
/** The wrapper's $0, which sh puts before its error messages, and its exit code when joining failed. */
const JOIN_CGROUP_NAME = "videograph-join-cgroup";
const JOIN_FAILED = 125;
/**
 * Joins the run's cgroup(s), then becomes bwrap: everything bwrap starts is in the cgroup from
 * its first instruction. argv: the number of cgroup.procs files, the files, the command.
 */
const JOIN_CGROUP_THEN_EXEC =
  `n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit ${JOIN_FAILED}; shift; ` +
  `n=$((n - 1)); done; exec "$@"`;

/**
 * Runs an untrusted program under bubblewrap: no network, its own namespaces and session, read-only /usr and
 * /etc, the job's dir at /job as the only writable host path, a clean environment, seccomp against new user
 * namespaces, its own cgroup where allowed, `limits`. As root it runs under a uid of its own (setpriv), so the
 * worker's files stay closed and RLIMIT_NPROC counts only its processes; as another user it keeps the worker's
 * uid and narrow binds are the only file protection (docs/security.md).
 */
export async function runSandboxed(args: SandboxRunArgs): Promise<SandboxResult> {
  const privileged = process.getuid?.() === 0;
  const uid = privileged ? allocateUid() : process.getuid!();
  let cgroup: RunCgroup | null = null;
  try {
    // The program writes the work dir as its own uid; root reads it back afterwards.
    if (privileged) await chownTree(args.workDir, uid);
    const { memoryBytes, processes, cpus } = args.limits;
    cgroup = await createRunCgroup({ memoryBytes, processes, cpus });
    return await supervise(args, bwrapArgs(args, privileged ? uid : null), uid, cgroup);
  } finally {
    await cgroup?.remove();
    uidsInUse.delete(uid);
  }
}

function allocateUid(): number {
  for (;;) {
    const uid = SANDBOX_UID_BASE + randomInt(SANDBOX_UID_SPAN);
    if (!uidsInUse.has(uid)) {
      uidsInUse.add(uid);
      return uid;
    }
  }
}

/** The bwrap argv. `uid` null: unprivileged mode (a user namespace instead of setpriv). */
function bwrapArgs(args: SandboxRunArgs, uid: number | null): string[] {
  const { limits } = args;
  const env = { PATH: DEFAULT_SANDBOX_PATH, HOME: SANDBOX_HOME, LANG: "C.UTF-8", ...args.env };
  const out = [
    "--unshare-net",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    ...(uid === null ? ["--unshare-user", "--uid", "65534", "--gid", "65534"] : []),
    "--hostname",
    "sandbox",
    "--die-with-parent",
    "--new-session",
    "--seccomp",
    String(SECCOMP_FD),
    "--clearenv",
    ...Object.entries(env).flatMap(([k, v]) => ["--setenv", k, v]),
    ...systemBinds(),
    "--ro-bind",
    "/etc",
    "/etc",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // A tmpfs is memory outside RLIMIT_AS: its size is capped like the work dir.
    "--size",
    String(limits.outputBytes),
    // Sticky and world-writable like a host's /tmp: as root, bwrap makes it root's.
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    "--perms",
    "0777",
    "--dir",
    SANDBOX_HOME,
    "--bind",
    args.workDir,
    SANDBOX_WORK_DIR,
    // After /tmp, or a program that lives under /tmp (a checkout there) would be hidden by the tmpfs.
    ...(args.readOnlyPaths ?? []).flatMap(readOnlyBind),
    "--chdir",
    SANDBOX_WORK_DIR,
  ];
  if (uid !== null) {
    // Only setpriv gets these two capabilities, to drop to the run's uid; it clears every
    // capability, the bounding set included, before it executes the program.
    out.push(
      "--cap-add",
      "CAP_SETUID",
      "--cap-add",
      "CAP_SETGID",
      "--",
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
    );
  } else {
    out.push("--");
  }
  out.push(
    "prlimit",
    `--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 1}`,
    `--as=${limits.memoryBytes}`,
    `--nproc=${limits.processes}`,
    `--fsize=${limits.outputBytes}`,
    "--core=0",
    "--",
    ...args.command,
  );
  return out;
}

/**
 * A read-only bind at the same path. bwrap creates missing parents with mode 0700, which the
 * sandbox's uid could not traverse; they are made 0755 first. Paths under /usr and /etc are
 * visible already.
 */
function readOnlyBind(hostPath: string): string[] {
  const resolved = path.resolve(hostPath);
  if (["/usr", "/etc"].some((dir) => resolved === dir || resolved.startsWith(`${dir}/`))) return [];
  const parents: string[] = [];
  for (let dir = path.dirname(resolved); dir !== "/"; dir = path.dirname(dir)) parents.unshift(dir);
  return [...parents.flatMap((dir) => ["--perms", "0755", "--dir", dir]), "--ro-bind", resolved, resolved];
}

/** /usr read-only, and /bin, /lib… as the host has them: symlinks into /usr, or directories. */
function systemBinds(): string[] {
  const out = ["--ro-bind", "/usr", "/usr"];
  for (const dir of ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]) {
    if (!existsSync(dir)) continue;
    if (lstatSync(dir).isSymbolicLink()) out.push("--symlink", readlinkSync(dir), dir);
    else out.push("--ro-bind", dir, dir);
  }
  return out;
}

function supervise(
  args: SandboxRunArgs,
  argv: string[],
  uid: number,
  cgroup: RunCgroup | null,
): Promise<SandboxResult> {
  const { limits } = args;
  const started = Date.now();
  const command = ["bwrap", ...argv].join(" ");
  return new Promise((resolve, reject) => {
    // Its own process group, so a kill reaches bwrap and, through --die-with-parent and the pid
    // namespace, every process in the sandbox.
    const [file, fileArgs] = cgroup
      ? [
          "/bin/sh",
          [
            "-c",
            JOIN_CGROUP_THEN_EXEC,
            JOIN_CGROUP_NAME,
            String(cgroup.procsFiles.length),
            ...cgroup.procsFiles,
            "bwrap",
            ...argv,
          ],
        ]
      : ["bwrap", argv];
    const child = spawn(file, fileArgs, { detached: true, stdio: ["ignore", "pipe", "pipe", "pipe"], env: {} });
    const seccomp = child.stdio[SECCOMP_FD] as Writable;
    // A bwrap that never starts or exits before reading it: the close below reports that.
    seccomp.on("error", () => {});
    seccomp.end(noUserNamespacesFilter());
    let limit: SandboxLimit | null = null;
    let killedBySupervisor = false;
    let logBytes = 0;
    let stdout = "";
    let stderrTail = "";

    const kill = (why: SandboxLimit | null) => {
      if (killedBySupervisor) return;
      killedBySupervisor = true;
      limit ??= why;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // Already gone.
      }
      void cgroup?.killAll();
    };
    const limitReachedIn = (usage: RunCgroupUsage): SandboxLimit | null => {
      if (usage.oomKills > 0) return "memory";
      if (usage.cpuSeconds !== null && usage.cpuSeconds > limits.cpuSeconds) return "cpu";
      return null;
    };
    const onData = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
      if (killedBySupervisor) return;
      logBytes += chunk.length;
      if (logBytes > limits.logBytes) return kill("log");
      const text = chunk.toString("utf8");
      if (stream === "stdout") stdout = (stdout + text).slice(0, STDOUT_KEPT);
      else stderrTail = (stderrTail + text).slice(-STDERR_TAIL);
      args.onOutput?.(stream, text);
    };
    child.stdout!.on("data", onData("stdout"));
    child.stderr!.on("data", onData("stderr"));

    const wallTimer = setTimeout(() => kill("wall"), limits.wallMs);
    let polling = false;
    const usageTimer = setInterval(() => {
      if (polling) return;
      polling = true;
      const output = treeBytes(args.workDir).then((bytes) => bytes >= limits.outputBytes && kill("output"));
      const usage = cgroup?.usage().then((u) => {
        const reached = limitReachedIn(u);
        if (reached) kill(reached);
      });
      Promise.allSettled([output, usage]).finally(() => (polling = false));
    }, USAGE_POLL_MS);
    const onAbort = () => kill(null);
    args.signal?.addEventListener("abort", onAbort, { once: true });
    if (args.signal?.aborted) onAbort();

    child.once("spawn", () => args.onSpawn?.({ pid: child.pid!, uid }));
    child.once("error", (err) => {
      clearTimeout(wallTimer);
      clearInterval(usageTimer);
      args.signal?.removeEventListener("abort", onAbort);
      reject(new Error(`bwrap could not start: ${err.message}`, { cause: err }));
    });
    child.once("close", async (code, signal) => {
      clearTimeout(wallTimer);
      clearInterval(usageTimer);
      args.signal?.removeEventListener("abort", onAbort);
      const programSignal = code !== null && code > 128 ? signalName(code - 128) : null;
      const endedBy = signal ?? programSignal;
      if (cgroup && code === JOIN_FAILED && stderrTail.startsWith(`${JOIN_CGROUP_NAME}:`)) {
        return reject(new Error(`the sandbox could not join its cgroup: ${stderrTail.trim()}`));
      }
      const usage = await cgroup?.usage().catch(() => undefined);
      if (limit === null && usage) limit = limitReachedIn(usage);
      if (limit === null && endedBy === "SIGXCPU") limit = "cpu";
      if (limit === null && endedBy === "SIGXFSZ") limit = "output";
      // A file cut at RLIMIT_FSIZE ends the write with EFBIG, which many programs (Python among
      // them) report as an ordinary error: the size left behind says what happened.
      if (limit === null && (await treeBytes(args.workDir).catch(() => 0)) >= limits.outputBytes) limit = "output";
      resolve({
        exitCode: code,
        signal: endedBy,
        limit,
        stdout,
        stderrTail,
        command,
        durationMs: Date.now() - started,
        cgroup: cgroup?.version ?? null,
        memoryPeakBytes: usage?.memoryPeakBytes ?? null,
        cpuSeconds: usage?.cpuSeconds ?? null,
        processesPeak: usage?.processesPeak ?? null,
      });
    });
  });
}

function signalName(n: number): NodeJS.Signals | null {
  const found = Object.entries(osConstants.signals).find(([, v]) => v === n);
  return found ? (found[0] as NodeJS.Signals) : null;
}

/** Total bytes of the regular files under `dir`. */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(full);
    else if (entry.isFile()) total += (await lstat(full)).size;
  }
  return total;
}

async function chownTree(dir: string, uid: number): Promise<void> {
  await chown(dir, uid, uid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(full, uid);
    else await chown(full, uid, uid);
  }
}
