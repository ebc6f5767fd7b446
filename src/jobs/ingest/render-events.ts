import { videoSnapshot } from "../../events/video-events.ts";
import { sourceName } from "../../protocol/storage-layout.ts";
import { announceQueuedJob, createJob } from "../create-job.ts";
import { renderJobProgress } from "../progress.ts";
import { lockVideo } from "../video-lock.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedAttemptIn } from "./run-records.ts";

/** The events of jobs that make a video's source (Manim and composition renders, URL imports). */
export function createRenderEventIngestor(deps: IngestDeps, runs: JobRunIngestor) {
  const { db, pubSub, progressWrites } = deps;
  // The ingestor has no dispatcher: a queued job is dispatched through the requeue callback.
  const dispatcher = { kick: () => deps.onJobRequeued(new Date()) };

  async function onStepProgress(e: EventOf<"step.progress">, videoId: string): Promise<void> {
    const video = await db.video.findUnique({ where: { id: videoId } });
    if (!video) return;
    pubSub.publish("videoEvents", videoId, {
      kind: "renderProgress",
      video: videoSnapshot(video),
      index: e.index,
      count: e.count,
      percent: e.percent,
      description: e.description,
      renderedCount: e.renderedCount,
      cachedCount: e.cachedCount,
    });
    const progress = renderJobProgress(e);
    if (progress === null || !progressWrites.due(e.jobId)) return;
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: "RUNNING", progress: { lte: progress } },
      data: { progress },
    });
  }

  /**
   * A render or import job made the video's source: it succeeds, and in the same transaction the
   * video gets the source and a transcode job (its child) is queued.
   */
  async function onSourceReady(e: EventOf<"source.ready">, videoId: string): Promise<void> {
    await runs.finishRun(e);
    const at = new Date(e.at);
    const video = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const count = await succeedAttemptIn(tx, e, at);
      if (!count) return null;
      const parent = await tx.job.findUniqueOrThrow({ where: { id: e.jobId } });
      await tx.video.updateMany({
        where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
        data: { sourceKey: e.outputKey, sourceName: sourceName(e.outputKey), uploadedAt: at },
      });
      const { maxAttempts } = parent;
      await createJob(tx, { videoId, kind: "TRANSCODE", input: {}, parentId: parent.id, maxAttempts }, deps.costs);
      return tx.video.findUniqueOrThrow({ where: { id: videoId } });
    });
    if (!video) return;
    progressWrites.forget(e.jobId);
    announceQueuedJob({ dispatcher, pubSub }, video);
  }

  return { onStepProgress, onSourceReady };
}
