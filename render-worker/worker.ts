import { tmpdir } from "node:os";
import type { Capability } from "../src/protocol/worker-messages.ts";
import { runCheck } from "../src/shared/health-check.ts";
import { type CapabilityOptions, createCapabilities } from "./capabilities.ts";
import { createHeartbeats } from "./heartbeats.ts";
import { log } from "./log.ts";
import { createCancelListener } from "./runs/cancel-listener.ts";
import { createJobRunner } from "./runs/run-job.ts";
import { createRunTable } from "./runs/run-table.ts";
import { shutDownInOrder } from "./shutdown.ts";
import type { X264Preset } from "./media/encode-ladder.ts";
import type { WorkerStorage } from "./storage/types.ts";
import type { WorkerTransport } from "./transport/types.ts";
import { claimWorkDirs, type WorkDirs } from "./work-dirs.ts";

export interface WorkerOptions extends CapabilityOptions {
  /** Memory the worker's jobs may use (see admission.ts); default: the cgroup's limit. */
  memoryLimitBytes?: number;
  workerId: string;
  capabilities: Capability[];
  concurrency: number;
  /** Broadcasts (the `live` queue) it encodes at once, beside `concurrency` (WORKER_LIVE_SLOTS). */
  liveSlots: number;
  transport: WorkerTransport;
  storage: WorkerStorage;
  /** How long a run waits for storage (or its work dir) to come back or have room before its attempt fails (0: not at all). */
  storageOutagePatienceSeconds?: number;
  tmpDir: string;
  progressIntervalMs: number;
  /** One libx264 preset for every rung (X264_PRESET); unset: the tuned ladder. */
  x264Preset?: X264Preset;
  /** Whether a broadcast's top rung may be the publisher's own video (LIVE_PASSTHROUGH); default true. */
  livePassthrough?: boolean;
  /** How long a broadcast waits for space before it ends with what it recorded (LIVE_FULL_DISK_PATIENCE_SECONDS). */
  liveFullDiskPatienceSeconds?: number;
  heartbeatIntervalSeconds: number;
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
  /** Ends a shutdown's grace now: the jobs still in flight are aborted and handed back at once. */
  handBackNow(): void;
}

/**
 * The worker: probes its capabilities, consumes their queues, runs each delivery's job
 * (runs/run-job.ts), acts on cancels, sends heartbeats and shuts down in order.
 */
export function createWorker(options: WorkerOptions): Worker {
  const { transport, workerId } = options;
  let shuttingDown = false;
  let askHandBack = () => {};
  const handBackAsked = new Promise<void>((resolve) => {
    askHandBack = resolve;
  });
  /** Set once the capabilities are probed and the worker consumes its queues. */
  let taking = false;
  let workDirs: WorkDirs | undefined;
  const runs = createRunTable();
  const cancels = createCancelListener(workerId, runs);
  /** Broadcasts take slots of their own: a broadcast never waits for an upload's slot, nor the reverse. */
  async function consume(caps: Capability[]): Promise<void> {
    const vod = caps.filter((c) => c !== "live");
    if (vod.length > 0) await transport.consumeJobs(vod, options.concurrency, runJob);
    if (caps.includes("live")) await transport.consumeJobs(["live"], options.liveSlots, runJob);
  }
  const capabilities = createCapabilities(options, {
    consume,
    stopConsuming: (caps) => transport.stopConsuming(caps),
    announce: () => heartbeats.send(),
  });
  const heartbeats = createHeartbeats({
    transport,
    workerId,
    slots: options.concurrency,
    liveSlots: options.liveSlots,
    intervalSeconds: options.heartbeatIntervalSeconds,
    runs,
    capabilities: capabilities.serving,
    probing: capabilities.probing,
  });
  const runJob = createJobRunner({
    ...options,
    runs,
    cancels,
    workDirRoot: () => workDirs!.root,
    shuttingDown: () => shuttingDown,
    onNvencOutcome: (failure) => capabilities.countNvencOutcome(failure),
  });

  return {
    async start() {
      await capabilities.probeBeforeConnecting();
      workDirs = await claimWorkDirs(options.tmpDir);
      await transport.start();
      // The API answers a heartbeat that lists a canceled job with its cancel again: that is how
      // cancels broadcast while the control channel was down reach this worker.
      await transport.onControl(
        cancels.onControl,
        () => void heartbeats.send().catch((err) => log.warn("heartbeat after reconnecting failed", { err })),
      );
      await consume(capabilities.serving());
      heartbeats.start();
      await heartbeats.send();
      if (!(await capabilities.probeAfterConnecting(() => shuttingDown))) return;
      taking = true;
      log.info("worker ready", {
        workerId,
        capabilities: capabilities.serving(),
        concurrency: options.concurrency,
        liveSlots: options.liveSlots,
      });
    },
    async readiness() {
      const serving = capabilities.serving();
      if (shuttingDown) return { ready: false, checks: { capabilities: serving.join(","), transport: "stopping" } };
      if (!taking) return { ready: false, checks: { capabilities: "probing", transport: "not started" } };
      const transportFailure = await runCheck(() => transport.checkReachable());
      return {
        // Every capability dropped (a failing GPU): not ready, so a restart probes again.
        ready: transportFailure === null && serving.length > 0,
        checks: {
          capabilities: serving.join(",") || "none left",
          transport: transportFailure === null ? "ok" : "unavailable",
        },
      };
    },
    async shutdown(graceSeconds) {
      shuttingDown = true;
      await shutDownInOrder({ transport, runs, heartbeats, workDirs }, graceSeconds, handBackAsked);
    },
    handBackNow: () => askHandBack(),
  };
}

export function defaultTmpDir(configured: string | undefined): string {
  return configured ?? tmpdir();
}
