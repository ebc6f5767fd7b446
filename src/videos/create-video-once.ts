import { tenantOf, type Context } from "../context.ts";
import type { Prisma, Video } from "../generated/prisma/client.ts";
import { type CreationOptions, createVideo } from "./creation-options.ts";

/** What makes a create a repeat: the client's idempotency key, or the CMS's id for the video. */
export interface OnceKeys {
  idempotencyKey: string | null;
  externalId: string | null;
}

/** The tenant's video an earlier create made with the same idempotency key, else the one with the same externalId. */
async function earlierVideo(ctx: Context, tenantId: string, keys: OnceKeys): Promise<Video | null> {
  const { idempotencyKey, externalId } = keys;
  const byKey =
    idempotencyKey === null
      ? null
      : await ctx.db.video.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } });
  if (byKey || externalId === null) return byKey;
  return ctx.db.video.findUnique({ where: { tenantId_externalId: { tenantId, externalId } } });
}

/**
 * Runs `create` unless the caller's tenant has a video that `keys` name already (the same
 * idempotency key, else the same externalId): then that video is returned as the first call made
 * it, and nothing is created. Two calls that race are decided by the unique indexes.
 */
export async function createOnce(
  ctx: Context,
  keys: OnceKeys,
  create: () => Promise<Video>,
): Promise<{ video: Video; created: boolean }> {
  const tenantId = tenantOf(ctx);
  if (keys.idempotencyKey === null && keys.externalId === null) return { video: await create(), created: true };
  const earlier = await earlierVideo(ctx, tenantId, keys);
  if (earlier) return { video: earlier, created: false };
  try {
    return { video: await create(), created: true };
  } catch (err) {
    const again = (err as { code?: string }).code === "P2002" ? await earlierVideo(ctx, tenantId, keys) : null;
    if (again) return { video: again, created: false };
    throw err;
  }
}

/**
 * Creates a video for the caller's tenant, or with `idempotencyKey` (or an `externalId` among the
 * options) returns the one an earlier call with the same key created, as that call's options made it.
 */
export function createVideoOnce(
  ctx: Context,
  idempotencyKey: string | null,
  data: Omit<Prisma.VideoUncheckedCreateInput, "tenantId" | "idempotencyKey" | keyof CreationOptions>,
  options: CreationOptions,
): Promise<{ video: Video; created: boolean }> {
  const tenantId = tenantOf(ctx);
  return createOnce(ctx, { idempotencyKey, externalId: options.externalId }, () =>
    createVideo(ctx.db, { ...data, tenantId, ...(idempotencyKey === null ? {} : { idempotencyKey }) }, options),
  );
}
