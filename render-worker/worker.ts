import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  endsRun,
  JobEvent,
  parseJobMessage,
  PROTOCOL_VERSION,
  type Capability,
  type JobEventBody,
  type JobMessage,
  parseControlMessage,
  type ControlMessage,
} from "../src/protocol/messages.ts";
import { withLogFields } from "../src/shared/log.ts";
import { contextOf, inSpan, SpanKind, traceparentOf } from "../src/shared/tracing.ts";
import { memoryLimitBytes, MemoryBudget, NotAdmittedError, TooLargeForWorkerError } from "./admission.ts";
import { createCpuMeter } from "./cpu-meter.ts";
import { runHandler } from "./handlers/index.ts";
import type { ManimSettings } from "./handlers/types.ts";
import { log } from "./log.ts";
import { locateManim, manimInstalled, probeManim } from "./manim/capability.ts";
import { runCheck } from "../src/shared/health-check.ts";
import { jobDuration, jobsInFlight, memoryAdmissionsRefused } from "./metrics.ts";
import type { VideoEncoder } from "./media/nvenc.ts";
import { probeNvenc } from "./media/nvenc.ts";
import { patientStorage } from "./storage/patient-storage.ts";
import type { WorkerStorage } from "./storage/types.ts";
import type { WorkerTransport } from "./transport/types.ts";
import { claimWorkDirs, type WorkDirs } from "./work-dirs.ts";

const CANCELED_MEMORY_MS = 10 * 60_000;

export interface WorkerOptions {
  /** Memory the worker's jobs may use (see admission.ts); default: the cgroup's limit. */
  memoryLimitBytes?: number;
  workerId: string;
  capabilities: Capability[];
  concurrency: number;
  transport: WorkerTransport;
  storage: WorkerStorage;
  /** How long a run waits for storage to come back before its attempt fails (0: not at all). */
  storageOutagePatienceSeconds?: number;
  tmpDir: string;
  progressIntervalMs: number;
  heartbeatIntervalSeconds: number;
  /** Checks that NVENC works on this machine before the worker takes nvenc jobs. Default `probeNvenc`. */
  probeNvenc?: typeof probeNvenc;
  /** After this many nvenc encodes in a row failed, the worker stops taking nvenc jobs. Default 3. */
  nvencMaxConsecutiveFailures?: number;
  /** The manim program and its limits, for manim jobs. Default: see locateManim. */
  manim?: ManimSettings;
  /** Checks that a scene renders in the sandbox before the worker takes manim jobs. Default `probeManim`. */
  probeManim?: typeof probeManim;
  /** Also take manim jobs, unasked, when Manim is installed and its test render passes (WORKER_DETECT_MANIM). */
  detectManim?: boolean;
}

/** What a worker's readiness probe answers; `checks` says what each part is doing. */
export interface WorkerReadiness {
  ready: boolean;
  checks: { capabilities: string; transport: string };
}

