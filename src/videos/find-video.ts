import { tenantOf, type Context } from "../context.ts";
import { NotFoundError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";

/** The caller's tenant's video `id`; another tenant's is "not found", exactly like a missing one. */
export async function findVideoOrThrow(ctx: Context, id: string): Promise<Video> {
  const video = isUuid(id) ? await ctx.db.video.findFirst({ where: { id, tenantId: tenantOf(ctx) } }) : null;
  if (!video) throw new NotFoundError("video", id);
  return video;
}
