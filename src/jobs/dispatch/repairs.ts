import { log } from "../../log.ts";
import type { Capability } from "../../protocol/worker-messages.ts";
import { capabilityUnserved, type DispatchContext } from "./context.ts";

/**
 * What each sweep puts right before it dispatches: jobs whose worker vanished, jobs stranded on a
 * queue nobody serves, transcodes the GPU queue did not take in time. Each goes back to be dispatched.
 */
export async function repairQueue(ctx: DispatchContext): Promise<void> {
  await requeueVanished(ctx);
  await rerouteStranded(ctx);
  await fallBackFromGpu(ctx);
}

/**
 * A transcode sent to the nvenc queue that no worker took within GPU_FALLBACK_AFTER_SECONDS is
 * sent again to cpu (a GPU worker that takes the first message later runs a duplicate, which is
 * stopped like any other).
 */
async function fallBackFromGpu({ db, gpu }: DispatchContext): Promise<void> {
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
async function rerouteStranded(ctx: DispatchContext): Promise<void> {
  const { db } = ctx;
  if (!ctx.fallback) return;
  const cutoff = new Date(Date.now() - ctx.fallback.afterSeconds * 1000);
  const stranded = await db.job.findMany({
    where: { status: "QUEUED", dispatchedAt: { lt: cutoff }, dispatchedTo: { notIn: ["cpu", "local"] } },
    select: { id: true, attempt: true, capability: true },
  });
  for (const job of stranded) {
    if (!(await capabilityUnserved(ctx, db, job.capability as Capability))) continue;
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
async function requeueVanished({ db, vanishedAfterSeconds }: DispatchContext): Promise<void> {
  const cutoff = new Date(Date.now() - vanishedAfterSeconds * 1000);
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
