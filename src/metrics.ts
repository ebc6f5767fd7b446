import type { IncomingMessage, ServerResponse } from "node:http";
import { usePrometheus } from "@graphql-yoga/plugin-prometheus";
import type { Plugin } from "graphql-yoga";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Db } from "./db/client.ts";
import { HEALTH_PATHS } from "./http/health.ts";
import { MEDIA_PATH_PREFIX, UPLOAD_PATH_PREFIX } from "./storage/api-urls.ts";

/**
 * The API's Prometheus metrics, one registry per process (docs/operations.md lists each). Labels
 * take only values from small fixed sets (job kinds, queues, statuses, routes): never a video, a
 * tenant, an operation name or a URL a client chose.
 */
export const apiRegistry = new Registry();
collectDefaultMetrics({ register: apiRegistry });

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Every HTTP request the API answers, by route family. */
const httpRequestDuration = new Histogram({
  name: "videograph_http_request_duration_seconds",
  help: "Time to answer an HTTP request, by route (graphql, media, upload, health, other), method and status",
  labelNames: ["route", "method", "status"] as const,
  buckets: DURATION_BUCKETS,
  registers: [apiRegistry],
});

export const websocketConnections = new Gauge({
  name: "videograph_websocket_connections",
  help: "Open graphql-ws WebSocket connections",
  registers: [apiRegistry],
});

const activeSubscriptions = new Gauge({
  name: "videograph_graphql_subscriptions_active",
  help: "GraphQL subscriptions running now, over WebSocket and SSE",
  registers: [apiRegistry],
});

export const dispatchLatency = new Histogram({
  name: "videograph_job_dispatch_latency_seconds",
  help: "From when a job became due (created, or its retry's runAfter) to its message being published, by queue",
  labelNames: ["queue"] as const,
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
  registers: [apiRegistry],
});

export const webhookDeliveries = new Counter({
  name: "videograph_webhook_deliveries_total",
  help: "Webhook POSTs by outcome: delivered (2xx), failed (will be retried), abandoned (permanent or out of time)",
  labelNames: ["outcome"] as const,
  registers: [apiRegistry],
});

export const progressSamples = new Counter({
  name: "videograph_progress_samples_total",
  help: "Workers' progress samples taken over NOTIFY (embedded transport) by outcome: applied, superseded (a later one of the job came before it was applied), failed, malformed",
  labelNames: ["outcome"] as const,
  registers: [apiRegistry],
});

export const uploadBytes = new Counter({
  name: "videograph_upload_bytes_total",
  help: "Bytes of uploads completed (every way an upload completes: PUT to the API, S3, a GCS notification)",
  registers: [apiRegistry],
});

export const uploadsCompleted = new Counter({
  name: "videograph_uploads_completed_total",
  help: "Uploads completed and queued for transcoding",
  registers: [apiRegistry],
});

/** Live broadcasts whose publisher is connected to this instance (docs/live.md). */
export const liveBroadcasts = new Gauge({
  name: "videograph_live_broadcasts",
  help: "Live broadcasts whose publisher is connected to this API instance, by the ingest's protocol (rtmp, srt)",
  labelNames: ["protocol"] as const,
  registers: [apiRegistry],
});

export const liveFeedReplayBytes = new Gauge({
  name: "videograph_live_feed_replay_bytes",
  help: "Media the live feeds of this API instance hold that their encodes have not published yet (what a run taking a broadcast over starts from)",
  registers: [apiRegistry],
});

export const liveIngestBytes = new Counter({
  name: "videograph_live_ingest_bytes_total",
  help: "Bytes received from live publishers by this instance's RTMP and SRT ingests, by protocol (rtmp, srt)",
  labelNames: ["protocol"] as const,
  registers: [apiRegistry],
});

export const liveIngestClosed = new Counter({
  name: "videograph_live_ingest_connections_closed_total",
  help: "RTMP and SRT ingest connections closed, by protocol (rtmp, srt) and why: ended (the publisher ended its stream), dropped (its connection ended without that, or its broadcast ended first), refused (a key, a limit, a codec, a stall: the ingest closed it)",
  labelNames: ["protocol", "outcome"] as const,
  registers: [apiRegistry],
});

export const liveIngestSourceRefusals = new Counter({
  name: "videograph_live_ingest_source_refusals_total",
  help: "RTMP and SRT ingest connections refused for their source address (an IPv6 /64), by protocol (rtmp, srt) and limit: connections, handshakes (connections without an accepted key), key guesses (a source backed off after too many wrong keys)",
  labelNames: ["protocol", "limit"] as const,
  registers: [apiRegistry],
});

