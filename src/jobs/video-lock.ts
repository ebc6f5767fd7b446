import type { Db } from "../db/client.ts";
import type { VideoStatus } from "../generated/prisma/client.ts";

/**
 * Locks a video's row until the transaction ends and returns its status then, or null when there is
 * no such video. Every change that finishes or cancels a video or its jobs takes this lock first, so
 * two such changes run one after the other, the second seeing the first's result, and they take
 * their row locks in one order (video, then jobs and variants) and never deadlock. `NO KEY UPDATE`
 * leaves inserts of rows that reference the video (variants, jobs) free to proceed.
 */
export async function lockVideo(tx: Pick<Db, "$queryRaw">, videoId: string): Promise<VideoStatus | null> {
  const rows = await tx.$queryRaw<
    { status: VideoStatus }[]
  >`SELECT status FROM "Video" WHERE id = ${videoId}::uuid FOR NO KEY UPDATE`;
  return rows[0]?.status ?? null;
}
