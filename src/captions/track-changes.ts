import type { Db, DbTransaction as Tx } from "../db/client.ts";
import { Prisma } from "../generated/prisma/client.ts";
import { lockVideo } from "../jobs/video-lock.ts";

/** Whether `err` is Prisma's known request error `code` (P2002: a unique index refused the row). */
export const isPrismaError = (err: unknown, code: string): boolean =>
  err instanceof Prisma.PrismaClientKnownRequestError && err.code === code;

/**
 * Changes one of a video's tracks (a caption, an audio track) under the video's row lock, which
 * orders it with the track additions' default flag, so a video keeps at most one default: the other
 * tracks lose theirs first when this one becomes the default, then `update` writes it. A track or
 * video gone meanwhile is `notFound()`; a name another track of the video has (the unique index,
 * under concurrent requests too) is `nameTaken()`.
 */
export async function changeTrack(
  db: Db,
  videoId: string,
  change: {
    makesDefault: boolean;
    clearOtherDefaults: (tx: Tx) => Promise<unknown>;
    update: (tx: Tx) => Promise<{ count: number }>;
    notFound: () => Error;
    nameTaken: () => Error;
  },
): Promise<void> {
  try {
    await db.$transaction(async (tx) => {
      if ((await lockVideo(tx, videoId)) === null) throw change.notFound();
      if (change.makesDefault) await change.clearOtherDefaults(tx);
      if ((await change.update(tx)).count === 0) throw change.notFound();
    });
  } catch (err) {
    if (isPrismaError(err, "P2002")) throw change.nameTaken();
    throw err;
  }
}
