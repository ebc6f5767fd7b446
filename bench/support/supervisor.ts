// Keeps one service running as a process supervisor (systemd, Kubernetes) would: restarts it a
// moment after it exits, whether the exit was caused on purpose or not, and remembers which.
import { appendFile } from "node:fs/promises";
import type { ServiceProcess } from "../../test/support/processes.ts";

interface UnplannedExit {
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last error lines of its log. */
  reason: string;
}

export interface SupervisedService {
  readonly name: string;
  /** The running process, or null while it is down. */
  current(): ServiceProcess | null;
  /** Every process group this service has had (one per start). */
  readonly groups: Set<number>;
  readonly unplannedExits: UnplannedExit[];
  /** Starts that failed before the service was ready. */
  failedStarts: number;
  /** Set when the service stayed down longer than `giveUpAfterMs`. */
  gaveUp: boolean;
  /**
   * Sends `signal` to the running process (its pid only, not its group) and resolves once it has
   * exited; it is restarted a moment later (see up()).
   */
  signal(signal: NodeJS.Signals): Promise<void>;
  /** Resolves once the service is up again (or given up). */
  up(): Promise<void>;
  /** SIGTERM, wait up to `graceMs`, then SIGKILL; no restart. Resolves with how it ended. */
  stop(graceMs: number): Promise<"exited" | "killed" | "was down">;
}

/**
 * What a log says went wrong at its end: an uncaught error's first line and where it was emitted
 * (Node prints those as plain text), else the last error record.
 */
function errorTail(log: string): string {
  const lines = log.split("\n");
  const crash = lines.findLastIndex((l) => /^\S*(Error|error)\b.*: /.test(l) && !l.startsWith("{"));
  if (crash !== -1) {
    const emitted = lines.findIndex((l, i) => i > crash && l.startsWith("Emitted 'error' event"));
    const where = emitted === -1 ? [] : [lines[emitted]!, lines[emitted + 1]?.trim() ?? ""];
    return [lines[crash]!, ...where].join(" ").slice(0, 400);
  }
  for (const line of lines.reverse()) {
    if (!line.startsWith("{")) continue;
    try {
      const record = JSON.parse(line) as { severity?: string; message?: string; err?: { message?: string } };
      if (record.severity === "ERROR")
        return `${record.message}${record.err?.message ? `: ${record.err.message}` : ""}`.slice(0, 400);
    } catch {
      // a line cut short by the crash
    }
  }
  return "no error in its log";
}

export function supervise(
  name: string,
  start: (incarnation: number) => Promise<ServiceProcess>,
  options: { restartDelayMs: number; giveUpAfterMs: number; logFile: string },
): SupervisedService {
  let proc: ServiceProcess | null = null;
  let incarnation = 0;
  let stopping = false;
  let planned = false;
  let ready: Promise<void> = Promise.resolve();

  const service: SupervisedService = {
    name,
    current: () => proc,
    groups: new Set(),
    unplannedExits: [],
    failedStarts: 0,
    gaveUp: false,
    async signal(signal) {
      const child = proc?.child;
      if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
      planned = true;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      process.kill(child.pid, signal);
      await exited;
    },
    up: () => ready,
    async stop(graceMs) {
      stopping = true;
      await ready;
      const p = proc;
      if (!p) return "was down";
      const timer = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
      const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
        p.child.once("exit", (_code, sig) => resolve(sig));
        p.child.kill("SIGTERM");
      });
      clearTimeout(timer);
      return signal === "SIGKILL" ? "killed" : "exited";
    },
  };

  async function bringUp(): Promise<void> {
    const since = Date.now();
    for (;;) {
      if (stopping) return;
      incarnation++;
      try {
        const p = await start(incarnation);
        if (p.child.pid) service.groups.add(p.child.pid);
        proc = p;
        planned = false;
        p.child.once("exit", (code, signal) => void onExit(p, code, signal));
        return;
      } catch {
        service.failedStarts++;
        if (Date.now() - since > options.giveUpAfterMs) {
          service.gaveUp = true;
          return;
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  async function onExit(p: ServiceProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    proc = null;
    if (!stopping) {
      if (!planned) service.unplannedExits.push({ at: Date.now(), code, signal, reason: errorTail(p.log()) });
      ready = new Promise((r) => setTimeout(r, options.restartDelayMs)).then(bringUp);
    }
    await appendFile(options.logFile, p.log()).catch(() => undefined);
  }

  ready = bringUp();
  return service;
}
