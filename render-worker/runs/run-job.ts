import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import type { Capability } from "../../src/protocol/worker-messages.ts";
import { type JobDelivery, JobEvent, type JobEventBody, endsRun } from "../../src/protocol/job-events.ts";
import { type JobMessage, parseJobMessage } from "../../src/protocol/job-message.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/version.ts";
import { withLogFields } from "../../src/shared/log.ts";
import { contextOf, inSpan, SpanKind, traceparentOf } from "../../src/shared/tracing.ts";
import { MemoryBudget, memoryLimitBytes, NotAdmittedError, TooLargeForWorkerError } from "../admission.ts";
import { createCpuMeter } from "../cpu-meter.ts";
import { runHandler } from "../handlers/index.ts";
import type { ManimSettings } from "../handlers/types.ts";
import { log } from "../log.ts";
import type { X264Preset } from "../media/encode-ladder.ts";
import type { VideoEncoder } from "../media/nvenc.ts";
import { jobDuration, jobsInFlight, memoryAdmissionsRefused } from "../metrics.ts";
import { patientStorage } from "../storage/patient-storage.ts";
import { waitingOutStorage } from "./storage-wait.ts";
import type { WorkerStorage } from "../storage/types.ts";
import type { WorkerTransport } from "../transport/types.ts";
import type { CancelListener } from "./cancel-listener.ts";
import { joinRunningRun, stopOlderAttempts } from "./duplicate-deliveries.ts";
import { type ActiveRun, HandedBackError, type RunOutcome, type RunTable } from "./run-table.ts";

/** What a failed run's error may carry besides its message (a MediaError carries all of it). */
interface FailureDetails {
  retryable?: boolean;
  command?: string;
  stderrTail?: string;
  exitCode?: number | null;
}

