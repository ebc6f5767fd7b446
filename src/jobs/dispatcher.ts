import { log } from "../log.ts";
import { detached } from "../shared/log.ts";
import type { Capability } from "../protocol/worker-messages.ts";
import type { GpuRoutingSettings } from "./routing.ts";
import { dispatchPending } from "./dispatch/batch.ts";
import { type DispatchContext, type DispatcherOptions, workerAlive } from "./dispatch/context.ts";

/** Delay before attempt `attempt` (2, 3, …) of a job: 2 s, 4 s, 8 s … up to 5 minutes. */
export function retryDelayMs(attempt: number): number {
  return Math.min(300, 2 ** (attempt - 1)) * 1000;
}

export interface Dispatcher {
  /** Dispatches queued jobs now rather than at the next sweep. */
  kick(): void;
  /** Dispatches at `at` (a retry's `runAfter`), sooner than the sweep would. */
  kickAt(at: Date): void;
  /**
   * Why no worker can run a job of `capability` now, or null when one can: a worker with it has
   * heartbeated within `vanishedAfterSeconds`, or LOCAL_FALLBACK hands it to the API's own worker.
   */
  whyUnserved(capability: Capability): Promise<string | null>;
  /**
   * Publishes again the queued jobs already sent to `capability`'s queue: its messages were lost (a
   * Pub/Sub subscription made again). A job whose message did survive is delivered twice, harmlessly.
   */
  redispatch(capability: Capability): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 5000;

/**
 * The outbox between Postgres and the transport. A job row is written first (QUEUED,
 * `dispatchedAt` null); this loop publishes its message and then stamps `dispatchedAt`.
 * A crash between the two publishes the message again, which workers and the event
 * ingestion tolerate (at-least-once). Rows are locked with SKIP LOCKED, so several API
 * instances never publish the same attempt at the same moment. A sweep's repairs are
 * `dispatch/repairs.ts`, its batches `dispatch/batch.ts`; this holds the loop.
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const gpu: GpuRoutingSettings = options.gpuRouting ?? {
    mode: "off",
    fallbackAfterSeconds: 60,
    minSourceSeconds: 0,
    minHeight: 0,
  };
  const ctx: DispatchContext = { ...options, gpu, startedAt: Date.now(), kickAt };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  function kickAt(at: Date): void {
    setTimeout(run, Math.max(0, at.getTime() - Date.now())).unref();
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    // A request that queued a job only wakes the loop: the batch is not that request's work.
    running = detached(() => dispatchPending(ctx))
      .catch((err) => log.error("dispatch failed; will retry", { err }))
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          run();
        }
      });
  }

  return {
    kick: run,
    whyUnserved: (capability) => whyUnserved(ctx, capability),
    kickAt,
    async redispatch(capability) {
      const { count } = await ctx.db.job.updateMany({
        where: { status: "QUEUED", dispatchedTo: capability, dispatchedAt: { not: null } },
        data: { dispatchedAt: null },
      });
      if (count) log.warn("jobs whose messages were lost are published again", { queue: capability, jobs: count });
      run();
    },
    start() {
      timer = setInterval(run, SWEEP_INTERVAL_MS);
      timer.unref();
      run();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

/** Dispatcher.whyUnserved. */
async function whyUnserved(ctx: DispatchContext, capability: Capability): Promise<string | null> {
  const { db, vanishedAfterSeconds } = ctx;
  if (capability === "cpu" || capability === "local" || ctx.fallback) return null;
  if (await workerAlive(db, capability, vanishedAfterSeconds)) return null;
  // A worker testing the capability (Manim's first test render after a start) takes the job once it passes.
  const since = new Date(Date.now() - vanishedAfterSeconds * 1000);
  if (await db.worker.count({ where: { probing: { has: capability }, lastHeartbeatAt: { gte: since } } })) return null;
  const lastSeconds = `the last ${vanishedAfterSeconds} s`;
  return `no worker with the ${capability} capability has reported in ${lastSeconds}, and LOCAL_FALLBACK is off`;
}
