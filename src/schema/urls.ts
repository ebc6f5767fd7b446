import type { Context } from "../context.ts";
import { MEDIA_PATH_PREFIX } from "../http/media.ts";

/** URL of a published object: absolute when PUBLIC_URL is set, else relative to the API's origin. */
export function mediaUrl(ctx: Context, key: string): string {
  return `${ctx.publicUrl}${MEDIA_PATH_PREFIX}${key}`;
}
