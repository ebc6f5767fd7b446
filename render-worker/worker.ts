import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  JobEvent,
  parseJobMessage,
  PROTOCOL_VERSION,
  type Capability,
  type JobEventBody,
  type JobMessage,
} from "../src/protocol/messages.ts";
import { handlers } from "./handlers/index.ts";
import { log } from "./log.ts";
import type { WorkerStorage } from "./storage/types.ts";
import type { WorkerTransport } from "./transport/types.ts";

export interface WorkerOptions {
  workerId: string;
  capabilities: Capability[];
  concurrency: number;
  transport: WorkerTransport;
  storage: WorkerStorage;
  tmpDir: string;
  progressIntervalMs: number;
  heartbeatIntervalSeconds: number;
}

export interface Worker {
  start(): Promise<void>;
  /**
   * Stops taking jobs and waits up to `graceSeconds` for the ones in flight; jobs still running
   * then are aborted and handed back to the transport for another worker.
   */
  shutdown(graceSeconds: number): Promise<void>;
}

/** Raised when a job was stopped because the worker is shutting down, so the transport redelivers it. */
class HandedBackError extends Error {
  constructor(jobId: string) {
    super(`Job ${jobId} handed back at shutdown`);
    this.name = "HandedBackError";
  }
}

interface FailureDetails {
  retryable?: boolean;
  command?: string;
  stderrTail?: string;
  exitCode?: number | null;
}

export function createWorker(options: WorkerOptions): Worker {
  const { transport, workerId } = options;
  const active = new Map<string, { attempt: number; controller: AbortController; done: Promise<void> }>();
  let shuttingDown = false;
  let heartbeat: NodeJS.Timeout | undefined;

  async function sendHeartbeat(): Promise<void> {
    await transport.publishEvent({
      v: PROTOCOL_VERSION,
      type: "worker.heartbeat",
      workerId,
      capabilities: options.capabilities,
      activeJobs: [...active].map(([jobId, a]) => ({ jobId, attempt: a.attempt })),
      at: new Date().toISOString(),
    });
  }

  async function runJob(raw: unknown, transportSignal: AbortSignal): Promise<void> {
    let job: JobMessage;
    try {
      job = parseJobMessage(raw);
    } catch (err) {
      // It can never parse; redelivering it would only fail again.
      log.error("job message rejected", { err: (err as Error).message });
      return;
    }
    let seq = 0;
    const emit = async (body: JobEventBody): Promise<void> => {
      const event = JobEvent.parse({
        ...body,
        v: PROTOCOL_VERSION,
        jobId: job.jobId,
        attempt: job.attempt,
        seq: ++seq,
        workerId,
        at: new Date().toISOString(),
      });
      await transport.publishEvent(event);
    };
    const controller = new AbortController();
    const onTransportAbort = () => controller.abort(transportSignal.reason);
    transportSignal.addEventListener("abort", onTransportAbort, { once: true });
    const workDir = await mkdtemp(path.join(options.tmpDir, `videograph-${job.jobId}-`));
    let finish!: () => void;
    active.set(job.jobId, { attempt: job.attempt, controller, done: new Promise<void>((r) => (finish = r)) });
    log.info("job started", { jobId: job.jobId, attempt: job.attempt, type: job.type });
    const started = Date.now();
    try {
      await handlers[job.type](job, { storage: options.storage, emit, signal: controller.signal, workDir, progressIntervalMs: options.progressIntervalMs });
      log.info("job finished", { jobId: job.jobId, seconds: (Date.now() - started) / 1000 });
    } catch (err) {
      if (shuttingDown && controller.signal.aborted) throw new HandedBackError(job.jobId);
      const e = err as Error & FailureDetails;
      log.warn("job failed", { jobId: job.jobId, attempt: job.attempt, error: e.message, command: e.command, stderrTail: e.stderrTail });
      await emit({
        type: "job.failed",
        error: e.message || String(err),
        retryable: e.retryable ?? true,
        ...(e.command ? { command: e.command } : {}),
        ...(e.stderrTail ? { stderrTail: e.stderrTail } : {}),
        ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}),
      });
    } finally {
      transportSignal.removeEventListener("abort", onTransportAbort);
      active.delete(job.jobId);
      finish();
      await rm(workDir, { recursive: true, force: true });
    }
  }

  return {
    async start() {
      await transport.start();
      await transport.consumeJobs(options.capabilities, options.concurrency, runJob);
      heartbeat = setInterval(() => sendHeartbeat().catch((err) => log.warn("heartbeat failed", { err })), options.heartbeatIntervalSeconds * 1000);
      await sendHeartbeat();
      log.info("worker ready", { workerId, capabilities: options.capabilities, concurrency: options.concurrency });
    },
    async shutdown(graceSeconds) {
      shuttingDown = true;
      log.info("shutdown: no new jobs", { inFlight: active.size });
      await transport.stopConsuming();
      const inFlight = [...active.values()];
      const allDone = Promise.all(inFlight.map((a) => a.done));
      const timedOut = await Promise.race([
        allDone.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), graceSeconds * 1000).unref()),
      ]);
      if (timedOut) {
        log.warn("shutdown: grace period over, handing jobs back", { jobs: [...active.keys()] });
        for (const a of active.values()) a.controller.abort(new Error("worker shutting down"));
        await allDone;
      }
      clearInterval(heartbeat);
      log.info("shutdown: closing transport");
      await transport.stop();
      log.info("shutdown: done");
    },
  };
}

export function defaultTmpDir(configured: string | undefined): string {
  return configured ?? tmpdir();
}
