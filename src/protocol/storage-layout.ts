/**
 * Where everything lives in storage. The API and the worker build every key here, so the layout
 * is written down once: a video's objects sit under `videos/{videoId}/`, a tenant's under
 * `tenants/{tenantId}/`.
 *
 * ```
 * videos/{videoId}/source/upload          an uploaded source (upload.part while it arrives)
 * videos/{videoId}/source/{name}          a rendered or imported source (scene.mp4, composition.mp4, import),
 *                                         or a live recording remuxed into one file (recording.mp4)
 * videos/{videoId}/hls/master.m3u8        the master playlist
 * videos/{videoId}/hls/encode.json        what the finished encode published (resume and redelivery)
 * videos/{videoId}/hls/manifest.mpd       the MPEG-DASH MPD of an fMP4 video (made by the API per request, never stored)
 * videos/{videoId}/hls/{rung}/index.m3u8  a rung's playlist, its segments beside it
 * videos/{videoId}/hls/{rung}/init.mp4    a fragmented-MP4 rung's init segment (`#EXT-X-MAP`)
 * videos/{videoId}/thumbnails/poster.jpg  the poster
 * videos/{videoId}/captions/{id}/track.vtt a caption track (its playlist, index.m3u8 beside it, is made by the API)
 * videos/{videoId}/thumbnails/at/…        thumbnails and animated previews made on request (a cache)
 * videos/{videoId}/storyboard/…           the storyboard: sprite sheets and the WebVTT file indexing them
 * videos/{videoId}/mp4/{name}.mp4|.m4a    a static rendition (highest.mp4, low.mp4, audio.m4a)
 * videos/{videoId}/live/disk-reserve      room a live broadcast keeps to end its playlists on a full disk
 *                                         (emptied when it ends; never served)
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

/** A live broadcast's recording as one file (its top rung and audio, remuxed), the source its clips are cut from. */
export const liveRecordingKey = (videoId: string): string => sourceKey(videoId, "recording.mp4");

/**
 * Bytes a live broadcast keeps from its start and lets go when it ends, so that its playlists can
 * still be ended when its storage fills for good (docs/live.md "A full disk"). Not published.
 */
export const liveDiskReserveKey = (videoId: string): string => `${videoPrefix(videoId)}/live/disk-reserve`;

/** Where an upload's bytes gather until the upload is complete. */
export const partialUploadKey = (videoId: string): string => `${sourceKey(videoId)}.part`;

/** The name of a stored source: the last part of its key. */
export const sourceName = (key: string): string => key.slice(key.lastIndexOf("/") + 1);

/** A rung's playlist, relative to the master playlist (the URI the master lists). */
export const RUNG_PLAYLIST = "index.m3u8";

/** A fragmented-MP4 rung's init segment, beside its playlist (the URI of its `#EXT-X-MAP`). */
export const RUNG_INIT_SEGMENT = "init.mp4";

/** What the finished encode published, beside the master playlist. */
export const ENCODE_MANIFEST = "encode.json";

/** An fMP4 video's MPEG-DASH MPD, beside the master playlist, so it names the rungs by the master's URIs. */
const DASH_MANIFEST = "manifest.mpd";

/** The HLS keys under a video's prefix (the `outputPrefix` of a transcode job). */
export function hlsLayout(outputPrefix: string) {
  const prefix = `${outputPrefix}/hls`;
  return {
    prefix,
    masterKey: `${prefix}/master.m3u8`,
    encodeManifestKey: `${prefix}/${ENCODE_MANIFEST}`,
    dashManifestKey: `${prefix}/${DASH_MANIFEST}`,
    rungPrefix: (rung: string) => `${prefix}/${rung}`,
    playlistKey: (rung: string) => `${prefix}/${rung}/${RUNG_PLAYLIST}`,
  };
}

/** Where one video's HLS output lives: its playlists, segments and encode manifest. */
export type HlsLayout = ReturnType<typeof hlsLayout>;

/**
 * Where a transcode writes everything under its prefix: the HLS ladder, the storyboard and the poster.
 * Built once per job by its handler and handed to the parts that write each.
 */
export function outputLayout(outputPrefix: string) {
  return {
    hls: hlsLayout(outputPrefix),
    storyboard: storyboardLayout(outputPrefix),
    posterKey: posterKey(outputPrefix),
  };
}

export type OutputLayout = ReturnType<typeof outputLayout>;

/** The poster of a video, under its prefix. */
export const posterKey = (outputPrefix: string): string => `${outputPrefix}/thumbnails/poster.jpg`;

/** The prefix of a caption track's objects: its WebVTT file (its playlist is made by the API, never stored). */
export const captionPrefix = (videoId: string, captionId: string): string =>
  `${videoPrefix(videoId)}/captions/${captionId}`;

/** A caption track's WebVTT file, as its subtitle playlist names it. */
export const CAPTION_FILE = "track.vtt";

/** A caption track's WebVTT file. */
export const captionKey = (videoId: string, captionId: string): string =>
  `${captionPrefix(videoId, captionId)}/${CAPTION_FILE}`;

