import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { type AudioTrackCatalog, withAudioTracks } from "../audio-tracks/audio-renditions.ts";
import { type CaptionCatalog, withSubtitles } from "../captions/subtitle-playlists.ts";
import { dashManifest } from "../dash/dash-manifest.ts";
import { type ServedProtection, withSegmentKeys } from "../content-protection/playlist-keys.ts";
import {
  captionFileParts,
  captionPlaylistParts,
  hlsLayout,
  isDashManifestKey,
  isMasterPlaylistKey,
  isPublishedKey,
  opensPlayback,
  videoKeyParts,
  videoPrefix,
} from "../protocol/storage-layout.ts";
import { MEDIA_PATH_PREFIX } from "../storage/api-urls.ts";
import {
  appendToken,
  appendTokenToPlaylist,
  isFinishedPlaylist,
  isMasterPlaylist,
  resolvePlaylistUri,
  rewritePlaylistUris,
  targetDurationOf,
} from "../storage/playlists.ts";
import { type ApiStorage, assertValidKey, type ByteRange, type PublishedObjectAccess } from "../storage/types.ts";
import { growingPlaylistCacheControl } from "../shared/hls-playlists.ts";
import { isSafeDownloadName } from "../videos/download-filename.ts";
import { admitPlayback, type PlaybackGuard } from "./playback-guard.ts";
import {
  audioRenditionUris,
  clipMasterPlaylist,
  clipMediaPlaylist,
  clipRangeOf,
  finishedPlaylistSeconds,
  rangeBeyondEnd,
  referencePlaylistUri,
} from "./instant-clip.ts";
import { deliveryDirectives, type LivePlaylists } from "./live-playlists.ts";
import { rewriteStoryboardUris } from "./storyboard-vtt.ts";

/**
 * What every media request is checked for first: GET/HEAD, a published key, the video's playback policy.
 * Null once the request was answered (405, 404 or 403).
 */
