import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import os from "node:os";
import path from "node:path";
import type { Db } from "../db/client.ts";
import { log } from "../log.ts";
import { animatedPreviewKey, thumbnailAtKey, videoPrefix } from "../protocol/storage-layout.ts";
import { MEDIA_PATH_PREFIX } from "../storage/api-urls.ts";
import { assertValidKey } from "../storage/types.ts";
import { type ImageCacheBudget, releaseImageBytes, reserveImageBytes } from "../thumbnails/image-cache-budget.ts";
import { createRenderLimiter, OverShareError, renderImage, TooBusyError } from "../thumbnails/render-image.ts";
import { type ImageRequest, parseAnimatedRequest, parseThumbnailRequest } from "../thumbnails/requests.ts";
import { clientAddress } from "./client-address.ts";
import { admitPlayback, type PlaybackGuard } from "./playback-guard.ts";
import { parsePlaylist } from "../shared/hls-playlists.ts";

/** `/media/videos/{id}/thumbnail.jpg`, `/media/videos/{id}/animated.webp` or `.gif`. */
const IMAGE_PATH =
  /^\/media\/videos\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/(thumbnail\.jpg|animated\.(?:webp|gif))$/;
/** A made image larger than this is not cached (nor served): something is wrong. */
const MAX_IMAGE_BYTES = 8 * 1024 * 1024;
const CONTENT_TYPES = { jpg: "image/jpeg", webp: "image/webp", gif: "image/gif" } as const;

/** What the image route needs of storage: the published HLS to read and a place to cache images. */
interface VideoImageStorage {
  readText(key: string): Promise<string | null>;
  /** The bytes of a stored object. */
  readObject(key: string): AsyncIterable<Uint8Array>;
  size(key: string): Promise<number | null>;
  write(key: string, body: AsyncIterable<Uint8Array>, options: { limit: number; contentType: string }): Promise<number>;
}

export interface VideoImageDeps {
  db: Db;
  storage: VideoImageStorage;
  guard: PlaybackGuard;
  /** Serves a stored published object as `/media/{key}` does (range, playback policy). */
  serveMedia(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  /**
   * Times and widths are the caller's choice, so without a bound anyone who may play a video could
   * fill storage with its images: past these byte budgets an image is made and sent, not stored.
   */
  cacheBudget: ImageCacheBudget;
  /** TRUST_PROXY_HOPS: how the client a render is counted against is found. */
  trustedProxyHops: number;
  /** ffmpeg processes making images at once in this API process; more wait (a few) or get 503. */
  concurrency?: number;
}

/** An image being made, shared by every request for it; aborted when the last of them goes. */
interface Render {
  result: Promise<Buffer | null>;
  controller: AbortController;
  requests: number;
}

interface Segment {
  key: string;
  start: number;
  duration: number;
}

/** A published rung: its segments with their media times, and its fMP4 init segment (null for MPEG-TS). */
interface RungMedia {
  segments: Segment[];
  initKey: string | null;
}

/** The segments of a published rung playlist with their media times; null if it is not there. */
async function rungSegments(storage: VideoImageStorage, playlistKey: string): Promise<RungMedia | null> {
  const text = await storage.readText(playlistKey);
  if (text === null) return null;
  const playlist = parsePlaylist(text);
  const prefix = playlistKey.slice(0, playlistKey.lastIndexOf("/"));
  const segments: Segment[] = [];
  let initKey: string | null = null;
  let start = 0;
  for (const segment of playlist.segments) {
    const map = segment.map?.uri;
    if (map !== undefined && initKey === null) {
      // The worker names the init beside the playlist; anything else is not followed.
      if (!/^[\w.-]+\.mp4$/.test(map)) return null;
      initKey = `${prefix}/${map}`;
      assertValidKey(initKey);
    }
    if (segment.duration === undefined) continue;
    // The worker writes plain names beside the playlist; anything else is not followed.
    if (!(initKey ? /^[\w.-]+\.m4s$/ : /^[\w.-]+\.ts$/).test(segment.uri)) return null;
    const key = `${prefix}/${segment.uri}`;
    assertValidKey(key);
    segments.push({ key, start, duration: segment.duration });
    start += segment.duration;
  }
  return segments.length ? { segments, initKey } : null;
}

/** The segments a request needs and where its (start) time falls in the first of them. */
function segmentsFor(segments: Segment[], request: ImageRequest): { picked: Segment[]; offsetSeconds: number } {
  const from = (request.kind === "thumbnail" ? request.timeMs : request.startMs) / 1000;
  const to = request.kind === "thumbnail" ? from : request.endMs / 1000;
  const indexAt = (t: number) => {
    const i = segments.findIndex((s) => t < s.start + s.duration);
    return i === -1 ? segments.length - 1 : i;
  };
  const first = indexAt(from);
  const picked = segments.slice(first, indexAt(to) + 1);
  const head = segments[first]!;
  // A frame is needed at or after the offset: stay a little before the segment's end.
  const offsetSeconds = Math.min(from - head.start, request.kind === "thumbnail" ? head.duration - 0.1 : Infinity);
  return { picked, offsetSeconds: Math.max(0, offsetSeconds) };
}

class UnreadablePlaylistError extends Error {
  constructor() {
    super("The video's published playlist cannot be read");
  }
}

function answer(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": "text/plain",
    "cache-control": "no-store",
    "access-control-allow-origin": "*",
    ...headers,
  });
  res.end(text);
}

