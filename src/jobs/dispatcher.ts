import type { Db } from "../db/client.ts";
import { log } from "../log.ts";
import { PROTOCOL_VERSION, type Capability, type JobMessage } from "../protocol/messages.ts";
import type { ApiTransport } from "../transport/types.ts";

/** Delay before attempt `attempt` (2, 3, …) of a job: 2 s, 4 s, 8 s … up to 5 minutes. */
export function retryDelayMs(attempt: number): number {
  return Math.min(300, 2 ** (attempt - 1)) * 1000;
}

export interface Dispatcher {
  /** Dispatches queued jobs now rather than at the next sweep. */
  kick(): void;
  /** Dispatches at `at` (a retry's `runAfter`), sooner than the sweep would. */
  kickAt(at: Date): void;
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
  /** A RUNNING job whose worker has been silent this long is queued again. */
  vanishedAfterSeconds: number;
}): Dispatcher {
  const { db, transport } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  /**
   * The backstop behind the transports' own redelivery: a job whose worker went silent without
   * the transport noticing (a worker gone while the API was down, a stopped duplicate that acked
   * its delivery) goes back to the queue. Also what recovers such jobs at start.
   */
  async function requeueVanished(): Promise<void> {
    const cutoff = new Date(Date.now() - deps.vanishedAfterSeconds * 1000);
    const silent = await db.job.findMany({ where: { status: "RUNNING", heartbeatAt: { lt: cutoff } }, select: { id: true, attempt: true, workerId: true } });
    for (const job of silent) {
      const { count } = await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: "RUNNING", heartbeatAt: { lt: cutoff } },
        data: { status: "QUEUED", dispatchedAt: null, workerId: null },
      });
      if (count) log.warn("job's worker went silent; queued again", { jobId: job.id, attempt: job.attempt, workerId: job.workerId });
    }
  }

  async function dispatchPending(): Promise<void> {
    await requeueVanished();
    for (;;) {
      const count = await db.$transaction(async (tx) => {
        const rows = await tx.$queryRaw<{ id: string }[]>`
          SELECT id FROM "Job" WHERE status = 'QUEUED' AND "dispatchedAt" IS NULL
            AND ("runAfter" IS NULL OR "runAfter" <= now())
          ORDER BY "createdAt" LIMIT 20 FOR UPDATE SKIP LOCKED`;
        for (const { id } of rows) {
          const job = await tx.job.findUniqueOrThrow({ where: { id }, include: { video: true } });
          if (!job.video.sourceKey) throw new Error(`Job ${id} has no source to transcode`);
          const message: JobMessage = {
            v: PROTOCOL_VERSION,
            type: "transcode",
            jobId: job.id,
            attempt: job.attempt,
            videoId: job.videoId,
            sourceKey: job.video.sourceKey,
            outputPrefix: `videos/${job.videoId}`,
            options: {
              segmentSeconds: deps.segmentSeconds,
              maxDurationSeconds: deps.maxDurationSeconds,
              ...(job.rungs.length > 0 ? { rungs: job.rungs } : {}),
            },
          };
          await transport.publishJob(job.capability as Capability, message);
          await tx.job.update({ where: { id }, data: { dispatchedAt: new Date() } });
          log.info("job dispatched", { jobId: id, attempt: job.attempt });
        }
        return rows.length;
      }, { timeout: 30_000 });
      if (count < 20) return;
    }
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = dispatchPending()
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
    kickAt(at) {
      setTimeout(run, Math.max(0, at.getTime() - Date.now())).unref();
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
