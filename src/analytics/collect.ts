import type { IncomingMessage, ServerResponse } from "node:http";
import type pg from "pg";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { clientAddress } from "../http/client-address.ts";
import type { PlaybackTokens } from "../http/playback-tokens.ts";
import { log } from "../log.ts";
import { liveViewerLatencySeconds } from "../metrics.ts";
import { ANALYTICS_PATHS, parseViewStart, type ViewStarted } from "../shared/analytics-beacons.ts";
import type { CollectionSwitch } from "./collection-switch.ts";
import type { AnalyticsIngest } from "./ingest.ts";
import { type Answer, REASONS, refusal, UNAVAILABLE } from "./ingest-messages.ts";
import type { IngestThread } from "./ingest-supervisor.ts";
import type { ViewTokens } from "./view-tokens.ts";

/** The collection endpoint's limits (ANALYTICS_* settings, docs/configuration.md). */
export interface CollectionLimits {
  maxBodyBytes: number;
  batchesPerViewPerMinute: number;
  requestsPerClientPerMinute: number;
  trustedProxyHops: number;
  /** How often players are asked to send what they gathered. */
  flushIntervalMs: number;
}

export interface CollectionDeps {
  pool: pg.Pool;
  ingest: AnalyticsIngest;
  /** Takes the beacon batches: their bytes go to the ingest thread, which answers. */
  ingestThread: IngestThread;
  collection: CollectionSwitch;
  viewTokens: ViewTokens;
  playbackTokens: PlaybackTokens;
  limits: CollectionLimits;
  /** Called after a view started or a batch counted: `viewersNow` subscribers recount. */
  onActivity(videoId: string): void;
}

/** A refusal made on the main thread: the status and the reason the body gives. */
class Refusal {
  readonly answer: Answer;
  constructor(status: number, reason: string, retryAfterSeconds?: number) {
    this.answer = refusal(status, reason, retryAfterSeconds);
  }
}

// Players on any site send beacons; nothing is read with credentials, so any origin may.
const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST, OPTIONS",
  "access-control-allow-headers": "content-type",
  "access-control-max-age": "86400",
};

/**
 * The collection endpoint: `POST …/views` starts a view of a playback and answers its view token;
 * `POST …/beacons` takes a batch of a view. Every refusal is a 4xx with `{ error }`; nothing a
 * client sends makes a 5xx (a database failure is a 503, the player drops the batch). A batch's
 * bytes are read here and everything after is the ingest thread's (ingest-thread.ts), so the event
 * loop that serves GraphQL does not parse, validate, check or sum beacons, nor build their writes.
 */
