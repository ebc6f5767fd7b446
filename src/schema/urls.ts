import type { Context } from "../context.ts";

/** What a media URL needs to know about its video. */
export interface MediaOwner {
  id: string;
  playbackPolicy: "PUBLIC" | "SIGNED";
}

/**
 * URL of a published object. Local storage: `/media/{key}`, absolute when PUBLIC_URL is set,
 * else relative to the API's origin. GCS: the same for playlists (the API signs their segment
 * URIs), a V4 signed URL for anything else. A SIGNED video's URLs served by the API carry a
 * short-lived playback token bound to the video. With `download`, a URL whose response makes a
 * browser save the file under that (safe) name.
 */
export async function mediaUrl(ctx: Context, key: string, video: MediaOwner, download?: string): Promise<string> {
  const url = download === undefined ? await ctx.storage.urlFor(key) : await ctx.storage.downloadUrlFor(key, download);
  const servedHere = url.startsWith("/media/") || (ctx.publicUrl !== "" && url.startsWith(`${ctx.publicUrl}/media/`));
  if (video.playbackPolicy !== "SIGNED" || !servedHere) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${ctx.playbackTokens.issue(video.id)}`;
}
