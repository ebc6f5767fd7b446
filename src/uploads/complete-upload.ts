import type { Db } from "../db/client.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { sourceKey, sourcePrefix } from "../protocol/storage-layout.ts";
import { inSpan } from "../shared/tracing.ts";
import type { ApiStorage } from "../storage/types.ts";
import type { Video } from "../generated/prisma/client.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import { announceQueuedJob, createJob } from "../jobs/create-job.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import type { Dispatcher } from "../jobs/dispatcher.ts";
import { uploadBytes, uploadsCompleted } from "../metrics.ts";

/**
 * Called once the source's last byte is stored: queues the video and its transcode job in one
 * transaction (the job row is the outbox the dispatcher publishes from). Returns null when the
 * video was no longer waiting for its upload (a repeated completion changes nothing).
 */
export async function queueUploadedVideo(
  deps: { db: Db; pubSub: VideoPubSub; dispatcher: Dispatcher; maxAttempts: number; costs: CostSettings },
  videoId: string,
  source: { key: string; name: string; size: number },
): Promise<Video | null> {
  // The upload's trace goes on through its job (createJob keeps the active span's context).
  const attributes = { "video.id": videoId, "upload.bytes": source.size };
  const video = await inSpan("upload complete", { attributes }, () =>
    deps.db.$transaction(async (tx) => {
      const { count } = await tx.video.updateMany({
        where: { id: videoId, status: "WAITING_FOR_UPLOAD" },
        data: {
          status: "QUEUED",
          uploadNonce: null,
          sourceKey: source.key,
          sourceName: source.name,
          uploadedBytes: source.size,
          uploadSize: source.size,
          uploadedAt: new Date(),
        },
      });
      if (!count) return null;
      await createJob(tx, { videoId, kind: "TRANSCODE", input: {}, maxAttempts: deps.maxAttempts }, deps.costs);
      return tx.video.findUniqueOrThrow({ where: { id: videoId } });
    }),
  );
  if (video) {
    uploadsCompleted.inc();
    uploadBytes.inc(source.size);
    announceQueuedJob(deps, video);
  }
  return video;
}

export interface UploadCompletionDeps {
  db: Db;
  storage: ApiStorage;
  pubSub: VideoPubSub;
  dispatcher: Dispatcher;
  maxAttempts: number;
  maxUploadBytes: number;
  costs: CostSettings;
}

/**
 * Queues a video whose source landed in storage by itself (a GCS resumable upload), exactly as
 * the last byte of a local upload does. Idempotent: a video that is no longer waiting for its
 * upload is returned unchanged (`queued: false`). Throws NotFoundError for an unknown video,
 * ValidationError while no non-empty source is stored, FileTooLargeError (after deleting the
 * source, so the video can take another) past `maxUploadBytes`.
 */
export async function completeUpload(
  deps: UploadCompletionDeps,
  videoId: string,
): Promise<{ video: Video; queued: boolean }> {
  const video = isUuid(videoId) ? await deps.db.video.findUnique({ where: { id: videoId } }) : null;
  if (!video) throw new NotFoundError("video", videoId);
  if (video.status !== "WAITING_FOR_UPLOAD") return { video, queued: false };
  const key = sourceKey(videoId);
  const size = await deps.storage.size(key);
  if (size === null) {
    throw new ValidationError("videoId", "No file has been uploaded for this video yet, or its upload is not finished");
  }
  if (size === 0) throw new ValidationError("videoId", "The uploaded file is empty (0 bytes)");
  if (size > deps.maxUploadBytes) {
    await deps.storage.deletePrefix(sourcePrefix(videoId));
    throw new FileTooLargeError(deps.maxUploadBytes);
  }
  const queued = await queueUploadedVideo(deps, videoId, { key, name: "upload", size });
  if (queued) return { video: queued, queued: true };
  // Completed concurrently (the notification and the mutation can race): report the winner's result.
  return { video: await deps.db.video.findUniqueOrThrow({ where: { id: videoId } }), queued: false };
}