/** Live encodes' speed over real time, one sample per progress report (about a second) of each broadcast. */
export const liveEncodeSpeed = new Histogram({
  name: "videograph_live_encode_speed",
  help: "Live encodes' speed over real time, per progress report (below 1: the broadcast falls behind)",
  buckets: [0.5, 0.8, 0.9, 0.95, 1, 1.05, 1.2, 1.5, 2],
  registers: [apiRegistry],
});

/** How far broadcasts' newest published segments lag their wall clock: the viewer-facing delay's encoder part. */
export const liveBehindSeconds = new Histogram({
  name: "videograph_live_behind_seconds",
  help: "How far a live broadcast's newest published segment's end is behind its wall-clock time, per progress report",
  buckets: [1, 2, 3, 4, 6, 10, 20, 60],
  registers: [apiRegistry],
});

/**
 * What viewers' players report of their distance behind the newest segment they know of (analytics
 * beacons' `liveLatency`): the viewer-facing delay's player part. Glass-to-glass is about this plus
 * `videograph_live_behind_seconds`.
 */
export const liveViewerLatencySeconds = new Histogram({
  name: "videograph_live_viewer_latency_seconds",
  help: "How far behind the newest live segment it knows of a viewer's player shows, as its analytics beacons report it",
  buckets: [0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 20, 60],
  registers: [apiRegistry],
});

let jobCountSource: Db | null = null;

/** Jobs in the database by kind, queue and status, read when scraped. */
new Gauge({
  name: "videograph_jobs",
  help: "Jobs in the database by kind, queue (where the current attempt went, else its capability) and status",
  labelNames: ["kind", "queue", "status"] as const,
  registers: [apiRegistry],
  async collect() {
    this.reset();
    if (!jobCountSource) return;
    const rows = await jobCountSource.$queryRaw<{ kind: string; queue: string; status: string; count: bigint }[]>`
      SELECT kind::text AS kind, COALESCE("dispatchedTo", capability) AS queue, status::text AS status,
        count(*) AS count
      FROM "Job" GROUP BY 1, 2, 3`.catch(() => []);
    for (const r of rows) this.set({ kind: r.kind, queue: r.queue, status: r.status }, Number(r.count));
  },
});

/** Makes `videograph_jobs` count the jobs of this database (the API's own). */
export function countJobsIn(db: Db): void {
  jobCountSource = db;
}

/**
 * GraphQL durations, requests and errors through yoga's Prometheus plugin, without labels a client
 * chooses (operation names, URLs, error paths), and the subscriptions running now. Its own
 * `/metrics` route is off: the registry is served on METRICS_PORT only.
 */
export function graphqlMetricsPlugins(): Plugin[] {
  const prometheus = usePrometheus({
    registry: apiRegistry,
    endpoint: false,
    skipIntrospection: true,
    labels: { operationName: false, url: false, path: false, fieldName: false, typeName: false },
    metrics: {
      graphql_envelop_request: true,
      graphql_envelop_request_duration: true,
      graphql_envelop_request_time_summary: false,
      graphql_envelop_deprecated_field: false,
      graphql_envelop_phase_parse: true,
      graphql_envelop_phase_validate: true,
      graphql_envelop_phase_context: true,
      graphql_envelop_phase_execute: true,
      graphql_envelop_phase_subscribe: true,
      graphql_envelop_error_result: true,
      graphql_envelop_schema_change: false,
      graphql_envelop_execute_resolver: false,
      graphql_yoga_http_duration: true,
    },
  });
  const subscriptions: Plugin = {
    onSubscribe() {
      return {
        onSubscribeResult({ result }) {
          // An error result instead of a stream never runs, so it never ends either.
          if (!(Symbol.asyncIterator in result)) return;
          activeSubscriptions.inc();
          let ended = false;
          return {
            onEnd() {
              if (!ended) activeSubscriptions.dec();
              ended = true;
            },
          };
        },
      };
    },
  };
  return [prometheus, subscriptions];
}

/** Times the answer to `req` into videograph_http_request_duration_seconds once it is sent or abandoned. */
export function observeHttpRequest(req: IncomingMessage, res: ServerResponse, pathname: string): void {
  const end = httpRequestDuration.startTimer({ route: routeOf(pathname), method: methodLabel(req.method) });
  res.once("close", () => end({ status: String(res.statusCode) }));
}

/** The route family of a path: the only part of a URL that becomes a label. */
function routeOf(pathname: string): string {
  if (pathname === "/graphql") return "graphql";
  if (pathname.startsWith(MEDIA_PATH_PREFIX)) return "media";
  if (pathname.startsWith(UPLOAD_PATH_PREFIX)) return "upload";
  if (HEALTH_PATHS.includes(pathname)) return "health";
  return "other";
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "PATCH"];
/** A method outside the usual ones is "other": a client can send any token there. */
function methodLabel(method: string | undefined): string {
  return method && METHODS.includes(method) ? method : "other";
}
