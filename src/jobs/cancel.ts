import type { Db } from "../db/client.ts";
import { ValidationError } from "../errors.ts";
import { TERMINAL_VIDEO_STATUSES, videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import type { Job, Video } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import { PROTOCOL_VERSION } from "../protocol/messages.ts";
import type { ApiTransport } from "../transport/types.ts";

export interface CancelDeps {
  db: Db;
  pubSub: VideoPubSub;
  transport: ApiTransport;
}

export const CANCELED_REASON = "Canceled on request";

/**
 * Cancels a video and its unfinished jobs (all of them, or only `jobIds`): the rows say CANCELED
 * at once, unfinished variants SKIPPED, and every worker is told to stop those attempts. A worker
 * that missed the message is told again when it reports the job started (see ingest-events.ts).
 */
export async function cancelVideo(deps: CancelDeps, videoId: string, jobIds?: string[]): Promise<{ video: Video; jobs: Job[] }> {
  const at = new Date();
  const result = await deps.db.$transaction(async (tx) => {
    const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
    if (TERMINAL_VIDEO_STATUSES.has(video.status)) {
      throw new ValidationError("id", `The video is ${video.status}; only videos waiting for upload, queued or processing can be canceled`);
    }
    const jobs = await tx.job.findMany({
      where: { videoId, status: { in: ["QUEUED", "RUNNING"] }, ...(jobIds ? { id: { in: jobIds } } : {}) },
    });
    await tx.job.updateMany({ where: { id: { in: jobs.map((j) => j.id) } }, data: { status: "CANCELED", finishedAt: at, error: CANCELED_REASON } });
    await tx.variant.updateMany({ where: { videoId, status: { in: ["PENDING", "ENCODING"] } }, data: { status: "SKIPPED" } });
    const canceled = await tx.video.update({ where: { id: videoId }, data: { status: "CANCELED", error: CANCELED_REASON, finishedAt: at } });
    return { video: canceled, jobs: await tx.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } } }) };
  });
  deps.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(result.video) });
  for (const job of result.jobs) await tellWorkersToCancel(deps.transport, job.id, job.attempt);
  return result;
}

/** Broadcasts the cancel; a failure is logged, the rows already say CANCELED. */
export async function tellWorkersToCancel(transport: ApiTransport, jobId: string, attempt: number, workerId?: string, runId?: string): Promise<void> {
  try {
    await transport.publishControl({ v: PROTOCOL_VERSION, type: "job.cancel", jobId, attempt, ...(workerId ? { workerId } : {}), ...(runId ? { runId } : {}) });
  } catch (err) {
    log.warn("cancel not broadcast; the worker will be told when it reports the job", { jobId, err });
  }
}
