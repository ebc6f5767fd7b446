import { API_NODE_FLAGS } from "../../src/node-flags.ts";
import { TEST_ADMIN_KEY } from "./auth.ts";
import { spawn, type ChildProcess } from "node:child_process";

/** A service started as its own process, as operators run it, with its log kept for assertions. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  log(): string;
  /** Resolves when the log contains `text`; rejects after `timeoutMs` or if the process exits. */
  waitForLog(text: string | RegExp, timeoutMs?: number): Promise<RegExpMatchArray | string>;
  /** Sends `signal` and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * Sends SIGINT to the process's whole group, as a terminal's Ctrl-C does, and resolves with the
   * exit code; only for a process started with `ownProcessGroup`.
   */
  interruptGroup(): Promise<number | null>;
}

const running = new Set<ServiceProcess>();

function startProcess(
  name: string,
  entry: string,
  env: Record<string, string | undefined>,
  options: { ownProcessGroup?: boolean; nodeFlags?: readonly string[] } = {},
): ServiceProcess {
  // An undefined value removes the variable (DATABASE_URL: undefined → embedded Postgres).
  const merged = Object.fromEntries(
    Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined),
  ) as NodeJS.ProcessEnv;
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), entry], {
    env: merged,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.ownProcessGroup ?? false,
  });
  let log = "";
  const listeners = new Set<() => void>();
  // Logs go to stderr; stdout carries what a service prints for its operator (the first admin key).
  for (const stream of [child.stderr!, child.stdout!]) {
    stream.on("data", (d) => {
      log += d;
      if (process.env.TEST_SERVICE_LOGS) process.stderr.write(`[${name}] ${d}`);
      for (const l of listeners) l();
    });
  }
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? (signal ? null : code))),
  );
  const service: ServiceProcess = {
    name,
    child,
    log: () => log,
    waitForLog(text, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = typeof text === "string" ? (log.includes(text) ? text : null) : log.match(text);
          if (match) {
            done();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${text} within ${timeoutMs} ms. Log:\n${log.slice(-4000)}`));
        }, timeoutMs);
        const onExit = () => {
          done();
          reject(
            new Error(`${name} exited (code ${child.exitCode}) before logging ${text}. Log:\n${log.slice(-4000)}`),
          );
        };
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", onExit);
        };
        listeners.add(check);
        child.once("exit", onExit);
        check();
      });
    },
    async stop(signal = "SIGTERM") {
      running.delete(service);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async interruptGroup() {
      if (!options.ownProcessGroup) throw new Error(`${name} was not started in its own process group`);
      running.delete(service);
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGINT");
      return exited;
    },
  };
  running.add(service);
  return service;
}

/** `node src/main.ts` with the API's Node flags, on a random port; resolves once it listens, with its URL. */
export async function startApiProcess(
  name: string,
  env: Record<string, string | undefined>,
  options: { ownProcessGroup?: boolean; nodeFlags?: readonly string[] } = {},
): Promise<ServiceProcess & { url: string }> {
  const api = startProcess(
    name,
    "src/main.ts",
    {
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      LOCAL_WORKER: "false",
      BOOTSTRAP_API_KEY: TEST_ADMIN_KEY,
      ...env,
    },
    // Run as `npm start` runs it; `options.nodeFlags` come after, so they override.
    { ...options, nodeFlags: [...API_NODE_FLAGS, ...(options.nodeFlags ?? [])] },
  );
  const match = (await api.waitForLog(
    /"url":"(http:\/\/[^"]+)\/graphql".*"message":"API listening"/,
  )) as RegExpMatchArray;
  return Object.assign(api, { url: match[1]! });
}

/** `node render-worker/main.ts`; resolves once it has announced itself. */
export async function startWorkerProcess(
  name: string,
  env: Record<string, string | undefined>,
  options: { ownProcessGroup?: boolean } = {},
): Promise<ServiceProcess> {
  const worker = startProcess(name, "render-worker/main.ts", { LOG_LEVEL: "info", WORKER_ID: name, ...env }, options);
  await worker.waitForLog('"message":"worker ready"');
  return worker;
}

/** `node <entry>` (a script of the tests' own), with the same log capture and clean-up as the services. */
export function startScriptProcess(
  name: string,
  entry: string,
  env: Record<string, string | undefined>,
): ServiceProcess {
  return startProcess(name, entry, env);
}

/** Kills whatever a test left running (SIGKILL: a test that failed midway owes no grace). */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop("SIGKILL")));
}
