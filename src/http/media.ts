import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { type CaptionCatalog, withSubtitles } from "../captions/subtitle-playlists.ts";
import {
  captionFileParts,
  captionPlaylistParts,
  hlsLayout,
  isMasterPlaylistKey,
  isPublishedKey,
  videoKeyParts,
  videoPrefix,
} from "../protocol/storage-layout.ts";
import { MEDIA_PATH_PREFIX } from "../storage/api-urls.ts";
import type { LocalStorage } from "../storage/local.ts";
import { resolvePlaylistUri, rewritePlaylistUris } from "../storage/playlist-urls.ts";
import { assertValidKey } from "../storage/types.ts";
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
import { appendTokenToPlaylist } from "./playback-tokens.ts";
import { rewriteStoryboardUris } from "./storyboard-vtt.ts";

/**
 * What both media handlers check first: GET/HEAD, a published key, the video's playback policy.
 * Null once the request was answered (405, 404 or 403).
 */
async function admitRequest(
  guard: PlaybackGuard,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<{ key: string; token: string } | null> {
  if (methodNotAllowed(req, res)) return null;
  const key = publishedKey(url);
  if (key === null) {
    notFound(res);
    return null;
  }
  const admission = await admitPlayback(guard, key, url);
  if ("token" in admission) return { key, token: admission.token };
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

/**
 * The playlists the API writes or amends rather than serving them as stored: a master, to which
 * it adds the video's caption tracks, and a caption's subtitle playlist, which is never stored.
 */
/** A storyboard's WebVTT file, whose cues name sheets beside it. */
const isStoryboardVtt = (key: string): boolean =>
  path.extname(key) === ".vtt" && videoKeyParts(key)?.folder === "storyboard";

const isComposedPlaylist = (key: string): boolean => isMasterPlaylistKey(key) || captionPlaylistParts(key) !== null;

/** The text of the playlist `key`, as players get it before URIs are signed or tokens added; null: none. */
async function playlistText(
  key: string,
  captions: CaptionCatalog,
  readStored: (key: string) => Promise<string | null>,
): Promise<string | null> {
  const caption = captionPlaylistParts(key);
  if (caption) return captions.subtitlePlaylistOf(caption.videoId, caption.captionId);
  const text = await readStored(key);
  if (text === null || !isMasterPlaylistKey(key)) return text;
  return withSubtitles(text, await captions.tracksOf(videoKeyParts(key)!.videoId));
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

/** Segments never change once written; playlists grow while a video encodes. */
function cacheControl(ext: string): string {
  if (ext === ".ts" || ext === ".m4s") return "public, max-age=31536000, immutable";
  if (ext === ".m3u8") return "public, max-age=2";
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
  if (!/^#EXT-X-STREAM-INF/m.test(text)) {
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

function notFound(res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("Not found");
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

/**
 * `GET /media/{storage key}` for the local storage adapter, with single byte ranges, so that
 * players can read segments and posters. Only published media (HLS and thumbnails) is served,
 * never sources.
 */
export async function handleMedia(
  storage: LocalStorage,
  guard: PlaybackGuard,
  captions: CaptionCatalog,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const admitted = await admitRequest(guard, req, res, url);
  if (admitted === null) return;
  const { key, token } = admitted;
  const ext = path.extname(key);
  if (isStoryboardVtt(key) && token) {
    const text = await storage.readText(key);
    if (text === null) return notFound(res);
    const body = Buffer.from(await rewriteStoryboardUris(text, (uri) => `${uri}?token=${encodeURIComponent(token)}`));
    res.writeHead(200, {
      "content-type": CONTENT_TYPES[ext]!,
      "cache-control": "private, max-age=60",
      "content-length": body.byteLength,
      "access-control-allow-origin": "*",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
  const captionFile = captionFileParts(key);
  if (captionFile) return serveCaptionFile(req, res, captions, captionFile, token, (k) => storage.readText(k));
  if (ext === ".m3u8" && (token || isComposedPlaylist(key) || clipRangeOf(url) !== null)) {
    const text = await playlistText(key, captions, (k) => storage.readText(k));
    if (text === null) return notFound(res);
    const clipped = await clippedPlaylist((k) => storage.readText(k), key, text, url);
    if ("problem" in clipped) return badRequest(res, clipped.problem);
    const body = Buffer.from(token ? appendTokenToPlaylist(clipped.text, token) : clipped.text);
    res.writeHead(200, {
      "content-type": CONTENT_TYPES[ext]!,
      "cache-control": `${token ? "private" : "public"}, max-age=2`,
      "content-length": body.byteLength,
      "access-control-allow-origin": "*",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
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
  let range: { start: number; end: number } | undefined;
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
  const stream = storage.read(key, range);
  stream.on("error", () => res.destroy());
  stream.pipe(res);
}

/** A bucket whose objects players read through signed URLs (GCS, S3-compatible). */
export interface SignedUrlMediaStorage {
  readonly signedUrlTtlSeconds: number;
  signedReadUrl(key: string): Promise<string>;
  /** The object's text, or null when it does not exist. */
  readText(key: string): Promise<string | null>;
}

/**
 * `GET /media/{storage key}` with bucket storage (GCS, S3). Playlists are read from the bucket
 * and served with every segment URI replaced by a signed URL (child playlist URIs stay relative,
 * so they come back here); a VOD playlist may be cached for up to a quarter of the signed URLs'
 * lifetime, a growing one for 2 s. Segments and posters are fetched from the bucket itself: a
 * request for one here is redirected to its signed URL.
 */
export async function handleSignedUrlMedia(
  storage: SignedUrlMediaStorage,
  guard: PlaybackGuard,
  captions: CaptionCatalog,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const admitted = await admitRequest(guard, req, res, url);
  if (admitted === null) return;
  const { key, token } = admitted;
  if (isStoryboardVtt(key)) {
    // The sheets a storyboard names are fetched from the bucket: their URIs become signed URLs.
    const text = await storage.readText(key);
    if (text === null) return notFound(res);
    const dir = key.slice(0, key.lastIndexOf("/") + 1);
    const body = Buffer.from(await rewriteStoryboardUris(text, (uri) => storage.signedReadUrl(`${dir}${uri}`)));
    res.writeHead(200, {
      "content-type": CONTENT_TYPES[".vtt"]!,
      "cache-control": `private, max-age=${Math.min(3600, Math.floor(storage.signedUrlTtlSeconds / 4))}`,
      "content-length": body.byteLength,
      "access-control-allow-origin": "*",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
  const captionFile = captionFileParts(key);
  if (captionFile) return serveCaptionFile(req, res, captions, captionFile, token, (k) => storage.readText(k));
  if (path.extname(key) !== ".m3u8") {
    res.writeHead(302, {
      location: await storage.signedReadUrl(key),
      "cache-control": "private, max-age=60",
      "access-control-allow-origin": "*",
    });
    res.end();
    return;
  }
  const text = await playlistText(key, captions, (k) => storage.readText(k));
  if (text === null) return notFound(res);
  const clipped = await clippedPlaylist((k) => storage.readText(k), key, text, url);
  if ("problem" in clipped) return badRequest(res, clipped.problem);
  const signed = await rewritePlaylistUris(clipped.text, key, (k) => storage.signedReadUrl(k));
  // Segment URIs are now absolute signed URLs; only child playlists (relative) need the token.
  const body = Buffer.from(token ? appendTokenToPlaylist(signed, token) : signed);
  const final = /^#EXT-X-(ENDLIST|STREAM-INF)/m.test(clipped.text);
  const maxAge = isMasterPlaylistKey(key)
    ? MASTER_MAX_AGE_SECONDS
    : final
      ? Math.min(3600, Math.floor(storage.signedUrlTtlSeconds / 4))
      : 2;
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[".m3u8"]!,
    "cache-control": `${token ? "private" : "public"}, max-age=${maxAge}`,
    "content-length": body.byteLength,
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}
