import type { Db } from "../db/client.ts";

/**
 * At most this many images made on request are cached per video, whatever their size: every stored
 * object is one more to list and delete with the video.
 */
export const MAX_CACHED_IMAGES_PER_VIDEO = 500;

/** How many bytes of images made on request may be cached per video and per tenant. */
export interface ImageCacheBudget {
  videoBytes: number;
  tenantBytes: number;
}

/**
 * Takes `bytes` (an image's real size) from the video's and its tenant's cache budgets and one
 * place of MAX_CACHED_IMAGES_PER_VIDEO, all or nothing, in one statement: both rows are locked and
 * checked on their latest values before either counter moves, so concurrent requests (on any API
 * instance) cannot overshoot. False when any budget has no room: the image is then not stored.
 */
export async function reserveImageBytes(
  db: Db,
  videoId: string,
  bytes: number,
  budget: ImageCacheBudget,
): Promise<boolean> {
  const size = BigInt(bytes);
  const updated = await db.$executeRaw`
    WITH room AS (
      SELECT v.id AS video_id, t.id AS tenant_id
      FROM "Video" v JOIN "Tenant" t ON t.id = v."tenantId"
      WHERE v.id = ${videoId}::uuid
        AND v."cachedImages" < ${MAX_CACHED_IMAGES_PER_VIDEO}
        AND v."cachedImageBytes" + ${size} <= ${BigInt(budget.videoBytes)}
        AND t."cachedImageBytes" + ${size} <= ${BigInt(budget.tenantBytes)}
      FOR UPDATE OF v, t
    ), tenant AS (
      UPDATE "Tenant" SET "cachedImageBytes" = "Tenant"."cachedImageBytes" + ${size}
      FROM room WHERE "Tenant".id = room.tenant_id
    )
    UPDATE "Video" SET "cachedImages" = "Video"."cachedImages" + 1,
      "cachedImageBytes" = "Video"."cachedImageBytes" + ${size}
    FROM room WHERE "Video".id = room.video_id`;
  return updated === 1;
}

/** Gives back what reserveImageBytes took, when the image was not stored after all. */
export async function releaseImageBytes(db: Db, videoId: string, bytes: number): Promise<void> {
  const size = BigInt(bytes);
  await db.$executeRaw`
    WITH room AS (
      SELECT v.id AS video_id, t.id AS tenant_id
      FROM "Video" v JOIN "Tenant" t ON t.id = v."tenantId"
      WHERE v.id = ${videoId}::uuid
      FOR UPDATE OF v, t
    ), tenant AS (
      UPDATE "Tenant" SET "cachedImageBytes" = GREATEST(0, "Tenant"."cachedImageBytes" - ${size})
      FROM room WHERE "Tenant".id = room.tenant_id
    )
    UPDATE "Video" SET "cachedImages" = GREATEST(0, "Video"."cachedImages" - 1),
      "cachedImageBytes" = GREATEST(0, "Video"."cachedImageBytes" - ${size})
    FROM room WHERE "Video".id = room.video_id`;
}

/** Deletes a video's row and gives its cached images' bytes back to its tenant's budget, in one statement. */
export async function deleteVideoRow(db: Db, videoId: string): Promise<void> {
  await db.$executeRaw`
    WITH gone AS (
      DELETE FROM "Video" WHERE id = ${videoId}::uuid RETURNING "tenantId", "cachedImageBytes"
    )
    UPDATE "Tenant" SET "cachedImageBytes" = GREATEST(0, "Tenant"."cachedImageBytes" - gone."cachedImageBytes")
    FROM gone WHERE "Tenant".id = gone."tenantId"`;
}
