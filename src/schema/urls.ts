import type { Context } from "../context.ts";

/**
 * URL of a published object. Local storage: `/media/{key}`, absolute when PUBLIC_URL is set,
 * else relative to the API's origin. GCS: the same for playlists (the API signs their segment
 * URIs), a V4 signed URL for anything else.
 */
export function mediaUrl(ctx: Context, key: string): Promise<string> {
  return ctx.storage.urlFor(key);
}
