import { tenantOf, type Context } from "../context.ts";
import type { Prisma, Video } from "../generated/prisma/client.ts";
import { type CreationOptions, createVideo } from "./creation-options.ts";

/**
 * Creates a video for the caller's tenant, or with `idempotencyKey` returns the one an earlier
 * call with the same key created (also when two calls race: the unique index decides), as that
 * call's options made it.
 */
export async function createVideoOnce(
  ctx: Context,
  idempotencyKey: string | null,
  data: Omit<Prisma.VideoUncheckedCreateInput, "tenantId" | "idempotencyKey" | keyof CreationOptions>,
  options: CreationOptions,
): Promise<{ video: Video; created: boolean }> {
  const tenantId = tenantOf(ctx);
  if (idempotencyKey === null) {
    return { video: await createVideo(ctx.db, { ...data, tenantId }, options), created: true };
  }
  const existing = () => ctx.db.video.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } });
  const earlier = await existing();
  if (earlier) return { video: earlier, created: false };
  try {
    return { video: await createVideo(ctx.db, { ...data, tenantId, idempotencyKey }, options), created: true };
  } catch (err) {
    const again = (err as { code?: string }).code === "P2002" ? await existing() : null;
    if (again) return { video: again, created: false };
    throw err;
  }
}
