import type { Db, DbTransaction } from "../../db/client.ts";
import type { Job, Video } from "../../generated/prisma/client.ts";
import { log } from "../../log.ts";
import { dispatchLatency } from "../../metrics.ts";
import { withLogFields } from "../../shared/log.ts";
import type { Capability } from "../../protocol/worker-messages.ts";
import type { JobMessage } from "../../protocol/job-message.ts";
import { contextOf, inSpan, SpanKind, traceparentOf } from "../../shared/tracing.ts";
import { buildJobMessage } from "../job-messages.ts";
import { chooseQueue, gpuEncodableJob, type Route } from "../routing.ts";
import { aliveWith, capabilityUnserved, type DispatchContext, workerAlive } from "./context.ts";
import { repairQueue } from "./repairs.ts";

/** Jobs locked and published per transaction. */
const BATCH_SIZE = 20;

type JobWithVideo = Job & { video: Video };

/** One sweep: the queue's repairs, then every due job published, a batch at a time. */
export async function dispatchPending(ctx: DispatchContext): Promise<void> {
  await repairQueue(ctx);
  for (;;) {
    const count = await ctx.db.$transaction((tx) => dispatchBatch(ctx, tx), { timeout: 30_000 });
    if (count < BATCH_SIZE) return;
  }
}

