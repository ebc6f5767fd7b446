import type { CostSettings } from "../costs/cost-model.ts";
import type { Db, DbTransaction } from "../db/client.ts";
import type { Job } from "../generated/prisma/client.ts";
import { createJob } from "../jobs/create-job.ts";
import { modelLanguageOf } from "./generated-caption-row.ts";

/**
 * Queues a TRANSCRIBE job for each of a READY video's generated tracks that has none yet (the caller
 * holds the video's lock and announces the jobs once the transaction commits). None when the video is
 * not READY: its transcode's success calls this again.
 */
export async function queueGeneratedCaptions(
  tx: Pick<DbTransaction, "job" | "video" | "variant" | "caption">,
  videoId: string,
  options: { maxAttempts: number; costs: CostSettings },
): Promise<Job[]> {
  const video = await tx.video.findUnique({ where: { id: videoId }, select: { status: true } });
  if (video?.status !== "READY") return [];
  const waiting = await tx.caption.findMany({
    where: { videoId, source: "GENERATED", status: "PROCESSING", jobId: null },
    orderBy: { createdAt: "asc" },
  });
  const jobs: Job[] = [];
  for (const caption of waiting) {
    const model = modelLanguageOf(caption.language);
    if (model === null) {
      // updateCaption changed its language meanwhile: the video's READY must not fail for it.
      const error = `Generated captions are made in English only, not "${caption.language}"`;
      await tx.caption.update({ where: { id: caption.id }, data: { status: "FAILED", error } });
      continue;
    }
    const job = await createJob(
      tx,
      {
        videoId,
        kind: "TRANSCRIBE",
        input: { captionId: caption.id, language: model },
        maxAttempts: options.maxAttempts,
      },
      options.costs,
    );
    await tx.caption.update({ where: { id: caption.id }, data: { jobId: job.id } });
    jobs.push(job);
  }
  return jobs;
}

/** The track a TRANSCRIBE job was making and did not finish: FAILED with `error` (the video stands). */
export async function failGeneratedCaption(tx: Pick<Db, "caption">, jobId: string, error: string): Promise<void> {
  await tx.caption.updateMany({ where: { jobId, status: "PROCESSING" }, data: { status: "FAILED", error } });
}