/** A caption track's subtitle playlist. */
export const captionPlaylistKey = (videoId: string, captionId: string): string =>
  `${captionPrefix(videoId, captionId)}/${RUNG_PLAYLIST}`;

/** The video and caption a subtitle playlist key names, or null for any other key. */
export function captionPlaylistParts(key: string): { videoId: string; captionId: string } | null {
  const m = /^videos\/([^/]+)\/captions\/([^/]+)\/index\.m3u8$/.exec(key);
  return m ? { videoId: m[1]!, captionId: m[2]! } : null;
}

/** The video and caption a caption track's WebVTT key names, or null for any other key. */
export function captionFileParts(key: string): { videoId: string; captionId: string } | null {
  const m = /^videos\/([^/]+)\/captions\/([^/]+)\/track\.vtt$/.exec(key);
  return m ? { videoId: m[1]!, captionId: m[2]! } : null;
}

/** Where an alternate audio track is published: its one rung under `{prefix}/hls/`, no master. */
export const audioTrackPrefix = (videoId: string, trackId: string): string =>
  `${videoPrefix(videoId)}/audio/${trackId}`;

/** The rung name of an audio track's segments and playlist. */
export const AUDIO_TRACK_RUNG = "track";

/** An audio track's media playlist, as the master's AUDIO rendition names it. */
export const audioTrackPlaylistKey = (videoId: string, trackId: string): string =>
  hlsLayout(audioTrackPrefix(videoId, trackId)).playlistKey(AUDIO_TRACK_RUNG);

/** An audio track's uploaded file: among the video's sources, never served. */
export const audioTrackSourceKey = (videoId: string, trackId: string): string => sourceKey(videoId, `audio-${trackId}`);

/** Where a video's chapters are stored as WebVTT: a new key per version, so a replaced file is never served stale. */
export const chaptersKey = (videoId: string, version: string): string =>
  `${videoPrefix(videoId)}/chapters/${version}.vtt`;

/** The storyboard of a video, under its prefix: its WebVTT file and sprite sheets. */
export function storyboardLayout(outputPrefix: string) {
  const prefix = `${outputPrefix}/storyboard`;
  return {
    prefix,
    vttKey: `${prefix}/storyboard.vtt`,
    /** The sheet's name, as the WebVTT cues name it (relative to the VTT file). */
    sheetName: (index: number) => `sheet-${index}.jpg`,
    sheetKey: (index: number) => `${prefix}/sheet-${index}.jpg`,
  };
}

/** Where one video's storyboard lives: its sheets and the WebVTT naming them. */
export type StoryboardLayout = ReturnType<typeof storyboardLayout>;

/**
 * Where a thumbnail made on request is cached: one object per video, time (in milliseconds,
 * already rounded by the caller) and width.
 */
export const thumbnailAtKey = (videoId: string, timeMs: number, width: number): string =>
  `${videoPrefix(videoId)}/thumbnails/at/${timeMs}-w${width}.jpg`;

/** Where an animated preview made on request is cached (`webp` or `gif`). */
export const animatedPreviewKey = (
  videoId: string,
  range: { startMs: number; endMs: number },
  width: number,
  format: "webp" | "gif",
): string => `${videoPrefix(videoId)}/thumbnails/at/${range.startMs}-${range.endMs}-w${width}.${format}`;

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

/**
 * Whether a key is published media (HLS, captions, audio tracks, chapters, images, the storyboard, static renditions), which
 * players may read; sources are not.
 */
export function isPublishedKey(key: string): boolean {
  const folder = videoKeyParts(key)?.folder;
  return (
    folder === "hls" ||
    folder === "thumbnails" ||
    folder === "captions" ||
    folder === "audio" ||
    folder === "chapters" ||
    folder === "storyboard" ||
    folder === "mp4"
  );
}

/** Whether a key is a master playlist: opening it starts a playback session. */
export const isMasterPlaylistKey = (key: string): boolean => key.endsWith("/hls/master.m3u8");

/** Whether a key is a video's DASH MPD (`hlsLayout(…).dashManifestKey`). */
export const isDashManifestKey = (key: string): boolean => key.endsWith(`/hls/${DASH_MANIFEST}`);

/** Whether a key opens a playback, as a master playlist or a DASH MPD does: only an opening token opens it. */
export const opensPlayback = (key: string): boolean => isMasterPlaylistKey(key) || isDashManifestKey(key);

/** Where a tenant's uploaded asset is stored. */
export const tenantAssetKey = (tenantId: string, assetId: string, name: string): string =>
  `tenants/${tenantId}/assets/${assetId}/${name}`;

/** The prefix of a tenant's cached Manim partial movies. */
export const manimCachePrefix = (tenantId: string): string => `tenants/${tenantId}/manim-cache`;

/** The number of the rung segment a playlist names `seg_00012.ts` or `seg_00012.m4s` (the segment muxer's names); null for any other URI. */
export function segmentNumberOf(uri: string): number | null {
  const m = /^seg_(\d{5,9})\.(?:ts|m4s)$/.exec(uri);
  return m ? Number(m[1]) : null;
}
