import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import type { LocalStorage } from "../storage/local.ts";

export const MEDIA_PATH_PREFIX = "/media/";

const CONTENT_TYPES: Record<string, string> = {
  ".m3u8": "application/vnd.apple.mpegurl",
  ".ts": "video/mp2t",
  ".m4s": "video/iso.segment",
  ".mp4": "video/mp4",
  ".jpg": "image/jpeg",
};

/** Segments never change once written; playlists grow while a video encodes. */
function cacheControl(ext: string): string {
  if (ext === ".ts" || ext === ".m4s") return "public, max-age=31536000, immutable";
  if (ext === ".m3u8") return "public, max-age=2";
  return "public, max-age=300";
}

/**
 * `GET /media/{storage key}` for the local storage adapter, with single byte ranges, so that
 * players can read segments and posters. Only published media (HLS and thumbnails) is served,
 * never sources.
 */
export async function handleMedia(storage: LocalStorage, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" });
    res.end();
    return;
  }
  const key = decodeURIComponent(url.pathname.slice(MEDIA_PATH_PREFIX.length));
  const parts = key.split("/");
  const ext = path.extname(key);
  const served = parts[0] === "videos" && (parts[2] === "hls" || parts[2] === "thumbnails") && ext in CONTENT_TYPES;
  let size: number | null = null;
  if (served) {
    try {
      size = await storage.size(key);
    } catch {
      size = null;
    }
  }
  if (size === null) {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("Not found");
    return;
  }
  const headers: Record<string, string | number> = {
    "content-type": CONTENT_TYPES[ext]!,
    "cache-control": cacheControl(ext),
    "accept-ranges": "bytes",
    "access-control-allow-origin": "*",
  };
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
