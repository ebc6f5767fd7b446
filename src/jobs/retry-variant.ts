import type { Db } from "../db/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import type { Job, Variant, Video } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { announceQueuedJob, createJob } from "./create-job.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import type { Dispatcher } from "./dispatcher.ts";

/**
 * Queues a transcode of one FAILED variant's rung alone: the variant goes back to PENDING, the
 * video to PROCESSING (READY again when the rung is), and a job with `rungs = [name]` encodes
 * only that rung and republishes the master playlist with it and every other complete rung,
 * leaving the other rungs' files as they are. One job per video at a time: refused while one is queued or running.
 */
export async function retryVariant(
  deps: { db: Db; pubSub: VideoPubSub; dispatcher: Dispatcher; maxAttempts: number; costs: CostSettings },
  variantId: string,
  tenantId: string,
): Promise<{ variant: Variant; video: Video; job: Job }> {
  const result = await deps.db.$transaction(async (tx) => {
    const variant = isUuid(variantId)
      ? await tx.variant.findFirst({ where: { id: variantId, video: { tenantId } }, include: { video: true } })
      : null;
    if (!variant) throw new NotFoundError("variant", variantId);
    if (variant.status === "PENDING" || variant.status === "ENCODING") {
      throw new ValidationError("id", await whyNotRetryable(tx, variant.videoId, variant.name));
    }
    if (variant.status !== "FAILED") {
      throw new ValidationError("id", `The variant is ${variant.status}; only a FAILED variant can be retried`);
    }
    const { video } = variant;
    if (video.source === "LIVE") {
      // Its rungs were cut live on one timeline; a rung encoded again from the recording would not line up.
      throw new ValidationError("id", "A live recording's rendition cannot be encoded again");
    }
    // The status update below is the lock: of two concurrent retries of one video, one finds it PROCESSING.
    const { count } = await tx.video.updateMany({
      where: {
        id: video.id,
        status: { in: ["READY", "FAILED"] },
        jobs: { none: { status: { in: ["QUEUED", "RUNNING"] } } },
      },
      data: { status: "PROCESSING", error: null, finishedAt: null },
    });
    if (!count) throw new ValidationError("id", await whyNotRetryable(tx, video.id, variant.name));
    const retried = await tx.variant.update({
      where: { id: variant.id },
      data: { status: "PENDING", progress: 0, segmentCount: 0, error: null, readyAt: null },
    });
    const job = await createJob(
      tx,
      {
        videoId: video.id,
        kind: "TRANSCODE",
        input: { rungs: [variant.name] },
        maxAttempts: deps.maxAttempts,
      },
      deps.costs,
    );
    return { variant: retried, job, video: await tx.video.findUniqueOrThrow({ where: { id: video.id } }) };
  });
  announceQueuedJob(deps, result.video);
  return result;
}

/** Why the video's compare-and-set refused a retry, as it stands now (the winner of a race has committed). */
async function whyNotRetryable(tx: Pick<Db, "video" | "job">, videoId: string, rung: string): Promise<string> {
  const running = await tx.job.findFirst({
    where: { videoId, status: { in: ["QUEUED", "RUNNING"] } },
    orderBy: { createdAt: "desc" },
  });
  const state = running?.status === "QUEUED" ? "queued" : "running";
  if (running?.rungs.includes(rung)) return `A retry of this variant is already ${state}`;
  if (running) return `A job of this video is ${state}; retry the variant once it has finished`;
  const { status } = await tx.video.findUniqueOrThrow({ where: { id: videoId }, select: { status: true } });
  return `The video is ${status}; a variant can be retried once the video is READY or FAILED`;
}
