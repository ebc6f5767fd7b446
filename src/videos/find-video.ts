import { tenantOf, type Context } from "../context.ts";
import type { Db } from "../db/client.ts";
import { NotFoundError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";

/** The caller's tenant's video `id`; another tenant's is "not found", exactly like a missing one. */
export function findVideoOrThrow(ctx: Context, id: string): Promise<Video> {
  return findTenantVideoOrThrow(ctx.db, tenantOf(ctx), id);
}

/** Tenant `tenantId`'s video `id` (for a service given its tenant); another tenant's is "not found". */
export async function findTenantVideoOrThrow(db: Db, tenantId: string, id: string): Promise<Video> {
  const video = isUuid(id) ? await db.video.findFirst({ where: { id, tenantId } }) : null;
  if (!video) throw new NotFoundError("video", id);
  return video;
}
