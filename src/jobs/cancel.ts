import type { Db } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { TERMINAL_VIDEO_STATUSES, videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import type { Job, JobStatus, Video } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import { PROTOCOL_VERSION } from "../protocol/version.ts";
import type { ApiTransport } from "../transport/types.ts";
import { queueOf, type QueueWatch } from "./queue-position.ts";
import { lockVideo } from "./video-lock.ts";

export interface CancelDeps {
  db: Db;
  pubSub: VideoPubSub;
  transport: ApiTransport;
  /** Told of canceled jobs, so the jobs behind them in their queues hear their new positions. */
  queueWatch: Pick<QueueWatch, "changed">;
  /** Live streams: a canceled broadcast ends its stream and cuts its publisher off. */
  live: { onVideoCanceled(videoId: string): Promise<void> };
}

const CANCELED_REASON = "Canceled on request";

/**
 * Cancels a video and its unfinished jobs (or only `jobIds`): rows CANCELED, unfinished variants SKIPPED, every
 * worker told to stop (again when it reports or heartbeats the job). Compare-and-set under the video's lock: a
 * video that finished first is refused, and a completion after the cancel changes nothing. A canceled video is
 * not playable; its files stay until it is deleted.
 */
export async function cancelVideo(
  deps: CancelDeps,
  videoId: string,
  jobIds?: string[],
): Promise<{ video: Video; jobs: Job[] }> {
  const at = new Date();
  const result = await deps.db.$transaction(async (tx) => {
    const status = await lockVideo(tx, videoId);
    if (!status) throw new NotFoundError("video", videoId);
    if (TERMINAL_VIDEO_STATUSES.has(status)) {
      throw new ValidationError(
        "id",
        `The video is ${status}: it has already finished; only videos waiting for upload, queued or processing ` +
          `can be canceled`,
      );
    }
    const unfinished = { status: { in: ["QUEUED", "RUNNING"] as JobStatus[] } };
    // A split transcode's chunks go with it.
    const chosen = jobIds
      ? { OR: [{ id: { in: jobIds } }, { parentId: { in: jobIds }, kind: "TRANSCODE_CHUNK" as const }] }
      : {};
    const jobs = await tx.job.findMany({ where: { videoId, ...unfinished, ...chosen } });
    if (jobIds && !jobs.length) {
      const finished = await tx.job.findFirst({ where: { videoId, id: { in: jobIds } } });
      throw new ValidationError(
        "id",
        `The job is ${finished?.status ?? "gone"}: it has already finished; only queued or running jobs ` +
          `can be canceled`,
      );
    }
    const ids = jobs.map((j) => j.id);
    await tx.job.updateMany({
      where: { id: { in: ids }, ...unfinished },
      data: { status: "CANCELED", finishedAt: at, error: CANCELED_REASON },
    });
    await tx.variant.updateMany({
      where: { videoId, status: { in: ["PENDING", "ENCODING"] } },
      data: { status: "SKIPPED" },
    });
    const canceled = await tx.video.update({
      where: { id: videoId },
      data: { status: "CANCELED", error: CANCELED_REASON, finishedAt: at, playable: false, masterKey: null },
    });
    return { video: canceled, jobs: await tx.job.findMany({ where: { id: { in: ids }, status: "CANCELED" } }) };
  });
  deps.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(result.video) });
  for (const job of result.jobs) await tellWorkersToCancel(deps.transport, job.id, job.attempt);
  for (const queue of new Set(result.jobs.map(queueOf))) deps.queueWatch.changed(queue);
  if (result.video.source === "LIVE") await deps.live.onVideoCanceled(videoId);
  return result;
}

/** Broadcasts the cancel; a failure is logged, the rows already say CANCELED. */
export async function tellWorkersToCancel(
  transport: ApiTransport,
  jobId: string,
  attempt: number,
  workerId?: string,
  runId?: string,
): Promise<void> {
  try {
    await transport.publishControl({
      v: PROTOCOL_VERSION,
      type: "job.cancel",
      jobId,
      attempt,
      ...(workerId ? { workerId } : {}),
      ...(runId ? { runId } : {}),
    });
  } catch (err) {
    log.warn("cancel not broadcast; the worker will be told when it reports the job", { jobId, err });
  }
}

/**
 * Cancels the other unfinished jobs of the split transcode `job` belongs to (the transcode and its
 * chunks) in the caller's transaction, and returns them: the caller tells their workers once it
 * commits. Nothing for a job of no split transcode.
 */
export async function cancelSplitFamily(
  tx: Pick<Db, "job">,
  job: Pick<Job, "id" | "kind" | "parentId">,
  error: string,
  at: Date,
): Promise<Job[]> {
  const parentId = job.kind === "TRANSCODE_CHUNK" ? job.parentId : job.kind === "TRANSCODE" ? job.id : null;
  if (!parentId) return [];
  const unfinished = { status: { in: ["QUEUED", "RUNNING"] as JobStatus[] } };
  const family = await tx.job.findMany({
    where: { OR: [{ id: parentId }, { parentId, kind: "TRANSCODE_CHUNK" }], NOT: { id: job.id }, ...unfinished },
  });
  if (family.length === 0) return [];
  await tx.job.updateMany({
    where: { id: { in: family.map((j) => j.id) }, ...unfinished },
    data: { status: "CANCELED", finishedAt: at, error },
  });
  return family;
}
