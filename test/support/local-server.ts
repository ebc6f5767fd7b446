import { spawn } from "node:child_process";

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
