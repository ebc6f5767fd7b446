import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { Db } from "./db/client.ts";
import { workerEnvNames } from "./shared/worker-env.ts";
import { log } from "./log.ts";

const WORKER_ENTRY = path.resolve(import.meta.dirname, "../render-worker/main.ts");

export interface LocalWorker {
  /**
   * Resolves true once the worker's first heartbeat is in the database (what it serves, and what
   * it is still testing, is known to the API), false after `timeoutMs` without one.
   */
  reported(db: Pick<Db, "worker">, timeoutMs: number): Promise<boolean>;
  /** Stops it: its jobs in flight get `graceSeconds` to finish, then are handed back. */
  stop(): Promise<void>;
  /** During `stop()`: its jobs in flight are handed back now (its second signal), to resume on the next start. */
  handBackNow(): void;
}

/**
 * Runs the render worker beside the API (the embedded default), restarted with back-off if it dies. It gets
 * only the variables a worker reads (`workerEnvNames`): it parses tenant media, so the API's secrets stay out
 * of reach. Its own process group keeps a terminal's Ctrl-C to the API, which stops it once (a second Ctrl-C:
 * `handBackNow`); the IPC channel tells it when the API is gone.
 */
export function startLocalWorker(options: {
  databaseUrl: string;
  dataDir: string;
  concurrency: number;
  graceSeconds: number;
  workerId?: string;
  extraEnv?: Record<string, string>;
}): LocalWorker {
  let child: ChildProcess | null = null;
  let stopping = false;
  let restarts = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  const workerId = options.workerId ?? `local-${process.pid}`;
  const launchedAt = new Date();

  function launch(): void {
    const startedAt = Date.now();
    child = spawn(process.execPath, [WORKER_ENTRY], {
      detached: true,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: {
        ...workerEnvFrom(process.env),
        DATABASE_URL: options.databaseUrl,
        DATA_DIR: path.resolve(options.dataDir),
        WORKER_ID: workerId,
        WORKER_CONCURRENCY: String(options.concurrency),
        WORKER_CAPABILITIES: localWorkerCapabilities(process.env.WORKER_CAPABILITIES),
        // Manim installed by `npm run setup:manim` renders scenes with no setting (its test render decides).
        WORKER_DETECT_MANIM: process.env.WORKER_DETECT_MANIM || "true",
        // Speech recognition installed by `npm run setup:asr` transcribes with no setting.
        WORKER_DETECT_ASR: process.env.WORKER_DETECT_ASR || "true",
        SHUTDOWN_GRACE_SECONDS: String(options.graceSeconds),
        ...options.extraEnv,
      },
    });
    child.on("exit", (code, signal) => {
      child = null;
      if (stopping) return;
      if (Date.now() - startedAt > 60_000) restarts = 0;
      const delay = Math.min(30_000, 500 * 2 ** restarts++);
      log.warn("local worker exited; restarting", { code, signal, delayMs: delay });
      restartTimer = setTimeout(launch, delay);
    });
  }

  launch();
  return {
    async reported(db, timeoutMs) {
      // Heartbeats carry the worker's clock, which is this machine's.
      const since = new Date(launchedAt.getTime() - 1000);
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
        if (await db.worker.count({ where: { id: workerId, lastHeartbeatAt: { gte: since } } })) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
      c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), (options.graceSeconds + 10) * 1000);
      await exited;
      clearTimeout(timer);
    },
    handBackNow() {
      const c = child;
      if (stopping && c && c.exitCode === null) c.kill("SIGTERM");
    },
  };
}

function workerEnvFrom(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    workerEnvNames(env).flatMap((name) => (env[name] === undefined ? [] : [[name, env[name]]])),
  );
}

/**
 * The API's own worker always serves cpu, local (the fallback queue, LOCAL_FALLBACK) and live (broadcasts);
 * WORKER_CAPABILITIES adds to them (e.g. nvenc) instead of replacing them. A worker that serves
 * exactly a list is `npm run worker` with LOCAL_WORKER=false.
 */
function localWorkerCapabilities(configured: string | undefined): string {
  const listed = (configured ?? "")
    .split(",")
    .map((c) => c.trim())
    .filter(Boolean);
  return [...new Set(["cpu", "local", "live", ...listed])].join(",");
}
