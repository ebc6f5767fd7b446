import { spawn } from "node:child_process";
import { mkdir, open, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";

const STOP_TIMEOUT_MS = 5000;

export interface LocalServer {
  /** The server's process id (to freeze it with SIGSTOP, as a hung service would be). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts a server program the tests need (an emulator) and resolves once `ready()` says it
 * answers; throws with the tail of its output when it exits first or takes longer than
 * `startTimeoutMs`. It never outlives the test process.
 */
export async function startLocalServer(options: {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  ready: () => Promise<boolean>;
  startTimeoutMs: number;
  pollMs?: number;
  /** Runs it in a process group of its own and signals the whole group (a JVM's children too). */
  ownProcessGroup?: boolean;
}): Promise<LocalServer> {
  const child = spawn(options.command, options.args, {
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.ownProcessGroup ?? false,
  });
  let output = "";
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", keepTail);
  child.stderr.on("data", keepTail);
  let hasExited = false;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => (hasExited = true));
  const kill = (signal: NodeJS.Signals) => {
    if (!options.ownProcessGroup) return void child.kill(signal);
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  const killOnExit = () => kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    if (hasExited) return;
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + options.startTimeoutMs;
  for (;;) {
    if (await options.ready().catch(() => false)) return { pid: child.pid!, stop };
    if (hasExited || Date.now() > deadline) {
      await stop();
      throw new Error(`${options.name} did not start (${hasExited ? "it exited" : "timed out"}):\n${output}`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 100));
  }
}

/** Where a shared server's record is kept in the run's directory (`mediaFixturesDir`). */
function sharedRecord(runDir: string, key: string) {
  return { lock: path.join(runDir, `${key}.lock`), record: path.join(runDir, `${key}.json`) };
}

interface SharedRecord {
  /** What the server answers on (the caller's to interpret), or null where it could not start. */
  address: string | null;
  pid?: number;
  /** Why it could not start. */
  reason?: string;
}

/**
 * One server for the whole test run, shared by every file (and process) that asks for it: the
 * first caller starts it in a process group of its own that outlives the caller's process, and
 * records its address and pid in the run's directory; the others wait for that record. The run's
 * global setup stops it (`stopSharedServers`). `start` resolves the address and pid, or a reason
 * it cannot start (then every caller gets that reason). For servers whose state the files keep
 * apart themselves (a project or bucket of their own per file) and that no file stops or freezes.
 */
export async function sharedLocalServer(
  runDir: string,
  key: string,
  start: () => Promise<{ address: string; pid: number } | { reason: string }>,
  waitMs: number,
): Promise<SharedRecord> {
  const { lock, record } = sharedRecord(runDir, key);
  let first = false;
  try {
    await mkdir(lock);
    first = true;
  } catch {
    // Another file is starting it or has.
  }
  if (first) {
    let result: SharedRecord;
    try {
      const started = await start();
      result = "reason" in started ? { address: null, reason: started.reason } : started;
    } catch (err) {
      result = { address: null, reason: (err as Error).message };
    }
    await writeFile(`${record}.tmp`, JSON.stringify(result));
    await rename(`${record}.tmp`, record);
    return result;
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return JSON.parse(await readFile(record, "utf8")) as SharedRecord;
    } catch {
      if (Date.now() > deadline) throw new Error(`the shared ${key} did not start within ${waitMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Starts a server that outlives this process (a process group of its own, its output in `logFile`)
 * and resolves its pid once `ready()` says it answers; throws with the log's tail when it exits
 * first or takes longer than `startTimeoutMs`.
 */
export async function startDetachedServer(options: {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  logFile: string;
  ready: () => Promise<boolean>;
  startTimeoutMs: number;
}): Promise<number> {
  const log = await open(options.logFile, "a");
  const child = spawn(options.command, options.args, {
    env: options.env ?? process.env,
    stdio: ["ignore", log.fd, log.fd],
    detached: true,
  });
  await log.close();
  child.unref();
  let hasExited = false;
  child.once("exit", () => (hasExited = true));
  const deadline = Date.now() + options.startTimeoutMs;
  for (;;) {
    if (await options.ready().catch(() => false)) return child.pid!;
    if (hasExited || Date.now() > deadline) {
      killGroup(child.pid!, "SIGKILL");
      const tail = (await readFile(options.logFile, "utf8").catch(() => "")).slice(-4000);
      throw new Error(`${options.name} did not start (${hasExited ? "it exited" : "timed out"}):\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function killGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Stops every server `sharedLocalServer` started in this run (global setup's teardown). */
export async function stopSharedServers(runDir: string): Promise<void> {
  const names = (await readdir(runDir).catch(() => [] as string[])).filter((n) => n.endsWith(".lock"));
  for (const name of names) {
    const { record } = sharedRecord(runDir, name.slice(0, -".lock".length));
    const shared = JSON.parse(await readFile(record, "utf8").catch(() => "{}")) as Partial<SharedRecord>;
    if (!shared.pid || !killGroup(shared.pid, "SIGTERM")) continue;
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (Date.now() < deadline && killGroup(shared.pid, 0)) await new Promise((r) => setTimeout(r, 100));
    killGroup(shared.pid, "SIGKILL");
  }
}
