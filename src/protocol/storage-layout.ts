/**
 * Where everything lives in storage. The API and the worker build every key here, so the layout
 * is written down once: a video's objects sit under `videos/{videoId}/`, a tenant's under
 * `tenants/{tenantId}/`.
 *
 * ```
 * videos/{videoId}/source/upload          an uploaded source (upload.part while it arrives)
 * videos/{videoId}/source/{name}          a rendered or imported source (scene.mp4, composition.mp4, import)
 * videos/{videoId}/hls/master.m3u8        the master playlist
 * videos/{videoId}/hls/encode.json        what the finished encode published (resume and redelivery)
 * videos/{videoId}/hls/{rung}/index.m3u8  a rung's playlist, its segments beside it
 * videos/{videoId}/thumbnails/poster.jpg  the poster
 * videos/{videoId}/mp4/{name}.mp4|.m4a    a static rendition (highest.mp4, low.mp4, audio.m4a)
 * tenants/{tenantId}/assets/{id}/{name}   a tenant's uploaded composition asset
 * tenants/{tenantId}/manim-cache/…        a tenant's cached Manim partial movies
 * ```
 */

/** The prefix of all of a video's objects; job messages carry it as `outputPrefix`. */
export const videoPrefix = (videoId: string): string => `videos/${videoId}`;

/** Where a video's source is stored: `upload` for an uploaded file, the render's name otherwise. */
export const sourceKey = (videoId: string, name = "upload"): string => `${videoPrefix(videoId)}/source/${name}`;

/** The prefix of a video's source files (the upload, its partial file, rendered sources). */
export const sourcePrefix = (videoId: string): string => `${videoPrefix(videoId)}/source`;

/** Where an upload's bytes gather until the upload is complete. */
export const partialUploadKey = (videoId: string): string => `${sourceKey(videoId)}.part`;

/** The name of a stored source: the last part of its key. */
export const sourceName = (key: string): string => key.slice(key.lastIndexOf("/") + 1);

/** A rung's playlist, relative to the master playlist (the URI the master lists). */
export const RUNG_PLAYLIST = "index.m3u8";

/** What the finished encode published, beside the master playlist. */
export const ENCODE_MANIFEST = "encode.json";

/** The HLS keys under a video's prefix (the `outputPrefix` of a transcode job). */
export function hlsLayout(outputPrefix: string) {
  const prefix = `${outputPrefix}/hls`;
  return {
    prefix,
    masterKey: `${prefix}/master.m3u8`,
    encodeManifestKey: `${prefix}/${ENCODE_MANIFEST}`,
    rungPrefix: (rung: string) => `${prefix}/${rung}`,
    playlistKey: (rung: string) => `${prefix}/${rung}/${RUNG_PLAYLIST}`,
  };
}

/** The poster of a video, under its prefix. */
export const posterKey = (outputPrefix: string): string => `${outputPrefix}/thumbnails/poster.jpg`;

/** Where a static rendition is stored under a video's prefix: `mp4/highest.mp4`, `mp4/audio.m4a`. */
export const staticRenditionKey = (outputPrefix: string, name: "HIGHEST" | "LOW" | "AUDIO"): string =>
  `${outputPrefix}/mp4/${name.toLowerCase()}.${name === "AUDIO" ? "m4a" : "mp4"}`;

/**
 * The video a key belongs to and the folder under its prefix (`source`, `hls`, `thumbnails`), or
 * null for a key outside `videos/`.
 */
export function videoKeyParts(key: string): { videoId: string; folder: string } | null {
  const [top, videoId, folder] = key.split("/");
  return top === "videos" && videoId && folder ? { videoId, folder } : null;
}

/** Whether a key is published media (HLS, the poster, static renditions), which players may read; sources are not. */
export function isPublishedKey(key: string): boolean {
  const folder = videoKeyParts(key)?.folder;
  return folder === "hls" || folder === "thumbnails" || folder === "mp4";
}

/** Whether a key is a master playlist: opening it starts a playback session. */
export const isMasterPlaylistKey = (key: string): boolean => key.endsWith("/hls/master.m3u8");

/** Where a tenant's uploaded asset is stored. */
export const tenantAssetKey = (tenantId: string, assetId: string, name: string): string =>
  `tenants/${tenantId}/assets/${assetId}/${name}`;

/** The prefix of a tenant's cached Manim partial movies. */
export const manimCachePrefix = (tenantId: string): string => `tenants/${tenantId}/manim-cache`;
