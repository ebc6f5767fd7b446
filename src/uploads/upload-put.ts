import type { IncomingMessage, ServerResponse } from "node:http";
import type { Db } from "../db/client.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import type { Dispatcher } from "../jobs/dispatcher.ts";
import { log } from "../log.ts";
import { databaseUnavailable } from "../shared/database-errors.ts";
import { storageUnavailable, type StorageUnavailableError } from "../shared/storage-errors.ts";
import { UPLOAD_PATH_PREFIX } from "../storage/api-urls.ts";
import { UploadTooLargeError, type ResumableUploads } from "../storage/types.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import { queueUploadedVideo } from "./complete-upload.ts";

export interface UploadDeps {
  db: Db;
  storage: ResumableUploads;
  signer: UrlSigner;
  pubSub: VideoPubSub;
  dispatcher: Dispatcher;
  maxUploadBytes: number;
  maxAttempts: number;
  costs: CostSettings;
  /** A chunk whose bytes stop arriving for this long is cut off (UPLOAD_IDLE_TIMEOUT_SECONDS). */
  idleTimeoutMs: number;
}

/** How long a status query waits for storage before it answers 503. */
const STATUS_QUERY_TIMEOUT_MS = 5000;
const STATUS_RETRY_AFTER_SECONDS = "5";

type ContentRange =
  | { start: number; end: number; total: number | null }
  | { start: null; end: null; total: number | null };

/** `bytes 0-99/1000`, `bytes 0-99/*` or `bytes *\/1000` (a status query). */
export function parseContentRange(header: string | undefined): ContentRange | "invalid" | null {
  if (header === undefined) return null;
  const m = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(header.trim());
  if (!m) return "invalid";
  const total = m[3] === "*" ? null : Number(m[3]);
  if (m[1] === undefined) return { start: null, end: null, total };
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start || (total !== null && end >= total)) return "invalid";
  return { start, end, total };
}

function reply(
  res: ServerResponse,
  status: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** Tells a client where to resume, as resumable-upload protocols (GCS, Mux/UpChunk) do: 308 + Range. */
function resumeIncomplete(res: ServerResponse, received: number): void {
  const headers: Record<string, string> = received > 0 ? { range: `bytes=0-${received - 1}` } : {};
  res.writeHead(308, headers);
  res.end();
}

/**
 * 507 when storage is full, 503 when it fails: this request's bytes were not kept, those of
 * earlier requests were (`Range`), and the video keeps waiting for the rest.
 */
function refuseForStorage(
  res: ServerResponse,
  videoId: string,
  unavailable: StorageUnavailableError,
  kept: number | null,
): void {
  log.warn(unavailable.full ? "upload refused: storage is full" : "upload refused: storage is unavailable", {
    videoId,
    keptBytes: kept,
    err: unavailable.message,
  });
  const resumeAt =
    kept === null
      ? ""
      : kept === 0
        ? " Nothing of the file is kept: send it from byte 0."
        : ` The first ${kept} bytes are kept: resume from byte ${kept}.`;
  const headers: Record<string, string> = {
    "retry-after": "60",
    ...(kept ? { range: `bytes=0-${kept - 1}` } : {}),
  };
  const reason = unavailable.full ? "The server's storage is full" : "The server's storage is unavailable";
  reply(
    res,
    unavailable.full ? 507 : 503,
    { error: `${reason}, so this chunk was not stored; try again later.${resumeAt}` },
    headers,
  );
}

const locks = new Map<string, Promise<void>>();
/** One request at a time per upload within this instance. */
async function withUploadLock<T>(videoId: string, fn: () => Promise<T>): Promise<T> {
  const previous = locks.get(videoId) ?? Promise.resolve();
  let release!: () => void;
  const current = new Promise<void>((r) => (release = r));
  const chained = previous.then(() => current);
  locks.set(videoId, chained);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    if (locks.get(videoId) === chained) locks.delete(videoId);
  }
}

/** How soon a client may try again after a database failure. */
const DATABASE_RETRY_AFTER_SECONDS = "5";