/**
 * `GET /media/videos/{id}/thumbnail.jpg?time=&width=` and `…/animated.webp|gif?start=&end=&width=`:
 * a frame or a short animation made from the video's published HLS (the smallest rung at least as
 * wide as asked), under the same playback policy as the rest of its media. Each image is made once
 * and cached in storage under `thumbnails/at/`; later requests are served from there.
 */
export function createVideoImageRoute(deps: VideoImageDeps) {
  const concurrency = deps.concurrency ?? 2;
  // Half the slots per client (one of two), so another client's request always finds one.
  const limiter = createRenderLimiter({
    concurrency,
    maxWaiting: 16,
    perClient: Math.ceil(concurrency / 2),
    perClientWaiting: 4,
  });
  const making = new Map<string, Render>();

  /**
   * Makes the image and stores it under `key`; resolves with null then, or with its bytes when the
   * video's or tenant's cache budget has no room (the image is sent but not stored).
   */
  async function make(
    videoId: string,
    key: string,
    request: ImageRequest,
    rung: RungMedia,
    client: string,
    signal: AbortSignal,
  ): Promise<Buffer | null> {
    const { picked, offsetSeconds } = segmentsFor(rung.segments, request);
    const ext = path.extname(key).slice(1) as keyof typeof CONTENT_TYPES;
    return limiter.run(client, signal, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-image-"));
      try {
        const outFile = path.join(dir, `image.${ext}`);
        // fMP4: the rung's init segment first, then its media segments, make one fragmented MP4 stream.
        const keys = [...(rung.initKey ? [rung.initKey] : []), ...picked.map((s) => s.key)];
        const sources = keys.map((k) => () => deps.storage.readObject(k));
        const format = rung.initKey ? "mp4" : "mpegts";
        await renderImage({ request, segments: sources, format, offsetSeconds, outFile, signal });
        const { size } = await stat(outFile);
        if (size > MAX_IMAGE_BYTES) throw new Error(`the image is ${size} bytes, more than ${MAX_IMAGE_BYTES}`);
        if (!(await reserveImageBytes(deps.db, videoId, size, deps.cacheBudget))) {
          log.info("video image made; not cached, the image cache budget is spent", { videoId, key, size });
          return await readFile(outFile);
        }
        try {
          await deps.storage.write(key, createReadStream(outFile), {
            limit: MAX_IMAGE_BYTES,
            contentType: CONTENT_TYPES[ext],
          });
        } catch (err) {
          await releaseImageBytes(deps.db, videoId, size);
          throw err;
        }
        log.info("video image made", { videoId, key, size });
        return null;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  return {
    matches: (url: URL): boolean => IMAGE_PATH.test(url.pathname),

    async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
      if (req.method !== "GET" && req.method !== "HEAD") return answer(res, 405, "", { allow: "GET, HEAD" });
      const [, videoId, name] = IMAGE_PATH.exec(url.pathname)!;
      const admission = await admitPlayback(deps.guard, `${videoPrefix(videoId!)}/thumbnails`, url);
      if ("refused" in admission) {
        if (admission.refused === "not found") return answer(res, 404, "Not found");
        return answer(res, 403, `Forbidden: ${admission.problem}`);
      }
      // The API would have to decrypt segments to cut them; the ladder's poster and storyboard are still there.
      if (admission.protection) {
        return answer(res, 409, "Images are not made on request from a protected video's encrypted segments");
      }
      const video = await deps.db.video.findUnique({
        where: { id: videoId! },
        select: {
          status: true,
          duration: true,
          variants: {
            where: { kind: "VIDEO", status: "READY", playlistKey: { not: null } },
            select: { width: true, playlistKey: true },
            orderBy: { width: "asc" },
          },
        },
      });
      if (!video) return answer(res, 404, "Not found");
      const rungs = video.variants;
      if (video.status !== "READY" || video.duration === null || rungs.length === 0) {
        return answer(res, 409, "The video has no published video yet: images are made once it is READY");
      }
      const request =
        name === "thumbnail.jpg"
          ? parseThumbnailRequest(url.searchParams, video.duration)
          : parseAnimatedRequest(url.searchParams, name === "animated.gif" ? "gif" : "webp", video.duration);
      if ("problem" in request) return answer(res, 400, `Bad request: ${request.problem}`);
      const key =
        request.kind === "thumbnail"
          ? thumbnailAtKey(videoId!, request.timeMs, request.width)
          : animatedPreviewKey(videoId!, request, request.width, request.format);

      const cached = (await deps.storage.size(key)) !== null;
      if (!cached) {
        // Registered before anything is awaited, so that requests for the same image share one run.
        let render = making.get(key);
        if (!render) {
          const rung = rungs.find((r) => (r.width ?? 0) >= request.width) ?? rungs[rungs.length - 1]!;
          const client = clientAddress(req, deps.trustedProxyHops);
          const controller = new AbortController();
          const started: Render = {
            controller,
            requests: 0,
            result: (async () => {
              const media = await rungSegments(deps.storage, rung.playlistKey!);
              if (!media) throw new UnreadablePlaylistError();
              return make(videoId!, key, request, media, client, controller.signal);
            })().finally(() => {
              if (making.get(key) === started) making.delete(key);
            }),
          };
          render = started;
          making.set(key, render);
        }
        const shared = render;
        shared.requests++;
        let settled = false;
        // Nobody left to send the image to: ffmpeg is killed, its slot freed, nothing is stored.
        const gone = () => {
          if (settled || --shared.requests > 0) return;
          if (making.get(key) === shared) making.delete(key);
          shared.controller.abort(new Error("every request for the image was closed"));
        };
        if (res.closed) gone();
        else res.once("close", gone);
        let uncached: Buffer | null;
        try {
          uncached = await shared.result;
        } catch (err) {
          if (res.destroyed) return;
          if (err instanceof OverShareError) return answer(res, 429, err.message, { "retry-after": "2" });
          if (err instanceof TooBusyError) return answer(res, 503, err.message, { "retry-after": "2" });
          if (err instanceof UnreadablePlaylistError) return answer(res, 409, err.message);
          log.warn("video image failed", { videoId, key, err });
          return answer(res, 500, "The image could not be made");
        } finally {
          settled = true;
          res.off("close", gone);
        }
        if (uncached) {
          const ext = path.extname(key).slice(1) as keyof typeof CONTENT_TYPES;
          res.writeHead(200, {
            "content-type": CONTENT_TYPES[ext],
            "content-length": uncached.byteLength,
            "cache-control": admission.token ? "private, max-age=300" : "public, max-age=300",
            "access-control-allow-origin": "*",
            "x-image-cache": "full",
          });
          res.end(req.method === "HEAD" ? undefined : uncached);
          return;
        }
      }
      res.setHeader("x-image-cache", cached ? "hit" : "miss");
      const served = new URL(`${MEDIA_PATH_PREFIX}${key}`, url);
      const token = url.searchParams.get("token");
      if (token) served.searchParams.set("token", token);
      await deps.serveMedia(req, res, served);
    },
  };
}
