import type { Db } from "../db/client.ts";
import type { Video } from "../generated/prisma/client.ts";
import { videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import type { Dispatcher } from "./dispatcher.ts";

export const sourceKeyFor = (videoId: string, name = "upload") => `videos/${videoId}/source/${name}`;
export const partialUploadKeyFor = (videoId: string) => `videos/${videoId}/source/upload.part`;

/**
 * Called once the source's last byte is stored: queues the video and its transcode job in one
 * transaction (the job row is the outbox the dispatcher publishes from). Returns null when the
 * video was no longer waiting for its upload (a repeated completion changes nothing).
 */
export async function queueUploadedVideo(
  deps: { db: Db; pubSub: VideoPubSub; dispatcher: Dispatcher; maxAttempts: number },
  videoId: string,
  source: { key: string; name: string; size: number },
): Promise<Video | null> {
  const video = await deps.db.$transaction(async (tx) => {
    const { count } = await tx.video.updateMany({
      where: { id: videoId, status: "WAITING_FOR_UPLOAD" },
      data: { status: "QUEUED", sourceKey: source.key, sourceName: source.name, uploadedBytes: source.size, uploadSize: source.size, uploadedAt: new Date() },
    });
    if (!count) return null;
    await tx.job.create({ data: { videoId, kind: "TRANSCODE", capability: "cpu", maxAttempts: deps.maxAttempts } });
    return tx.video.findUniqueOrThrow({ where: { id: videoId } });
  });
  if (video) {
    deps.dispatcher.kick();
    deps.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(video) });
  }
  return video;
}
