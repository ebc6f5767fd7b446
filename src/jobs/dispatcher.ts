import type { Db } from "../db/client.ts";
import type { Job, Video } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import { dispatchLatency } from "../metrics.ts";
import { detached, withLogFields } from "../shared/log.ts";
import type { Capability, JobMessage } from "../protocol/messages.ts";
import { contextOf, inSpan, SpanKind, traceparentOf } from "../shared/tracing.ts";
import type { ApiTransport } from "../transport/types.ts";
import { buildJobMessage } from "./job-messages.ts";
import { chooseQueue, type GpuRoutingSettings, gpuEncodableJob, type Route } from "./routing.ts";

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
 * instances never publish the same attempt at the same moment.
 */
export function createDispatcher(deps: {
  db: Db;
  transport: ApiTransport;
  segmentSeconds: number;
  maxDurationSeconds: number;
  urlImport: { maxBytes: number; allowPrivateAddresses: boolean };
  /** A RUNNING job whose worker has been silent this long is queued again. */
  vanishedAfterSeconds: number;
  /**
   * LOCAL_FALLBACK: a job whose capability no worker has heartbeated for `afterSeconds` goes to
   * the API's own worker (the `local` queue) instead; null when off.
   */
  fallback?: { afterSeconds: number } | null;
  /** GPU_ROUTING: transcodes go to the nvenc queue while a worker advertising nvenc is alive; off when absent. */
  gpuRouting?: GpuRoutingSettings;
  /**
   * CHUNK_SECONDS: a transcode sent to the cpu queue while two or more cpu workers are alive may be
   * split into chunks of about this length; null or absent: never.
   */
  chunking?: { chunkSeconds: number; firstChunkSeconds: number } | null;
}): Dispatcher {
  const { db, transport } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const startedAt = Date.now();

  const gpu: GpuRoutingSettings = deps.gpuRouting ?? {
    mode: "off",
    fallbackAfterSeconds: 60,
    minSourceSeconds: 0,
    minHeight: 0,
  };

  /** The workers with `capability` that heartbeated within `withinSeconds`. */
  const aliveWith = (capability: Capability, withinSeconds: number) => ({
    capabilities: { has: capability },
    lastHeartbeatAt: { gte: new Date(Date.now() - withinSeconds * 1000) },
  });
  const workerAlive = async (tx: Pick<Db, "worker">, capability: Capability, withinSeconds: number) =>
    (await tx.worker.count({ where: aliveWith(capability, withinSeconds) })) > 0;

  /**
   * The message as sent to `queue`: a whole transcode on the cpu queue may be split while more than
   * one cpu worker can take its chunks (a retried rung or a clip is never split), told how many
   * cpu jobs those workers run at once.
   */
  async function withChunking(tx: Pick<Db, "worker">, message: JobMessage, queue: Capability): Promise<JobMessage> {
    const chunking = deps.chunking;
    if (!chunking || queue !== "cpu" || message.type !== "transcode") return message;
    if (message.options.rungs || message.options.trim) return message;
    const alive = await tx.worker.aggregate({
      where: aliveWith("cpu", deps.vanishedAfterSeconds),
      _count: true,
      _sum: { slots: true },
    });
    if (alive._count < 2) return message;
    return { ...message, options: { ...message.options, chunking: { ...chunking, slots: alive._sum.slots ?? 2 } } };
  }

  /** True when LOCAL_FALLBACK sends jobs of `capability` to the local worker: none with it is alive. */
  async function capabilityUnserved(tx: Pick<Db, "worker">, capability: Capability): Promise<boolean> {
    if (!deps.fallback || capability === "cpu" || capability === "local") return false;
    // Until the API has been up that long, silence may only mean workers have not reported yet.
    if (Date.now() - startedAt < deps.fallback.afterSeconds * 1000) return false;
    return !(await workerAlive(tx, capability, deps.fallback.afterSeconds));
  }

  /** Where a job's attempt goes now, and why (routing.ts decides; this gathers the facts). */
  async function routeFor(
    tx: Pick<Db, "worker">,
    job: Pick<Job, "kind" | "capability" | "routingReason">,
    video: Pick<Video, "duration" | "height" | "hasAudio" | "videoCodec"> | null,
    gpuWorkerAlive: () => Promise<boolean>,
  ): Promise<Route> {
    const capability = job.capability as Capability;
    const askGpu = gpu.mode !== "off" && gpuEncodableJob(job.kind, capability);
    return chooseQueue({
      kind: job.kind,
      capability,
      leftGpu:
        job.routingReason === "GPU_WAIT_EXPIRED" || job.routingReason === "GPU_ENCODE_FAILED"
          ? job.routingReason
          : null,
      source: {
        seconds: video?.duration ?? null,
        height: video?.height ?? null,
        // Probed (hasAudio is set) with no video codec: there is no picture for a GPU to encode.
        audioOnly: video !== null && video.hasAudio !== null && video.videoCodec === null,
      },
      gpuWorkerAlive: askGpu && (await gpuWorkerAlive()),
      capabilityUnserved: await capabilityUnserved(tx, capability),
      gpu,
    });
  }

  /**
   * A transcode sent to the nvenc queue that no worker took within GPU_FALLBACK_AFTER_SECONDS is
   * sent again to cpu (a GPU worker that takes the first message later runs a duplicate, which is
   * stopped like any other).
   */
  async function fallBackFromGpu(): Promise<void> {
    const cutoff = new Date(Date.now() - gpu.fallbackAfterSeconds * 1000);
    const waiting = await db.job.findMany({
      where: { status: "QUEUED", dispatchedTo: "nvenc", capability: "cpu", dispatchedAt: { lt: cutoff } },
      select: { id: true, attempt: true },
    });
    for (const job of waiting) {
      const { count } = await db.job.updateMany({
        where: {
          id: job.id,
          attempt: job.attempt,
          status: "QUEUED",
          dispatchedTo: "nvenc",
          dispatchedAt: { lt: cutoff },
        },
        data: { dispatchedAt: null, routingReason: "GPU_WAIT_EXPIRED" },
      });
      if (count)
        log.warn("no GPU worker took the job in time; sending it to cpu", {
          jobId: job.id,
          waitedSeconds: gpu.fallbackAfterSeconds,
        });
    }
  }

  /**
   * A job sent to a capability's queue that nobody took within FALLBACK_AFTER_SECONDS, while no
   * worker with that capability is alive, is sent again to the local worker.
   */
  async function rerouteStranded(): Promise<void> {
    if (!deps.fallback) return;
    const cutoff = new Date(Date.now() - deps.fallback.afterSeconds * 1000);
    const stranded = await db.job.findMany({
      where: { status: "QUEUED", dispatchedAt: { lt: cutoff }, dispatchedTo: { notIn: ["cpu", "local"] } },
      select: { id: true, attempt: true, capability: true },
    });
    for (const job of stranded) {
      if (!(await capabilityUnserved(db, job.capability as Capability))) continue;
      const { count } = await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: "QUEUED" },
        data: { dispatchedAt: null },
      });
      if (count)
        log.warn("no worker took the job and none with its capability is alive; sending it to the local worker", {
          jobId: job.id,
          capability: job.capability,
        });
    }
  }

  /**
   * The backstop behind the transports' own redelivery: a job whose worker went silent without
   * the transport noticing (a worker gone while the API was down, a stopped duplicate that acked
   * its delivery) goes back to the queue. Also what recovers such jobs at start.
   */
  async function requeueVanished(): Promise<void> {
    const cutoff = new Date(Date.now() - deps.vanishedAfterSeconds * 1000);
    const silent = await db.job.findMany({
      where: { status: "RUNNING", heartbeatAt: { lt: cutoff } },
      select: { id: true, attempt: true, workerId: true },
    });
    for (const job of silent) {
      const { count } = await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: "RUNNING", heartbeatAt: { lt: cutoff } },
        data: { status: "QUEUED", dispatchedAt: null, workerId: null, runId: "" },
      });
      if (count)
        log.warn("job's worker went silent; queued again", {
          jobId: job.id,
          attempt: job.attempt,
          workerId: job.workerId,
        });
    }
  }

  async function dispatchPending(): Promise<void> {
    await requeueVanished();
    await rerouteStranded();
    await fallBackFromGpu();
    for (;;) {
      const count = await db.$transaction(
        async (tx) => {
          const rows = await tx.$queryRaw<{ id: string }[]>`
          SELECT id FROM "Job" WHERE status = 'QUEUED' AND "dispatchedAt" IS NULL
            AND ("runAfter" IS NULL OR "runAfter" <= now())
          ORDER BY "createdAt" LIMIT 20 FOR UPDATE SKIP LOCKED`;
          // Asked at most once per batch, and only when a job could go to a GPU.
          let nvencAlive: Promise<boolean> | undefined;
          const gpuWorkerAlive = () => (nvencAlive ??= workerAlive(tx, "nvenc", deps.vanishedAfterSeconds));
          for (const { id } of rows) {
            const job = await tx.job.findUniqueOrThrow({ where: { id }, include: { video: true } });
            let message: JobMessage;
            try {
              message = buildJobMessage(job, job.video, deps);
            } catch (err) {
              // A job no worker could run must not hold up the jobs behind it.
              const error = `The job cannot be sent to a worker: ${(err as Error).message}`;
              // The job's row is locked before its video's here, the other way round from every other
              // state change (video-lock.ts): wait for no video lock, or the two could deadlock.
              const videoFree = await tx.$queryRaw<
                unknown[]
              >`SELECT 1 FROM "Video" WHERE id = ${job.videoId}::uuid FOR NO KEY UPDATE SKIP LOCKED`;
              if (!videoFree.length) continue;
              log.error("job not dispatchable; failed", { jobId: id, err });
              await tx.job.update({ where: { id }, data: { status: "FAILED", error, finishedAt: new Date() } });
              await tx.video.updateMany({
                where: { id: job.videoId, status: { in: ["QUEUED", "PROCESSING"] } },
                data: { status: "FAILED", playable: false, error, finishedAt: new Date() },
              });
              continue;
            }
            // Each attempt's message continues the trace of what created the job.
            const dispatchSpan = {
              parent: contextOf(job.traceparent ?? undefined),
              kind: SpanKind.PRODUCER,
              attributes: { "job.id": id, "job.attempt": job.attempt, "job.kind": job.kind, "video.id": job.videoId },
            };
            const queue = await withLogFields({ jobId: id, videoId: job.videoId }, () =>
              inSpan("dispatch job", dispatchSpan, async (span) => {
                const { queue, reason } = await routeFor(tx, job, job.video, gpuWorkerAlive);
                span.setAttribute("job.queue", queue);
                const sent = await withChunking(tx, message, queue);
                await transport.publishJob(queue, { ...sent, traceparent: traceparentOf() });
                const dueAt = Math.max(job.createdAt.getTime(), job.runAfter?.getTime() ?? 0);
                dispatchLatency.observe({ queue }, Math.max(0, Date.now() - dueAt) / 1000);
                await tx.job.update({
                  where: { id },
                  data: { dispatchedAt: new Date(), dispatchedTo: queue, routingReason: reason },
                });
                log.info("job dispatched", { attempt: job.attempt, kind: job.kind, queue, reason });
                return queue;
              }),
            );
            if (queue === "nvenc") kickAt(new Date(Date.now() + gpu.fallbackAfterSeconds * 1000 + 100));
          }
          return rows.length;
        },
        { timeout: 30_000 },
      );
      if (count < 20) return;
    }
  }

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
    running = detached(dispatchPending)
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
    async whyUnserved(capability) {
      if (capability === "cpu" || capability === "local" || deps.fallback) return null;
      if (await workerAlive(db, capability, deps.vanishedAfterSeconds)) return null;
      // A worker testing the capability (Manim's first test render after a start) takes the job once it passes.
      const since = new Date(Date.now() - deps.vanishedAfterSeconds * 1000);
      if (await db.worker.count({ where: { probing: { has: capability }, lastHeartbeatAt: { gte: since } } }))
        return null;
      const lastSeconds = `the last ${deps.vanishedAfterSeconds} s`;
      return `no worker with the ${capability} capability has reported in ${lastSeconds}, and LOCAL_FALLBACK is off`;
    },
    kickAt,
    async redispatch(capability) {
      const { count } = await db.job.updateMany({
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