export interface Worker {
  start(): Promise<void>;
  /**
   * Ready once its capabilities are probed (NVENC, Manim) and it takes jobs, while its transport
   * answers, until shutdown begins.
   */
  readiness(): Promise<WorkerReadiness>;
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

interface ActiveRun {
  runId: string;
  jobId: string;
  attempt: number;
  controller: AbortController;
  /** Stopped by a cancel (of the job, or of this run as a duplicate), not by a failure or shutdown. */
  canceled: boolean;
  done: Promise<void>;
  /** `ended`: the run reported its end (the message is done with); `handedBack`: it goes back to the transport. */
  outcome: Promise<"ended" | "handedBack">;
}

interface FailureDetails {
  retryable?: boolean;
  command?: string;
  stderrTail?: string;
  exitCode?: number | null;
}

/** The encoder for jobs from each capability's queue; manim renders are encoded on the CPU. */
const ENCODER_OF: Record<Capability, VideoEncoder> = {
  cpu: "libx264",
  nvenc: "h264_nvenc",
  manim: "libx264",
  local: "libx264",
};

export function createWorker(options: WorkerOptions): Worker {
  const { transport, workerId } = options;
  let capabilities = [...options.capabilities];
  /** Capabilities whose test runs now: heartbeats say so, and the API accepts their jobs meanwhile. */
  let probing: Capability[] = [];
  /** Runs in flight by run id: one per delivery this worker took on. */
  const active = new Map<string, ActiveRun>();
  const runOf = (jobId: string, attempt: number) =>
    [...active.values()].find((r) => r.jobId === jobId && r.attempt === attempt);
  let shuttingDown = false;
  /** Set once the capabilities are probed and the worker consumes its queues. */
  let taking = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let workDirs: WorkDirs | undefined;
  const cpuMeter = createCpuMeter();
  /** nvenc jobs whose h264_nvenc encode failed since the last one that succeeded. */
  let nvencFailuresInARow = 0;

  async function sendHeartbeat(): Promise<void> {
    await transport.publishEvent({
      v: PROTOCOL_VERSION,
      type: "worker.heartbeat",
      workerId,
      capabilities,
      probing,
      slots: options.concurrency,
      activeJobs: [...active.values()].map((r) => ({ jobId: r.jobId, attempt: r.attempt })),
      at: new Date().toISOString(),
    });
  }

  /**
   * Drops `nvenc` when a probe encode fails: a worker that advertised it would take GPU jobs
   * only to fail each one. Throws when no capability is left.
   */
  async function checkNvenc(): Promise<void> {
    if (!capabilities.includes("nvenc")) return;
    let reason = "no reason given";
    if (await (options.probeNvenc ?? probeNvenc)({ onFailure: (r) => (reason = r) })) {
      log.info("NVENC probe encode succeeded: taking nvenc jobs");
      return;
    }
    capabilities = capabilities.filter((c) => c !== "nvenc");
    log.error(
      "NVENC IS NOT AVAILABLE: the probe encode with h264_nvenc failed, so this worker will NOT take nvenc jobs",
      {
        reason,
        capabilities,
        hint:
          "needs an NVIDIA GPU with NVENC (L4, T4, A10, L40S; not A100/H100/H200) and " +
          "NVIDIA_DRIVER_CAPABILITIES including video",
      },
    );
    if (capabilities.length === 0) {
      throw new Error(
        `WORKER_CAPABILITIES asks only for nvenc, but NVENC does not work on this machine (${reason}); no ` +
          `capability left to serve`,
      );
    }
  }

  /**
   * Counts how an nvenc job ended. A GPU can pass the probe and still fail every real encode (a
   * driver fault, the session limit, out of memory); after `nvencMaxConsecutiveFailures` such
   * failures in a row the worker drops `nvenc` and its queue, so GPU jobs go to workers that
   * can do them (the API sends a failed attempt's retry to cpu already).
   */
  async function countNvencOutcome(failure: (Error & FailureDetails) | null): Promise<void> {
    if (failure === null) {
      nvencFailuresInARow = 0;
      return;
    }
    // A source that cannot work, or a failure outside the encoder, says nothing about the GPU.
    if (failure.retryable === false || !failure.command?.includes("h264_nvenc")) return;
    nvencFailuresInARow++;
    const limit = options.nvencMaxConsecutiveFailures ?? 3;
    if (nvencFailuresInARow < limit || !capabilities.includes("nvenc")) return;
    capabilities = capabilities.filter((c) => c !== "nvenc");
    log.error(
      "NVENC DROPPED: nvenc encodes keep failing although the probe encode succeeded, so this worker stops " +
        "taking nvenc jobs until it is restarted",
      {
        failuresInARow: nvencFailuresInARow,
        lastError: failure.message,
        stderrTail: failure.stderrTail,
        capabilities,
        hint: "restarting the worker probes NVENC again; check the GPU's memory, encoder sessions and driver",
      },
    );
    await transport.stopConsuming(["nvenc"]);
    await sendHeartbeat();
  }

  /**
   * Whether to take manim jobs: a tiny real render must pass in the sandbox (it fails without
   * Manim, LaTeX, bubblewrap or namespaces for it), or the worker would take scene jobs only to
   * fail each one. Asked for (WORKER_CAPABILITIES), a failure is loud; detected
   * (WORKER_DETECT_MANIM), a Manim that is not installed is skipped quietly.
   */
  async function checkManim(asked: boolean): Promise<string | null> {
    const configured = options.manim?.bin;
    let reason = "no reason given";
    const install = locateManim(configured);
    if (
      await (options.probeManim ?? probeManim)(install, {
        onFailure: (r) => (reason = r),
        tmpDir: options.tmpDir,
        sandboxPath: options.manim?.sandboxPath,
      })
    ) {
      const { command, foundBy } = await install;
      log.info("a test render with manim succeeded in the sandbox: taking manim jobs", { manim: command, foundBy });
      return null;
    }
    const failure = {
      manimBin: configured ?? null,
      reason,
      capabilities,
      hint:
        "run `npm run setup:manim` (Manim in .tools/manim), or set MANIM_BIN; needs the Debian packages of " +
        "scripts/manim-debian-packages.txt, bubblewrap (`bwrap`), and either root with CAP_SYS_ADMIN or " +
        "unprivileged user namespaces",
    };
    if (asked)
      log.error(
        "MANIM IS NOT AVAILABLE: a test render failed in the sandbox, so this worker will NOT take manim jobs",
        failure,
      );
    else log.warn("Manim is installed but its test render failed in the sandbox: not taking manim jobs", failure);
    return reason;
  }

  /** The capabilities to test after connecting: manim when asked for, or detected installed. */
  async function manimToProbe(): Promise<Capability[]> {
    if (capabilities.includes("manim")) return ["manim"];
    if (!options.detectManim) return [];
    if (await manimInstalled(locateManim(options.manim?.bin), options.manim?.sandboxPath)) return ["manim"];
    log.info("Manim is not installed here (`npm run setup:manim` installs it): not taking manim jobs");
    return [];
  }

  const memory = new MemoryBudget(memoryLimitBytes(options.memoryLimitBytes));

  /** Canceled attempts (job id → attempt), kept a while in case the job message comes after the cancel. */
  const canceled = new Map<string, number>();
  function onControl(raw: unknown): void {
    let message: ControlMessage;
    try {
      message = parseControlMessage(raw);
    } catch (err) {
      log.error("control message rejected", { err: (err as Error).message });
      return;
    }
    if (message.workerId !== undefined && message.workerId !== workerId) return;
    if (message.runId !== undefined) {
      // A duplicate run is stopped; the job itself is not canceled, so a later delivery still runs.
      const run = active.get(message.runId);
      if (run) {
        log.info("cancel of a duplicate run received: stopping it", {
          jobId: run.jobId,
          attempt: run.attempt,
          runId: run.runId,
        });
        run.canceled = true;
        run.controller.abort(new Error("duplicate run stopped"));
      }
      return;
    }
    canceled.set(message.jobId, message.attempt);
    setTimeout(() => canceled.delete(message.jobId), CANCELED_MEMORY_MS).unref();
    for (const run of active.values()) {
      if (run.jobId !== message.jobId || run.attempt !== message.attempt) continue;
      log.info("cancel received: stopping the job", {
        jobId: message.jobId,
        attempt: message.attempt,
        runId: run.runId,
      });
      run.canceled = true;
      run.controller.abort(new Error("job canceled"));
    }
  }

  /**
   * A second delivery of an attempt this worker is running (a transport redelivers when it thinks
   * the first delivery's lease lapsed) does no work: it waits for the running one and settles as
   * it does. Acknowledging it at once could acknowledge the message whose lease the running one
   * depends on (Pub/Sub), and a job lost with its worker would then never be delivered again.
   */
  async function joinRunningRun(running: ActiveRun, transportSignal: AbortSignal): Promise<void> {
    log.warn("a job running here was delivered again: the delivery waits for the running run and does no work", {
      jobId: running.jobId,
      attempt: running.attempt,
      runId: running.runId,
    });
    const leaseLost = new Promise<"leaseLost">((resolve) => {
      if (transportSignal.aborted) resolve("leaseLost");
      transportSignal.addEventListener("abort", () => resolve("leaseLost"), { once: true });
    });
    const outcome = await Promise.race([running.outcome, leaseLost]);
    if (outcome !== "ended") throw new HandedBackError(running.jobId);
  }

  async function runJob(raw: unknown, transportSignal: AbortSignal, capability: Capability): Promise<void> {
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
      inSpan(`job ${job.type}`, jobSpan, () => runParsedJob(job, transportSignal, capability)),
    );
  }