async function admitRequest(
  guard: PlaybackGuard,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<{ key: string; token: string; live: boolean; protection: ServedProtection | null } | null> {
  if (methodNotAllowed(req, res)) return null;
  const key = publishedKey(url);
  if (key === null) {
    notFound(res);
    return null;
  }
  const admission = await admitPlayback(guard, key, url);
  if ("token" in admission) return { key, ...admission };
  if (admission.refused === "not found") notFound(res);
  else forbidden(res, admission.problem);
  return null;
}

/** Signed media must not sit in shared caches longer than its token lives. */
function cacheControlFor(ext: string, token: string): string {
  return token ? "private, max-age=60" : cacheControl(ext);
}

const CONTENT_TYPES: Record<string, string> = {
  ".m3u8": "application/vnd.apple.mpegurl",
  ".mpd": "application/dash+xml",
  ".ts": "video/mp2t",
  ".m4s": "video/iso.segment",
  ".mp4": "video/mp4",
  ".m4a": "audio/mp4",
  ".jpg": "image/jpeg",
  ".vtt": "text/vtt; charset=utf-8",
  ".webp": "image/webp",
  ".gif": "image/gif",
};

/** Master playlists list the video's caption tracks, which can change at any time: cached briefly. */
const MASTER_MAX_AGE_SECONDS = 10;

/** A storyboard's WebVTT file, whose cues name sheets beside it. */
const isStoryboardVtt = (key: string): boolean =>
  path.extname(key) === ".vtt" && videoKeyParts(key)?.folder === "storyboard";

/**
 * The playlists the API writes or amends rather than serving them as stored: a master, to which
 * it adds the video's caption and audio tracks, and a caption's subtitle playlist, which is never stored.
 */
const isComposedPlaylist = (key: string): boolean => isMasterPlaylistKey(key) || captionPlaylistParts(key) !== null;

/** What the media handlers read from the database: a video's caption tracks and READY audio tracks. */
export interface MediaCatalogs {
  captions: CaptionCatalog;
  audioTracks: AudioTrackCatalog;
}

/** The text of the playlist `key`, as players get it before URIs are signed or tokens added; null: none. */
async function playlistText(
  key: string,
  catalogs: MediaCatalogs,
  readStored: (key: string) => Promise<string | null>,
): Promise<string | null> {
  const caption = captionPlaylistParts(key);
  if (caption) return catalogs.captions.subtitlePlaylistOf(caption.videoId, caption.captionId);
  const text = await readStored(key);
  if (text === null || !isMasterPlaylistKey(key)) return text;
  const videoId = videoKeyParts(key)!.videoId;
  const [subtitles, audio] = await Promise.all([
    catalogs.captions.tracksOf(videoId),
    catalogs.audioTracks.readyTracksOf(videoId),
  ]);
  return withSubtitles(withAudioTracks(text, audio), subtitles);
}

/** A caption track's WebVTT file, with the header the video's segments need (CaptionCatalog.captionFileOf). */
async function serveCaptionFile(
  req: IncomingMessage,
  res: ServerResponse,
  captions: CaptionCatalog,
  caption: { videoId: string; captionId: string },
  token: string,
  readStored: (key: string) => Promise<string | null>,
): Promise<void> {
  const text = await captions.captionFileOf(caption.videoId, caption.captionId, readStored);
  if (text === null) return notFound(res);
  const body = Buffer.from(text);
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[".vtt"]!,
    "cache-control": cacheControlFor(".vtt", token),
    "content-length": body.byteLength,
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Segments never change once written. Playlists: `servePlaylist`. */
function cacheControl(ext: string): string {
  if (ext === ".ts" || ext === ".m4s") return "public, max-age=31536000, immutable";
  return "public, max-age=300";
}

/** The published key a `/media/` request names, or null for anything else (sources included). */
function publishedKey(url: URL): string | null {
  let key: string;
  try {
    key = decodeURIComponent(url.pathname.slice(MEDIA_PATH_PREFIX.length));
    assertValidKey(key);
  } catch {
    return null;
  }
  return isPublishedKey(key) && path.extname(key) in CONTENT_TYPES ? key : null;
}

/**
 * The stored playlist `text` at `key` as the request's instant clip range asks for it (unchanged
 * without one), or why the range is refused: a master keeps its variants and carries the range on, a
 * rung playlist lists the segments in the range. `readText` reads the master's first variant to
 * check the range against the video's end, and for an audio rendition the video's playlist, whose
 * segments decide where the audio is cut.
 */
async function clippedPlaylist(
  readText: (key: string) => Promise<string | null>,
  key: string,
  text: string,
  url: URL,
): Promise<{ text: string } | { problem: string }> {
  const range = clipRangeOf(url);
  if (range === null || "problem" in range) return range ?? { text };
  if (!isMasterPlaylist(text)) {
    const video = await videoPlaylistOfAudio(readText, key);
    return clipMediaPlaylist(text, range, video ?? undefined);
  }
  const reference = referencePlaylistUri(text);
  const referenceKey = reference === null ? null : resolvePlaylistUri(key, reference);
  const referenceText = referenceKey === null ? null : await readText(referenceKey);
  const seconds = referenceText === null ? null : finishedPlaylistSeconds(referenceText);
  const beyond = seconds === null ? null : rangeBeyondEnd(range, seconds);
  return beyond ? { problem: beyond } : { text: clipMasterPlaylist(text, range) };
}

/**
 * The playlist of the video variant of the master beside which the rung playlist `key` is an
 * audio rendition; null for any other playlist (a video rung, an audio-only video's audio, a
 * caption track), which is cut by its own segments.
 */
async function videoPlaylistOfAudio(
  readText: (key: string) => Promise<string | null>,
  key: string,
): Promise<string | null> {
  const parts = videoKeyParts(key);
  if (parts?.folder !== "hls") return null;
  const masterKey = hlsLayout(videoPrefix(parts.videoId)).masterKey;
  const master = await readText(masterKey);
  if (master === null) return null;
  if (!audioRenditionUris(master).some((uri) => resolvePlaylistUri(masterKey, uri) === key)) return null;
  const variant = referencePlaylistUri(master);
  const variantKey = variant === null ? null : resolvePlaylistUri(masterKey, variant);
  return variantKey === null || variantKey === key ? null : readText(variantKey);
}

function badRequest(res: ServerResponse, problem: string): void {
  res.writeHead(400, { "content-type": "text/plain", "cache-control": "no-store", "access-control-allow-origin": "*" });
  res.end(`Bad request: ${problem}`);
}

function notFound(res: ServerResponse, why = "Not found"): void {
  res.writeHead(404, { "content-type": "text/plain" });
  res.end(why);
}

function forbidden(res: ServerResponse, problem: string): void {
  res.writeHead(403, { "content-type": "text/plain", "cache-control": "no-store", "access-control-allow-origin": "*" });
  res.end(`Forbidden: ${problem}`);
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === "GET" || req.method === "HEAD") return false;
  res.writeHead(405, { allow: "GET, HEAD" });
  res.end();
  return true;
}

/** The storage calls `/media/` makes. */
type MediaStorage = Pick<ApiStorage, "readText" | "size" | "publishedObjects">;

/**
 * A text naming a bucket's objects by signed URL may be cached for a quarter of their lifetime (at
 * most an hour): they are handed out with three quarters of it left, so a player never gets one
 * about to expire.
 */
const signedTextMaxAge = (objects: { signedUrlTtlSeconds: number }): number =>
  Math.min(3600, Math.floor(objects.signedUrlTtlSeconds / 4));

/**
 * How long a finished playlist (a master, or a media playlist with its end) or a DASH MPD may be
 * cached. Naming the API's own objects, 2 s; naming a bucket's: a master or an MPD, whose caption
 * tracks can change at any time, briefly, a media playlist as long as its signed URLs allow. A growing one:
 * `growingPlaylistCacheControl`.
 */
function finishedPlaylistMaxAge(objects: PublishedObjectAccess, key: string): number {
  if (objects.servedBy === "api") return 2;
  if (opensPlayback(key)) return MASTER_MAX_AGE_SECONDS;
  return signedTextMaxAge(objects);
}

/**
 * A shared cache may keep a blocking reload's answer this many target durations: whoever asks for
 * the same segment later gets a playlist that lists it (Apple's LL-HLS guidance: six).
 */
const BLOCKING_ANSWER_TARGET_DURATIONS = 6;

/** A storyboard's WebVTT file, its sheets named by signed URL (a bucket's) or with the playback token. */
async function serveStoryboard(
  req: IncomingMessage,
  res: ServerResponse,
  objects: PublishedObjectAccess,
  key: string,
  token: string,
  readText: (key: string) => Promise<string | null>,
): Promise<void> {
  const text = await readText(key);
  if (text === null) return notFound(res);
  const dir = key.slice(0, key.lastIndexOf("/") + 1);
  const body = Buffer.from(
    await rewriteStoryboardUris(text, (uri) =>
      objects.servedBy === "bucket" ? objects.signedReadUrl(`${dir}${uri}`) : appendToken(uri, token),
    ),
  );
  const maxAge = objects.servedBy === "bucket" ? signedTextMaxAge(objects) : 60;
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[".vtt"]!,
    "cache-control": `private, max-age=${maxAge}`,
    "content-length": body.byteLength,
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * The playlist `text` stored at `key` with its URIs as this request must name them: a bucket's
 * objects by signed URL, and the token on every URI that comes back here.
 */
async function linkedPlaylist(objects: PublishedObjectAccess, text: string, key: string, token: string) {
  const linked =
    objects.servedBy === "bucket" ? await rewritePlaylistUris(text, key, (k) => objects.signedReadUrl(k)) : text;
  // Signed URLs are absolute: only the URIs that come back here (child playlists, captions) get the token.
  return token ? appendTokenToPlaylist(linked, token) : linked;
}

/**
 * A video's DASH MPD (src/dash/), made from its playlists as this request would get them: 404 for
 * a video without fMP4 segments, 409 while a rung still grows.
 */
async function serveDashManifest(
  req: IncomingMessage,
  res: ServerResponse,
  objects: PublishedObjectAccess,
  catalogs: MediaCatalogs,
  request: { key: string; token: string },
  readText: (key: string) => Promise<string | null>,
): Promise<void> {
  const { key, token } = request;
  const outcome = await dashManifest(hlsLayout(videoPrefix(videoKeyParts(key)!.videoId)).masterKey, {
    playlistText: (k) => playlistText(k, catalogs, readText),
    linked: (text, k) => linkedPlaylist(objects, text, k, token),
  });
  if ("refused" in outcome) {
    const status = outcome.refused === "not finished" ? 409 : 404;
    res.writeHead(status, {
      "content-type": "text/plain",
      "cache-control": "no-store",
      "access-control-allow-origin": "*",
    });
    res.end(`No DASH manifest: ${outcome.problem}`);
    return;
  }
  const body = Buffer.from(outcome.mpd);
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[".mpd"]!,
    "cache-control": `${token ? "private" : "public"}, max-age=${finishedPlaylistMaxAge(objects, key)}`,
    "content-length": body.byteLength,
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * A playlist as this request gets it: with the video's caption tracks (a master), cut to an instant
 * clip's range or a live broadcast's window, its bucket objects named by signed URL, its relative
 * URIs carrying the token. A live rung playlist's request for a segment not yet listed
 * (`_HLS_msn`) is held until it is (`LivePlaylists.waitFor`). A playlist that still grows is never
 * kept by a browser (`growingPlaylistCacheControl`).
 */
async function servePlaylist(
  req: IncomingMessage,
  res: ServerResponse,
  objects: PublishedObjectAccess,
  catalogs: MediaCatalogs,
  request: { key: string; token: string; url: URL; live: LivePlaylists | null; protection: ServedProtection | null },
  readText: (key: string) => Promise<string | null>,
): Promise<void> {
  const { key, token, url, live, protection } = request;
  let answersDirective = false;
  if (live) {
    const directives = deliveryDirectives(url);
    if (directives !== null && "problem" in directives) return badRequest(res, directives.problem);
    if (directives !== null) {
      const outcome = await live.waitFor(key, directives.msn);
      if (outcome === "too far ahead") return badRequest(res, "_HLS_msn is more than two segments ahead");
      // The player went away while it waited.
      if (res.destroyed) return;
      answersDirective = outcome === "ready";
    }
  }
  const stored = await playlistText(key, catalogs, readText);
  if (stored === null) return notFound(res);
  const view = live ? live.view(key, stored) : null;
  const clipped = await clippedPlaylist(readText, key, view?.text ?? stored, url);
  if ("problem" in clipped) return badRequest(res, clipped.problem);
  const keyed =
    protection && !isMasterPlaylist(clipped.text) ? withSegmentKeys(clipped.text, key, protection) : clipped.text;
  const body = Buffer.from(await linkedPlaylist(objects, keyed, key, token));
  const visibility = token ? "private" : "public";
  const targetDuration = view?.targetDuration ?? targetDurationOf(clipped.text);
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[".m3u8"]!,
    "cache-control": isFinishedPlaylist(clipped.text)
      ? `${visibility}, max-age=${finishedPlaylistMaxAge(objects, key)}`
      : answersDirective
        ? `${visibility}, max-age=${targetDuration * BLOCKING_ANSWER_TARGET_DURATIONS}`
        : growingPlaylistCacheControl(targetDuration, visibility),
    "content-length": body.byteLength,
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * A stored object sent as it is, with a single byte range when asked, and as an attachment named
 * by `?download=` (an MP4 rendition).
 */
async function sendObject(
  req: IncomingMessage,
  res: ServerResponse,
  storage: MediaStorage,
  read: Extract<PublishedObjectAccess, { servedBy: "api" }>["read"],
  request: { key: string; token: string; url: URL },
): Promise<void> {
  const { key, token, url } = request;
  const ext = path.extname(key);
  const size = await storage.size(key).catch(() => null);
  if (size === null) return notFound(res);
  const headers: Record<string, string | number> = {
    "content-type": CONTENT_TYPES[ext]!,
    "cache-control": cacheControlFor(ext, token),
    "accept-ranges": "bytes",
    "access-control-allow-origin": "*",
  };
  const download = url.searchParams.get("download");
  if (download !== null) {
    // The name comes from the URL, which anyone can write: only a plain name with the file's own extension.
    if (videoKeyParts(key)?.folder !== "mp4" || !isSafeDownloadName(download, ext)) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end("Bad download name");
      return;
    }
    headers["content-disposition"] = `attachment; filename="${download}"`;
  }
  const rangeHeader = req.headers.range;
  let range: ByteRange | undefined;
  if (rangeHeader) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(rangeHeader);
    if (m && (m[1] || m[2])) {
      const start = m[1] ? Number(m[1]) : Math.max(0, size - Number(m[2]));
      const end = m[1] && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start <= end && start < size) range = { start, end };
    }
    if (!range) {
      res.writeHead(416, { "content-range": `bytes */${size}` });
      res.end();
      return;
    }
  }
  if (range) {
    headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
    headers["content-length"] = range.end - range.start + 1;
    res.writeHead(206, headers);
  } else {
    headers["content-length"] = size;
    res.writeHead(200, headers);
  }
  if (req.method === "HEAD" || size === 0) {
    res.end();
    return;
  }
  const stream = read(key, range);
  stream.on("error", () => res.destroy());
  stream.pipe(res);
}

/**
 * `GET /media/{storage key}`: published media (HLS, the DASH MPD, storyboards, captions, images, MP4 renditions),
 * never sources, each request checked against its video's playback policy. Playlists and
 * storyboards are served with what the request needs written into them; any other object is sent
 * from storage or redirected to its signed URL in the bucket, as the storage's
 * `publishedObjects` says.
 */
export async function handleMedia(
  storage: MediaStorage,
  guard: PlaybackGuard,
  catalogs: MediaCatalogs,
  livePlaylists: LivePlaylists,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const admitted = await admitRequest(guard, req, res, url);
  if (admitted === null) return;
  const { key, token, protection } = admitted;
  // A live broadcast's rung playlist as its viewers poll it (an instant clip's range is cut from the whole broadcast).
  const liveRung =
    admitted.live && path.extname(key) === ".m3u8" && !isComposedPlaylist(key) && clipRangeOf(url) === null;
  const objects = storage.publishedObjects;
  const readText = (k: string) => storage.readText(k);
  // Relative URIs would not reach a bucket: every text naming its objects is rewritten.
  const namesBucketObjects = objects.servedBy === "bucket";
  if (isStoryboardVtt(key) && (namesBucketObjects || token)) {
    return serveStoryboard(req, res, objects, key, token, readText);
  }
  const captionFile = captionFileParts(key);
  if (captionFile) return serveCaptionFile(req, res, catalogs.captions, captionFile, token, readText);
  if (isDashManifestKey(key)) {
    if (protection) return notFound(res, "No DASH manifest: the video's segments are encrypted for HLS (AES-128)");
    return serveDashManifest(req, res, objects, catalogs, { key, token }, readText);
  }
  if (path.extname(key) === ".m3u8") {
    const live = liveRung ? livePlaylists : null;
    return servePlaylist(req, res, objects, catalogs, { key, token, url, live, protection }, readText);
  }
  if (objects.servedBy === "api") return sendObject(req, res, storage, objects.read, { key, token, url });
  res.writeHead(302, {
    location: await objects.signedReadUrl(key),
    "cache-control": "private, max-age=60",
    "access-control-allow-origin": "*",
  });
  res.end();
}