/** An event the transport did not take: its failure, not the job's. */
class EventNotSentError extends Error {
  constructor(cause: unknown) {
    super(`The run's event could not be sent: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "EventNotSentError";
  }
}

/**
 * How a run sends its events: each in the envelope the contract has (ids, the next `seq`, the time,
 * the trace; the run's CPU on the event that ends it; the delivery on its start), alone (`emit`) or
 * several in one send (`emitAll`, in order); a send the transport refuses is an EventNotSentError.
 */
function runEvents(run: {
  transport: WorkerTransport;
  cpuMeter: ReturnType<typeof createCpuMeter>;
  job: JobMessage;
  runId: string;
  workerId: string;
  delivery: JobDelivery | undefined;
}): { emit(body: JobEventBody): Promise<void>; emitAll(bodies: JobEventBody[]): Promise<void> } {
  const { transport, cpuMeter, job, runId, workerId, delivery } = run;
  let seq = 0;
  const envelope = (body: JobEventBody): JobEvent => {
    const usage = endsRun(body) ? cpuMeter.usage(runId) : null;
    return JobEvent.parse({
      ...body,
      ...(usage ? { usage } : {}),
      // The transport's count of this delivery, as it gave it: what lets the API tell a redelivery
      // after a lapsed claim from a duplicate.
      ...(body.type === "job.started" && delivery ? { delivery } : {}),
      v: PROTOCOL_VERSION,
      jobId: job.jobId,
      attempt: job.attempt,
      seq: ++seq,
      workerId,
      runId,
      at: new Date().toISOString(),
      traceparent: traceparentOf(),
    });
  };
  const notSent = (err: unknown) => {
    throw new EventNotSentError(err);
  };
  return {
    emit: async (body) => transport.publishEvent(envelope(body)).catch(notSent),
    emitAll: async (bodies) => transport.publishEvents(bodies.map(envelope)).catch(notSent),
  };
}

/** Whether `err` is, or wraps, an event the transport did not take. */
function eventNotSent(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === "object" && e !== null && depth < 5; depth++) {
    if (e instanceof EventNotSentError) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The encoder for jobs from each capability's queue; manim renders are encoded on the CPU. */
const ENCODER_OF: Record<Capability, VideoEncoder> = {
  cpu: "libx264",
  nvenc: "h264_nvenc",
  manim: "libx264",
  local: "libx264",
  live: "libx264",
  // Encodes nothing: it extracts audio and runs the speech model.
  asr: "libx264",
};

export interface JobRunnerOptions {
  workerId: string;
  transport: WorkerTransport;
  storage: WorkerStorage;
  /** How long a run waits for storage (or its work dir) to come back or have room before its attempt fails (0: not at all). */
  storageOutagePatienceSeconds?: number;
  progressIntervalMs: number;
  /** One libx264 preset for every rung (X264_PRESET); unset: the tuned ladder. */
  x264Preset?: X264Preset;
  /** Whether a broadcast's top rung may be the publisher's own video (LIVE_PASSTHROUGH); default false. */
  livePassthrough?: boolean;
  /** How long a broadcast waits for space before it ends with what it recorded (LIVE_FULL_DISK_PATIENCE_SECONDS). */
  liveFullDiskPatienceSeconds?: number;
  /** Memory the worker's jobs may use (see admission.ts); default: the cgroup's limit. */
  memoryLimitBytes?: number;
  manim?: ManimSettings;
  runs: RunTable;
  cancels: CancelListener;
  /** The directory each run's work dir is made in (known once the worker has started). */
  workDirRoot: () => string;
  shuttingDown: () => boolean;
  /** Told how each nvenc run ended: null when it succeeded. */
  onNvencOutcome: (failure: (Error & FailureDetails) | null) => Promise<void>;
}

/**
 * Runs the job of one delivery: parses its message, joins a run of the same attempt already in
 * flight, numbers the run's events, gives it a work dir, a memory budget and its CPU figure, and
 * reports how it ended. Resolves when the message is done with; rejects to hand it back.
 */
export function createJobRunner(options: JobRunnerOptions) {
  const { runs, cancels, transport, workerId } = options;
  const cpuMeter = createCpuMeter();
  const memory = new MemoryBudget(memoryLimitBytes(options.memoryLimitBytes));

  async function runJob(
    raw: unknown,
    transportSignal: AbortSignal,
    capability: Capability,
    delivery?: JobDelivery,
  ): Promise<void> {
    let job: JobMessage;
    try {
      job = parseJobMessage(raw);
    } catch (err) {
      // It can never parse; redelivering it would only fail again.
      log.error("job message rejected", { err: (err as Error).message });
      return;
    }
    // Every line logged for the job carries its ids; its spans continue the API's trace.
    const jobSpan = {
      parent: contextOf(job.traceparent),
      kind: SpanKind.CONSUMER,
      attributes: { "job.id": job.jobId, "job.attempt": job.attempt, "job.type": job.type, "video.id": job.videoId },
    };
    return withLogFields({ jobId: job.jobId, videoId: job.videoId, attempt: job.attempt }, () =>
      inSpan(`job ${job.type}`, jobSpan, () => runParsedJob(job, transportSignal, capability, delivery)),
    );
  }

  async function runParsedJob(
    job: JobMessage,
    transportSignal: AbortSignal,
    capability: Capability,
    delivery: JobDelivery | undefined,
  ): Promise<void> {
    const running = runs.ofAttempt(job.jobId, job.attempt);
    if (running) return joinRunningRun(running, transportSignal);
    const runId = randomUUID();
    cpuMeter.start(runId);
    const { emit, emitAll } = runEvents({ transport, cpuMeter, job, runId, workerId, delivery });
    if (cancels.wasCanceled(job.jobId, job.attempt)) {
      log.info("job was canceled before it started", { jobId: job.jobId, attempt: job.attempt });
      await emit({ type: "job.canceled" }).finally(() => cpuMeter.stop(runId));
      return;
    }
    stopOlderAttempts(runs, job);
    const controller = new AbortController();
    const onTransportAbort = () => controller.abort(transportSignal.reason);
    transportSignal.addEventListener("abort", onTransportAbort, { once: true });
    let finish!: () => void;
    let settle!: (outcome: RunOutcome) => void;
    const run: ActiveRun = {
      runId,
      jobId: job.jobId,
      attempt: job.attempt,
      controller,
      canceled: false,
      done: new Promise<void>((r) => (finish = r)),
      outcome: new Promise((r) => (settle = r)),
    };
    // Registered before the first await, so a delivery arriving meanwhile joins this run.
    runs.add(run);
    let outcome: RunOutcome = "handedBack";
    const encoder = ENCODER_OF[capability];
    const started = Date.now();
    let metricOutcome: "succeeded" | "failed" | "canceled" | "handed_back" = "handed_back";
    jobsInFlight.inc({ type: job.type });
    let workDir: string | undefined;
    try {
      // Named here, made by each try of the run (waitingOutStorage's, or a broadcast's own): a work
      // dir too full to make one in is waited out as one that fills mid-run is, not the run's failure.
      const runDir = path.join(options.workDirRoot(), `videograph-${job.jobId}-${randomUUID().slice(0, 8)}`);
      workDir = runDir;
      if (cancels.wasCanceled(job.jobId, job.attempt)) {
        // The cancel came while the run was being set up.
        run.canceled = true;
        controller.abort(new Error("job canceled"));
      }
      log.info("job started", { jobId: job.jobId, attempt: job.attempt, runId, type: job.type, capability, encoder });
      const patienceSeconds = options.storageOutagePatienceSeconds ?? 0;
      const storage = patientStorage(options.storage, patienceSeconds, controller.signal, {
        waitWhenFull: job.type !== "live",
      });
      const handle = () =>
        runHandler(job, {
          storage,
          emit,
          emitAll,
          signal: controller.signal,
          workDir: runDir,
          progressIntervalMs: options.progressIntervalMs,
          encoder,
          ...(options.x264Preset ? { x264Preset: options.x264Preset } : {}),
          ...(options.livePassthrough ? { livePassthrough: true } : {}),
          ...(options.liveFullDiskPatienceSeconds === undefined
            ? {}
            : { liveFullDiskPatienceMs: options.liveFullDiskPatienceSeconds * 1000 }),
          reserveMemory: (bytes) => {
            try {
              return memory.reserve(bytes);
            } catch (err) {
              if (err instanceof NotAdmittedError) memoryAdmissionsRefused.inc({ reason: "busy" });
              if (err instanceof TooLargeForWorkerError) memoryAdmissionsRefused.inc({ reason: "too_large" });
              throw err;
            }
          },
          manim: options.manim,
        });
      // A broadcast waits for space itself, its work dir made by each try (handlers/live.ts,
      // live-full-disk.ts): it cannot start over.
      if (job.type === "live") await handle();
      else await waitingOutStorage(handle, { patienceSeconds, signal: controller.signal, workDir: runDir });
      log.info("job finished", { jobId: job.jobId, runId, seconds: (Date.now() - started) / 1000 });
      outcome = "ended";
      metricOutcome = "succeeded";
      if (capability === "nvenc") await options.onNvencOutcome(null);
    } catch (err) {
      if (controller.signal.aborted && run.canceled) {
        log.info("job canceled", {
          jobId: job.jobId,
          attempt: job.attempt,
          runId,
          seconds: (Date.now() - started) / 1000,
        });
        metricOutcome = "canceled";
        await emit({ type: "job.canceled" });
        outcome = "ended";
        return;
      }
      if (options.shuttingDown() && controller.signal.aborted) throw new HandedBackError(job.jobId);
      if (eventNotSent(err)) {
        // The transport (the database, in the embedded default) failed, not the job: reporting a
        // failure would burn one of its attempts. The transport delivers it again, same attempt.
        log.warn("job handed back: its events could not be sent", { jobId: job.jobId, err: (err as Error).message });
        throw err;
      }
      if (err instanceof NotAdmittedError) {
        // It fits this worker, just not beside the jobs running now: the transport delivers it
        // again later, here or to another worker.
        log.info("job handed back: not enough memory now", { jobId: job.jobId, reason: err.message });
        throw err;
      }
      const e = err as Error & FailureDetails;
      outcome = "ended";
      metricOutcome = "failed";
      log.warn("job failed", {
        jobId: job.jobId,
        attempt: job.attempt,
        runId,
        error: e.message,
        command: e.command,
        stderrTail: e.stderrTail,
      });
      await emit({
        type: "job.failed",
        error: e.message || String(err),
        retryable: e.retryable ?? true,
        ...(e.command ? { command: e.command } : {}),
        ...(e.stderrTail ? { stderrTail: e.stderrTail } : {}),
        ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}),
      });
      if (capability === "nvenc") {
        await options.onNvencOutcome(e).catch((err) => log.warn("dropping nvenc failed", { err }));
      }
    } finally {
      transportSignal.removeEventListener("abort", onTransportAbort);
      cpuMeter.stop(runId);
      runs.remove(runId);
      jobsInFlight.dec({ type: job.type });
      jobDuration.observe({ type: job.type, outcome: metricOutcome }, (Date.now() - started) / 1000);
      finish();
      await (workDir ? rm(workDir, { recursive: true, force: true }) : Promise.resolve()).finally(() =>
        settle(outcome),
      );
    }
  }

  return runJob;
}
