import type { Db } from "../db/client.ts";
import { videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import { log } from "../log.ts";
import { videoPrefix } from "../protocol/storage-layout.ts";
import type { ApiStorage } from "../storage/types.ts";

/** Shown as the canceled video's `error`. */
export const UPLOAD_EXPIRED_REASON = "The upload was not finished before its upload URL expired";
const SWEEP_BATCH = 100;

/**
 * Cancels videos still `WAITING_FOR_UPLOAD` `graceSeconds` after their upload URL expired (compare-and-set, so
 * instances sweeping at once cancel each once), then deletes their prefix: a local partial file, S3 pieces and
 * the multipart upload (a GCS resumable session cannot be deleted; GCS drops it after a week). Runs every
 * `graceSeconds / 2`, between once a second and once a minute.
 */
export function createUploadExpiry(deps: {
  db: Db;
  storage: ApiStorage;
  pubSub: VideoPubSub;
  graceSeconds: number;
  uploadUrlTtlSeconds: number;
}) {
  const { db } = deps;
  const intervalMs = Math.min(60_000, Math.max(1000, (deps.graceSeconds * 1000) / 2));
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  async function sweep(): Promise<number> {
    const now = Date.now();
    const expiredBefore = new Date(now - deps.graceSeconds * 1000);
    const expired = {
      status: "WAITING_FOR_UPLOAD" as const,
      OR: [
        { uploadExpiresAt: { lt: expiredBefore } },
        {
          uploadExpiresAt: null,
          createdAt: { lt: new Date(expiredBefore.getTime() - deps.uploadUrlTtlSeconds * 1000) },
        },
      ],
    };
    const candidates = await db.video.findMany({ where: expired, select: { id: true }, take: SWEEP_BATCH });
    let canceled = 0;
    for (const { id } of candidates) {
      const { count } = await db.video.updateMany({
        where: { id, ...expired },
        data: { status: "CANCELED", error: UPLOAD_EXPIRED_REASON, uploadNonce: null, finishedAt: new Date(now) },
      });
      if (!count) continue;
      canceled++;
      const video = await db.video.findUniqueOrThrow({ where: { id } });
      deps.pubSub.publish("videoEvents", id, { kind: "status", video: videoSnapshot(video) });
      // A failed deletion leaves pieces, not a waiting video: logged for an operator.
      await deps.storage
        .deletePrefix(videoPrefix(id))
        .catch((err) => log.warn("expired upload: its pieces could not be deleted", { videoId: id, err }));
      log.info("upload expired: video canceled, its pieces deleted", {
        videoId: id,
        uploadedBytes: video.uploadedBytes,
      });
    }
    return canceled;
  }

  function run(): void {
    running ??= sweep()
      .catch((err) => log.warn("upload expiry sweep failed; tried again later", { err }))
      .then(() => undefined)
      .finally(() => (running = null));
  }

  return {
    start(): void {
      timer = setInterval(run, intervalMs);
      timer.unref();
      run();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