/**
 * `PUT /uploads/{videoId}?expires&sig`: the body is the file, whole or as a chunk with
 * `Content-Range: bytes start-end/total`. Answers 308 with `Range` while bytes are missing and
 * 200 when the last byte landed (the video is then queued). `Content-Range: bytes *\/total`
 * with an empty body asks how much has arrived. A database that cannot answer (a restart, a
 * failover) is a 503 with `Retry-After`, as a storage outage is: the client tries again.
 */
export async function handleUpload(
  deps: UploadDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  try {
    await takeUpload(deps, req, res, url);
  } catch (err) {
    if (!databaseUnavailable(err) || res.headersSent) throw err;
    const videoId = url.pathname.slice(UPLOAD_PATH_PREFIX.length);
    log.warn("upload refused: the database is unavailable", { videoId, err: (err as Error).message });
    // What storage kept stays: the client resumes from what a status query then reports.
    reply(
      res,
      503,
      { error: "The server's database is unavailable, so this request was not recorded; try again later" },
      { "retry-after": DATABASE_RETRY_AFTER_SECONDS },
    );
  }
}

async function takeUpload(deps: UploadDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  res.setHeader("access-control-allow-origin", "*");
  res.setHeader("access-control-allow-methods", "PUT, OPTIONS");
  res.setHeader("access-control-allow-headers", "content-type, content-range");
  res.setHeader("access-control-expose-headers", "range");
  if (req.method === "OPTIONS") {
    res.writeHead(204, { allow: "PUT, OPTIONS" });
    res.end();
    return;
  }
  // An answer that does not take the body leaves it to the server, which reads and drops the rest
  // for at most 5 s (dropBodyLeftAfterAnswer): a client sending gigabytes to a refused URL does not
  // hold its connection.
  if (req.method !== "PUT") return reply(res, 405, { error: "Use PUT to upload a file" }, { allow: "PUT" });
  const problem = deps.signer.check(url);
  if (problem) return reply(res, 403, { error: `Upload URL rejected: ${problem}` });
  const videoId = url.pathname.slice(UPLOAD_PATH_PREFIX.length);
  const maxBytes = Math.min(deps.maxUploadBytes, Number(url.searchParams.get("max") ?? deps.maxUploadBytes));
  const nonce = url.searchParams.get("n");
  const range = parseContentRange(req.headers["content-range"]);
  if (range === "invalid") {
    return reply(res, 400, { error: "Malformed Content-Range; expected `bytes start-end/total`" });
  }
  const contentLength = req.headers["content-length"] === undefined ? null : Number(req.headers["content-length"]);
  const total = range ? range.total : contentLength;
  if (total !== null && total > maxBytes) {
    return reply(res, 413, { error: `File of ${total} bytes exceeds this upload URL's limit of ${maxBytes} bytes` });
  }

  /** The video when the URL may take bytes now, else the answer was sent and null returned. */
  const waitingVideo = async () => {
    const video = await deps.db.video.findUnique({ where: { id: videoId } });
    if (!video) {
      reply(res, 404, { error: "No such upload" });
      return null;
    }
    const refuse = (status: number, error: string) => {
      reply(res, status, { error });
      return null;
    };
    if (video.status !== "WAITING_FOR_UPLOAD") {
      return refuse(409, `This upload is complete; the video is ${video.status}`);
    }
    if (!nonce || video.uploadNonce !== nonce) {
      return refuse(403, "Upload URL rejected: it is not this upload's URL");
    }
    if (video.uploadSize !== null && total !== null && Number(video.uploadSize) !== total) {
      return refuse(400, `Total size ${total} differs from the ${video.uploadSize} bytes declared earlier`);
    }
    return video;
  };

  if (range && range.start === null) {
    // A status query reports what storage holds without the upload's lock: a chunk stalled on a
    // dead connection holds that lock until its idle timeout, and the client asking is the one
    // that wants to resume. Bytes of a chunk still arriving may be counted or not; either offset
    // is a valid place to resume from.
    if (!(await waitingVideo())) return;
    const received = await statusWithin(deps.storage.receivedUploadBytes(videoId), STATUS_QUERY_TIMEOUT_MS);
    if (typeof received === "number") return resumeIncomplete(res, received);
    log.warn("upload status query: storage did not answer", { videoId, err: received.message });
    return reply(
      res,
      503,
      { error: "The server's storage did not answer, so how much of the file arrived is not known; ask again later" },
      { "retry-after": STATUS_RETRY_AFTER_SECONDS },
    );
  }

  /** What a storage call returns, or null once storage failing it was answered 503 (or 507 when full). */
  const orStorageRefusal = async <T>(call: () => Promise<T>): Promise<T | null> => {
    try {
      return await call();
    } catch (err) {
      const unavailable = storageUnavailable(err);
      if (!unavailable) throw err;
      refuseForStorage(res, videoId, unavailable, null);
      return null;
    }
  };

  await withUploadLock(videoId, async () => {
    const video = await waitingVideo();
    if (!video) return;
    const received = await orStorageRefusal(() => deps.storage.receivedUploadBytes(videoId));
    if (received === null) return;
    const start = range?.start ?? 0;
    if (start > received) return resumeIncomplete(res, received);
    if (total === 0 || (range === null && contentLength === 0)) {
      return reply(res, 400, { error: "The upload is empty (0 bytes); send the file's bytes" });
    }
    const endsFile = range === null || (range.total !== null && range.end! + 1 === range.total);
    if (!endsFile && range.end! - range.start! + 1 < deps.storage.minChunkBytes) {
      return reply(res, 400, {
        error: `Chunks other than the last must be at least ${deps.storage.minChunkBytes} bytes`,
      });
    }
    const limit = Math.min(maxBytes, range?.end !== undefined && range.end !== null ? range.end + 1 : maxBytes);
    const isComplete = (held: number) => (total !== null ? held >= total : range === null);
    let written: number;
    let idle = false;
    // A body that stops arriving (a dead connection, a stalled client) must not hold the upload's
    // lock until Node's request timeout: the bytes that arrived are kept and the client resumes.
    req.setTimeout(deps.idleTimeoutMs, () => {
      idle = true;
      req.destroy();
    });
    try {
      // A refused body (too large, storage full) is answered and drained, so it is not destroyed.
      written = await deps.storage.writeUploadChunk(videoId, start, req.iterator({ destroyOnReturn: false }), {
        limit,
        isComplete,
      });
    } catch (err) {
      if (err instanceof UploadTooLargeError) {
        return reply(res, 413, {
          error: `Body exceeds the declared range or this upload URL's limit of ${maxBytes} bytes`,
        });
      }
      if (req.destroyed && !req.complete) {
        // The client went away mid-chunk (a closed tab, a lost network): it resumes from what was kept.
        const kept = await deps.storage.receivedUploadBytes(videoId);
        await deps.db.video.update({ where: { id: videoId }, data: { uploadedBytes: kept } });
        if (idle) log.info("upload chunk cut off: no bytes arrived", { videoId, keptBytes: kept, ...idleFor(deps) });
        else log.info("upload chunk interrupted: the client went away", { videoId, keptBytes: kept });
        return;
      }
      const unavailable = storageUnavailable(err);
      if (unavailable) {
        return refuseForStorage(
          res,
          videoId,
          unavailable,
          await deps.storage.receivedUploadBytes(videoId).catch(() => null),
        );
      }
      throw err;
    } finally {
      req.setTimeout(0);
    }
    if (total !== null && video.uploadSize === null) {
      await deps.db.video.update({ where: { id: videoId }, data: { uploadSize: total } });
    }
    await deps.db.video.update({ where: { id: videoId }, data: { uploadedBytes: written } });
    if (!isComplete(written)) return resumeIncomplete(res, written);
    if (written === 0) return reply(res, 400, { error: "The upload is empty (0 bytes); send the file's bytes" });
    const sourceKey = await orStorageRefusal(() => deps.storage.finishUpload(videoId));
    if (sourceKey === null) return;
    await queueUploadedVideo(deps, videoId, { key: sourceKey, name: "upload", size: written });
    log.info("upload complete", { videoId, bytes: written });
    reply(res, 200, { videoId, bytes: written, status: "QUEUED" });
  });
}

const idleFor = (deps: UploadDeps) => ({ idleSeconds: deps.idleTimeoutMs / 1000 });

/** The storage's answer, or the error that it failed or did not answer within `ms`. */
async function statusWithin(answer: Promise<number>, ms: number): Promise<number | Error> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Error>((resolve) => {
    timer = setTimeout(() => resolve(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([
      answer.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