/** Locks up to a batch of due jobs (SKIP LOCKED: other API instances take others) and publishes each. */
async function dispatchBatch(ctx: DispatchContext, tx: DbTransaction): Promise<number> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Job" WHERE status = 'QUEUED' AND "dispatchedAt" IS NULL
      AND ("runAfter" IS NULL OR "runAfter" <= now())
    ORDER BY "createdAt" LIMIT ${BATCH_SIZE} FOR UPDATE SKIP LOCKED`;
  // Asked at most once per batch, and only when a job could go to a GPU.
  let nvencAlive: Promise<boolean> | undefined;
  const gpuWorkerAlive = () => (nvencAlive ??= workerAlive(tx, "nvenc", ctx.vanishedAfterSeconds));
  for (const { id } of rows) {
    const job = await tx.job.findUniqueOrThrow({
      where: { id },
      include: { video: { include: { contentKey: true } } },
    });
    let message: JobMessage;
    try {
      message = buildJobMessage(job, job.video, ctx);
    } catch (err) {
      await failUndispatchable(tx, job, err as Error);
      continue;
    }
    const queue = await publishJob(ctx, tx, job, message, gpuWorkerAlive);
    if (queue === "nvenc") ctx.kickAt(new Date(Date.now() + ctx.gpu.fallbackAfterSeconds * 1000 + 100));
  }
  return rows.length;
}

/** A job no worker could run fails, with its video, so it does not hold up the jobs behind it. */
async function failUndispatchable(tx: DbTransaction, job: Job, err: Error): Promise<void> {
  const error = `The job cannot be sent to a worker: ${err.message}`;
  // The job's row is locked before its video's here, the other way round from every other
  // state change (video-lock.ts): wait for no video lock, or the two could deadlock.
  const videoFree = await tx.$queryRaw<
    unknown[]
  >`SELECT 1 FROM "Video" WHERE id = ${job.videoId}::uuid FOR NO KEY UPDATE SKIP LOCKED`;
  if (!videoFree.length) return;
  log.error("job not dispatchable; failed", { jobId: job.id, err });
  await tx.job.update({ where: { id: job.id }, data: { status: "FAILED", error, finishedAt: new Date() } });
  await tx.video.updateMany({
    where: { id: job.videoId, status: { in: ["QUEUED", "PROCESSING"] } },
    data: { status: "FAILED", playable: false, error, finishedAt: new Date() },
  });
}

/** Routes the job's attempt, publishes its message there and stamps the row; the queue it went to. */
function publishJob(
  ctx: DispatchContext,
  tx: DbTransaction,
  job: JobWithVideo,
  message: JobMessage,
  gpuWorkerAlive: () => Promise<boolean>,
): Promise<Capability> {
  const { id } = job;
  // Each attempt's message continues the trace of what created the job.
  const dispatchSpan = {
    parent: contextOf(job.traceparent ?? undefined),
    kind: SpanKind.PRODUCER,
    attributes: { "job.id": id, "job.attempt": job.attempt, "job.kind": job.kind, "video.id": job.videoId },
  };
  return withLogFields({ jobId: id, videoId: job.videoId }, () =>
    inSpan("dispatch job", dispatchSpan, async (span) => {
      const { queue, reason } = await routeFor(ctx, tx, job, job.video, gpuWorkerAlive);
      span.setAttribute("job.queue", queue);
      const sent = await withChunking(ctx, tx, job, message, queue);
      await ctx.transport.publishJob(queue, { ...sent, traceparent: traceparentOf() });
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
}

/** Where a job's attempt goes now, and why (routing.ts decides; this gathers the facts). */
async function routeFor(
  ctx: DispatchContext,
  tx: Pick<Db, "worker">,
  job: Pick<Job, "kind" | "capability" | "routingReason">,
  video: Pick<Video, "duration" | "height" | "hasAudio" | "videoCodec"> | null,
  gpuWorkerAlive: () => Promise<boolean>,
): Promise<Route> {
  const { gpu } = ctx;
  const capability = job.capability as Capability;
  const askGpu = gpu.mode !== "off" && gpuEncodableJob(job.kind, capability);
  return chooseQueue({
    kind: job.kind,
    capability,
    leftGpu:
      job.routingReason === "GPU_WAIT_EXPIRED" || job.routingReason === "GPU_ENCODE_FAILED" ? job.routingReason : null,
    source: {
      seconds: video?.duration ?? null,
      height: video?.height ?? null,
      // Probed (hasAudio is set) with no video codec: there is no picture for a GPU to encode.
      audioOnly: video !== null && video.hasAudio !== null && video.videoCodec === null,
    },
    gpuWorkerAlive: askGpu && (await gpuWorkerAlive()),
    capabilityUnserved: await capabilityUnserved(ctx, tx, capability),
    gpu,
  });
}

/**
 * The message as sent to `queue`: a whole transcode on the cpu queue may be split while its chunks
 * can run side by side now (a retried rung or a clip is never split), told how many cpu jobs the
 * workers alive run at once (docs/chunked-transcoding.md, "The default"). A transcode that split
 * before (a retry, a redelivery) may split again however busy the fleet is: its chunks are queued,
 * and a whole run beside them would publish what they publish.
 */
async function withChunking(
  ctx: DispatchContext,
  tx: Pick<Db, "worker" | "job">,
  job: Pick<Job, "id" | "videoId">,
  message: JobMessage,
  queue: Capability,
): Promise<JobMessage> {
  const chunking = ctx.chunking;
  if (!chunking || queue !== "cpu" || message.type !== "transcode") return message;
  if (message.options.rungs || message.options.trim) return message;
  const fleet = await cpuFleet(ctx, tx, job.id);
  const room = fleet.workersWithRoom >= 2 && fleet.freeSlots >= 2;
  if (!room && !(await splitBefore(tx, job))) return message;
  return { ...message, options: { ...message.options, chunking: { ...chunking, slots: Math.max(1, fleet.slots) } } };
}

/**
 * The alive cpu workers' slots, and those free for a split's runs: each worker's slots less the
 * jobs it runs, less the cpu jobs sent and not yet taken (they take the next free slots). Chunks
 * gain only across workers that run them at once; on one worker, or on a busy fleet where they
 * would queue behind other work, a split only adds each chunk's pre-roll.
 */
async function cpuFleet(
  ctx: DispatchContext,
  tx: Pick<Db, "worker" | "job">,
  jobId: string,
): Promise<{ slots: number; workersWithRoom: number; freeSlots: number }> {
  const workers = await tx.worker.findMany({
    where: aliveWith("cpu", ctx.vanishedAfterSeconds),
    select: { id: true, slots: true },
  });
  const slots = workers.reduce((sum, w) => sum + w.slots, 0);
  if (workers.length < 2) return { slots, workersWithRoom: workers.length, freeSlots: 0 };
  const running = await tx.job.groupBy({
    by: ["workerId"],
    where: { status: "RUNNING", workerId: { in: workers.map((w) => w.id) } },
    _count: true,
  });
  const busy = new Map(running.map((r) => [r.workerId, r._count]));
  const room = workers.map((w) => Math.max(0, w.slots - (busy.get(w.id) ?? 0)));
  const waiting = await tx.job.count({
    where: { status: "QUEUED", dispatchedTo: "cpu", dispatchedAt: { not: null }, id: { not: jobId } },
  });
  return {
    slots,
    workersWithRoom: room.filter((r) => r > 0).length,
    freeSlots: room.reduce((sum, r) => sum + r, 0) - waiting,
  };
}

/** Whether the transcode's chunks were queued by an earlier run (its video's jobs: indexed). */
const splitBefore = async (tx: Pick<Db, "job">, job: Pick<Job, "id" | "videoId">) =>
  (await tx.job.count({ where: { videoId: job.videoId, parentId: job.id, kind: "TRANSCODE_CHUNK" } })) > 0;
