import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { isPublishedKey, videoKeyParts } from "../protocol/storage-layout.ts";
import { MEDIA_PATH_PREFIX } from "../storage/api-urls.ts";
import type { LocalStorage } from "../storage/local.ts";
import { rewritePlaylistUris } from "../storage/playlist-urls.ts";
import { assertValidKey } from "../storage/types.ts";
import { isSafeDownloadName } from "../videos/download-filename.ts";
import { admitPlayback, type PlaybackGuard } from "./playback-guard.ts";
import { appendTokenToPlaylist } from "./playback-tokens.ts";

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
};

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
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const admitted = await admitRequest(guard, req, res, url);
  if (admitted === null) return;
  const { key, token } = admitted;
  const size = await storage.size(key).catch(() => null);
  if (size === null) return notFound(res);
  const ext = path.extname(key);
  if (ext === ".m3u8" && token) {
    const text = await storage.readText(key);
    if (text === null) return notFound(res);
    const body = Buffer.from(appendTokenToPlaylist(text, token));
    res.writeHead(200, {
      "content-type": CONTENT_TYPES[ext]!,
      "cache-control": "private, max-age=2",
      "content-length": body.byteLength,
      "access-control-allow-origin": "*",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
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
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const admitted = await admitRequest(guard, req, res, url);
  if (admitted === null) return;
  const { key, token } = admitted;
  if (path.extname(key) !== ".m3u8") {
    res.writeHead(302, {
      location: await storage.signedReadUrl(key),
      "cache-control": "private, max-age=60",
      "access-control-allow-origin": "*",
    });
    res.end();
    return;
  }
  const text = await storage.readText(key);
  if (text === null) return notFound(res);
  const signed = await rewritePlaylistUris(text, key, (k) => storage.signedReadUrl(k));
  // Segment URIs are now absolute signed URLs; only child playlists (relative) need the token.
  const body = Buffer.from(token ? appendTokenToPlaylist(signed, token) : signed);
  const final = /^#EXT-X-(ENDLIST|STREAM-INF)/m.test(text);
  const maxAge = final ? Math.min(3600, Math.floor(storage.signedUrlTtlSeconds / 4)) : 2;
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[".m3u8"]!,
    "cache-control": `${token ? "private" : "public"}, max-age=${maxAge}`,
    "content-length": body.byteLength,
    "access-control-allow-origin": "*",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}