  async function runParsedJob(job: JobMessage, transportSignal: AbortSignal, capability: Capability): Promise<void> {
    const running = runOf(job.jobId, job.attempt);
    if (running) return joinRunningRun(running, transportSignal);
    const runId = randomUUID();
    cpuMeter.start(runId);
    let seq = 0;
    const emit = async (body: JobEventBody): Promise<void> => {
      const usage = endsRun(body) ? cpuMeter.usage(runId) : null;
      const event = JobEvent.parse({
        ...body,
        ...(usage ? { usage } : {}),
        v: PROTOCOL_VERSION,
        jobId: job.jobId,
        attempt: job.attempt,
        seq: ++seq,
        workerId,
        runId,
        at: new Date().toISOString(),
        traceparent: traceparentOf(),
      });
      await transport.publishEvent(event);
    };
    if (canceled.get(job.jobId) === job.attempt) {
      log.info("job was canceled before it started", { jobId: job.jobId, attempt: job.attempt });
      await emit({ type: "job.canceled" }).finally(() => cpuMeter.stop(runId));
      return;
    }
    // The API only takes a later attempt's events: an older attempt still running here stops.
    for (const older of active.values()) {
      if (older.jobId === job.jobId && older.attempt < job.attempt) {
        log.warn("a later attempt of a job running here arrived: stopping the older run", {
          jobId: job.jobId,
          attempt: older.attempt,
          runId: older.runId,
        });
        older.controller.abort(new Error(`superseded by attempt ${job.attempt}`));
      }
    }
    const controller = new AbortController();
    const onTransportAbort = () => controller.abort(transportSignal.reason);
    transportSignal.addEventListener("abort", onTransportAbort, { once: true });
    let finish!: () => void;
    let settle!: (outcome: "ended" | "handedBack") => void;
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
    active.set(runId, run);
    let outcome: "ended" | "handedBack" = "handedBack";
    const encoder = ENCODER_OF[capability];
    const started = Date.now();
    let metricOutcome: "succeeded" | "failed" | "canceled" | "handed_back" = "handed_back";
    jobsInFlight.inc({ type: job.type });
    let workDir: string | undefined;
    try {
      workDir = await mkdtemp(path.join(workDirs!.root, `videograph-${job.jobId}-`));
      if (canceled.get(job.jobId) === job.attempt) {
        // The cancel came while the run was being set up.
        run.canceled = true;
        controller.abort(new Error("job canceled"));
      }
      log.info("job started", { jobId: job.jobId, attempt: job.attempt, runId, type: job.type, capability, encoder });
      await runHandler(job, {
        storage: patientStorage(options.storage, options.storageOutagePatienceSeconds ?? 0, controller.signal),
        emit,
        signal: controller.signal,
        workDir,
        progressIntervalMs: options.progressIntervalMs,
        encoder,
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
      log.info("job finished", { jobId: job.jobId, runId, seconds: (Date.now() - started) / 1000 });
      outcome = "ended";
      metricOutcome = "succeeded";
      if (capability === "nvenc") await countNvencOutcome(null);
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
      if (shuttingDown && controller.signal.aborted) throw new HandedBackError(job.jobId);
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
        await countNvencOutcome(e).catch((err) => log.warn("dropping nvenc failed", { err }));
      }
    } finally {
      transportSignal.removeEventListener("abort", onTransportAbort);
      cpuMeter.stop(runId);
      active.delete(runId);
      jobsInFlight.dec({ type: job.type });
      jobDuration.observe({ type: job.type, outcome: metricOutcome }, (Date.now() - started) / 1000);
      finish();
      await (workDir ? rm(workDir, { recursive: true, force: true }) : Promise.resolve()).finally(() =>
        settle(outcome),
      );
    }
  }

  return {
    async start() {
      await checkNvenc();
      // Manim's test render takes seconds: the worker takes its other queues meanwhile, and its
      // heartbeats say it is testing manim, so the API accepts scenes for it in the meantime.
      probing = await manimToProbe();
      const askedManim = capabilities.includes("manim");
      capabilities = capabilities.filter((c) => !probing.includes(c));
      workDirs = await claimWorkDirs(options.tmpDir);
      await transport.start();
      // The API answers a heartbeat that lists a canceled job with its cancel again: that is how
      // cancels broadcast while the control channel was down reach this worker.
      await transport.onControl(
        onControl,
        () => void sendHeartbeat().catch((err) => log.warn("heartbeat after reconnecting failed", { err })),
      );
      await transport.consumeJobs(capabilities, options.concurrency, runJob);
      heartbeat = setInterval(
        () => sendHeartbeat().catch((err) => log.warn("heartbeat failed", { err })),
        options.heartbeatIntervalSeconds * 1000,
      );
      await sendHeartbeat();
      if (probing.length > 0) {
        const failure = await checkManim(askedManim);
        if (shuttingDown) return;
        if (failure === null) {
          await transport.consumeJobs(["manim"], options.concurrency, runJob);
          capabilities = [...capabilities, "manim"];
        }
        probing = [];
        if (capabilities.length === 0) {
          throw new Error(
            `WORKER_CAPABILITIES asks only for manim, but manim does not run in the sandbox here (${failure}); no ` +
              `capability left to serve`,
          );
        }
        await sendHeartbeat();
      }
      taking = true;
      log.info("worker ready", { workerId, capabilities, concurrency: options.concurrency });
    },
    async readiness() {
      if (shuttingDown)
        return { ready: false, checks: { capabilities: capabilities.join(","), transport: "stopping" } };
      if (!taking) return { ready: false, checks: { capabilities: "probing", transport: "not started" } };
      const transportFailure = await runCheck(() => transport.checkReachable());
      return {
        // Every capability dropped (a failing GPU): not ready, so a restart probes again.
        ready: transportFailure === null && capabilities.length > 0,
        checks: {
          capabilities: capabilities.join(",") || "none left",
          transport: transportFailure === null ? "ok" : "unavailable",
        },
      };
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
        log.warn("shutdown: grace period over, handing jobs back", { jobs: [...active.values()].map((r) => r.jobId) });
        for (const a of active.values()) a.controller.abort(new Error("worker shutting down"));
        await allDone;
      }
      clearInterval(heartbeat);
      // Tells the API this worker runs nothing any more, so a job handed back is not taken for
      // a duplicate when another worker picks it up.
      await sendHeartbeat().catch((err) => log.warn("last heartbeat failed", { err }));
      log.info("shutdown: closing transport");
      await transport.stop();
      await workDirs?.release();
      log.info("shutdown: done");
    },
  };
}

export function defaultTmpDir(configured: string | undefined): string {
  return configured ?? tmpdir();
}