export function createCollectionEndpoint(deps: CollectionDeps) {
  const { limits } = deps;
  const perClient = new RateLimiterMemory({ points: limits.requestsPerClientPerMinute, duration: 60 });

  async function consume(limiter: RateLimiterMemory, key: string, what: string): Promise<void> {
    try {
      await limiter.consume(key);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      throw new Refusal(429, REASONS.tooMany(what), Math.ceil(err.msBeforeNext / 1000));
    }
  }

  async function startView(req: IncomingMessage, client: string, bytes: Uint8Array): Promise<ViewStarted> {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
    } catch {
      throw new Refusal(400, REASONS.notJson);
    }
    const parsed = parseViewStart(body);
    if ("problem" in parsed) throw new Refusal(400, parsed.problem);
    if (req.headers.dnt === "1" || req.headers["sec-gpc"] === "1")
      throw new Refusal(403, "the browser asks not to be tracked (Do Not Track)");
    const { videoId, playbackToken } = parsed.start;
    const { rows } = await deps.pool.query<{
      tenantId: string;
      playbackPolicy: string;
      analyticsEnabled: boolean;
      durationMs: number | null;
    }>(
      // A live broadcast's duration grows while it is watched: not known until its recording is READY.
      `SELECT v."tenantId", v."playbackPolicy", t."analyticsEnabled",
         CASE WHEN v.source = 'LIVE' AND v.status <> 'READY' THEN NULL ELSE v.duration * 1000 END AS "durationMs"
       FROM "Video" v JOIN "Tenant" t ON t.id = v."tenantId" WHERE v.id = $1`,
      [videoId],
    );
    const video = rows[0];
    if (!video) throw new Refusal(404, "no such video");
    if (video.playbackPolicy === "SIGNED") {
      const checked = deps.playbackTokens.check(videoId, playbackToken ?? null, ["open", "session"]);
      if ("problem" in checked) throw new Refusal(403, checked.problem);
    }
    deps.collection.remember(video.tenantId, video.analyticsEnabled);
    if (!video.analyticsEnabled) throw new Refusal(403, REASONS.collectionOff);
    const startedAt = Date.now();
    const viewId = await deps.ingest.startView(
      {
        videoId,
        tenantId: video.tenantId,
        client,
        userAgent: String(req.headers["user-agent"] ?? "").slice(0, 512),
      },
      startedAt,
    );
    deps.onActivity(videoId);
    // The view's start and the video's duration go in its token: the ingest bounds its watch time by them.
    const { token, expires } = deps.viewTokens.issue({
      viewId,
      videoId,
      tenantId: video.tenantId,
      startedAt,
      durationMs: video.durationMs,
    });
    return {
      viewId,
      viewToken: token,
      expiresAt: new Date(expires * 1000).toISOString(),
      flushIntervalMs: limits.flushIntervalMs,
    };
  }

  return {
    matches: (url: URL) => url.pathname === ANALYTICS_PATHS.views || url.pathname === ANALYTICS_PATHS.beacons,

    async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
      if (req.method === "OPTIONS") {
        res.writeHead(204, CORS_HEADERS).end();
        return;
      }
      try {
        if (req.method !== "POST") throw new Refusal(405, "use POST");
        const client = clientAddress(req, limits.trustedProxyHops);
        await consume(perClient, client, "from this address");
        const body = await readBody(req, limits.maxBodyBytes);
        if (url.pathname === ANALYTICS_PATHS.views) {
          respond(res, { status: 201, body: await startView(req, client, body) });
        } else {
          const { answer, countedVideoId, liveLatencyMs } = await deps.ingestThread.take(body);
          respond(res, answer);
          if (countedVideoId) deps.onActivity(countedVideoId);
          if (liveLatencyMs !== null) liveViewerLatencySeconds.observe(liveLatencyMs / 1000);
        }
      } catch (err) {
        if (err instanceof Refusal) {
          respond(res, err.answer);
        } else {
          log.warn("analytics request failed", { err });
          respond(res, UNAVAILABLE);
        }
      }
    },
  };
}

// The headers every answer carries, built once (an accepted batch's answer is most of the traffic).
const ANSWER_HEADERS = { ...CORS_HEADERS, "content-type": "application/json", "cache-control": "no-store" };

function respond(res: ServerResponse, { status, body, retryAfterSeconds }: Answer): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  // A declared length: the answer goes out in one write, not as chunks with a terminator.
  const headers: Record<string, string | number> = { ...ANSWER_HEADERS, "content-length": Buffer.byteLength(text) };
  if (retryAfterSeconds !== undefined) headers["retry-after"] = String(Math.max(1, retryAfterSeconds));
  // A refused body may still be arriving: close rather than read it.
  if (status >= 400) headers.connection = "close";
  res.writeHead(status, headers).end(text);
}

/**
 * The request's body, read up to `maxBytes` into an ArrayBuffer of its own (so that it can be
 * transferred to the ingest thread): a longer body (declared or sent) is a 413 and is not read
 * further. `sendBeacon` posts text/plain, so the content type is not checked.
 */
async function readBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > maxBytes) throw new Refusal(413, `a request body is at most ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new Refusal(413, `a request body is at most ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}
