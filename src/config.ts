import { z } from "zod";
import { isScope } from "./auth/scopes.ts";
import { DEFAULT_COST_SETTINGS, DEFAULT_CPU_TABLE, DEFAULT_PRICES } from "./costs/cost-model.ts";
import { checkSharedEnv, envFlag, listenHost, parseEnv, sharedEnvShape } from "./shared/env.ts";
import { LOG_FORMATS, LOG_LEVELS } from "./shared/log.ts";

/** Every environment variable the API reads; `.env.template` documents each one. */
const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: listenHost.default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  PUBLIC_URL: z.url().optional(),
  /** Origins whose pages may call /graphql (comma-separated), or `*`; never with credentials. */
  CORS_ORIGINS: z
    .string()
    .default("*")
    .transform((v) =>
      v
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .refine(
      (list) => list.every((o) => o === "*" || (!o.includes("*") && URL.canParse(o) && new URL(o).origin === o)),
      "a comma-separated list of origins (https://app.example.com) or *",
    ),
  MAX_UPLOAD_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(5 * 1024 ** 3),
  MULTIPART_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(100 * 1024 ** 2),
  GRAPHQL_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 ** 2),
  UPLOAD_URL_TTL_SECONDS: z.coerce
    .number()
    .int()
    .positive()
    .default(24 * 3600),
  /**
   * How long an idle kept-alive HTTP connection stays open. Above Google Cloud's load balancer's own
   * 600 s, as it asks of its backends: a backend that closes a connection first races the request the
   * balancer (or any client reusing its connection) is sending on it, which then fails.
   */
  HTTP_KEEP_ALIVE_SECONDS: z.coerce.number().int().min(1).max(3600).default(620),
  /** An upload chunk whose bytes stop arriving for this long is cut off; the client resumes from what arrived. */
  UPLOAD_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(30),
  /** An upload whose URL expired this long ago without its last byte is canceled and its pieces deleted. */
  UPLOAD_EXPIRY_GRACE_SECONDS: z.coerce.number().int().min(0).default(3600),
  SIGNING_SECRET: z.string().min(32).optional(),
  ...sharedEnvShape,
  GCS_NOTIFICATION_SUBSCRIPTION: z.string().min(1).optional(),
  LOCAL_WORKER: envFlag.default(true),
  INGEST_EVENTS: envFlag.default(true),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  JOB_STALL_SECONDS: z.coerce.number().int().min(10).default(30),
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).default(30),
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  HLS_SEGMENT_SECONDS: z.coerce.number().min(1).max(10).default(4),
  MAX_DURATION_SECONDS: z.coerce
    .number()
    .positive()
    .default(6 * 3600),
  PROGRESS_WRITE_INTERVAL_MS: z.coerce.number().int().min(0).default(2000),
  GRAPHIQL: envFlag.optional(),
  /**
   * An admin key (all scopes, tenant "default") to make sure of at start, for automation; else one is created and
   * printed on first start.
   */
  BOOTSTRAP_API_KEY: z.string().min(24).startsWith("vg_").optional(),
  /** Viewers' JWTs: the identity provider's JWKS (URL or JSON), or a shared HS256 secret. */
  JWT_JWKS: z.string().min(1).optional(),
  JWT_SECRET: z.string().min(32).optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  JWT_TENANT_CLAIM: z.string().min(1).default("tenant_id"),
  JWT_ALLOWED_SCOPES: z.string().default("videos:read"),
  /** How often a live subscription's credential is checked again (revoked API keys also end it at once). */
  AUTH_RECHECK_SECONDS: z.coerce.number().int().min(1).default(60),
  /** graphql-ws connections one API process accepts; more are closed with 1013 (Try Again Later). */
  WS_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(20_000),
  /** Bytes a graphql-ws connection may have waiting to be sent; a client that lets more pile up is closed (4008). */
  WS_MAX_BUFFERED_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(256 * 1024),
  /** JWTs that live longer than this (exp - iat, or exp - now without iat) are refused. */
  JWT_MAX_LIFETIME_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(24 * 3600),
  PLAYBACK_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .max(7 * 24 * 3600)
    .default(900),
  PLAYBACK_SESSION_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(4 * 3600),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  WEBHOOK_RETRY_BASE_SECONDS: z.coerce.number().min(0.1).default(30),
  WEBHOOK_RETRY_HOURS: z.coerce.number().positive().default(24),
  /** Lets webhooks reach private and loopback addresses (tests, a CMS on the same host). */
  WEBHOOK_ALLOW_PRIVATE_URLS: envFlag.default(false),
  WEBHOOK_MAX_ENDPOINTS_PER_TENANT: z.coerce.number().int().min(1).default(20),
  /** API keys a tenant may hold at once (neither revoked nor expired); createApiKey refuses more. */
  API_KEYS_MAX_PER_TENANT: z.coerce.number().int().min(1).default(100),
  GRAPHQL_INTROSPECTION: envFlag.optional(),
  GRAPHQL_MAX_DEPTH: z.coerce.number().int().min(2).default(12),
  GRAPHQL_MAX_COST: z.coerce.number().int().min(10).default(5000),
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().min(1).default(20),
  GRAPHQL_MAX_TOKENS: z.coerce.number().int().min(50).default(2000),
  RATE_LIMIT_MUTATIONS_PER_MINUTE: z.coerce.number().int().min(1).default(300),
  /** The longest a `videos` title search's statement may run before it is stopped (SEARCH_TIMEOUT). */
  VIDEO_SEARCH_TIMEOUT_MS: z.coerce.number().int().min(1).max(60_000).default(500),
  /**
   * Reverse proxies (load balancers) in front of the API that append to X-Forwarded-For; 0: the
   * peer address is the client's. Per-client limits (images made on request) key on the result.
   */
  TRUST_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
  /** Viewer analytics (docs/analytics.md): days raw views are kept (rollups are kept). */
  ANALYTICS_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  /** How long a view token lets a player send beacons for its view. */
  ANALYTICS_VIEW_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(6 * 3600),
  /** Largest body the collection endpoint reads. */
  ANALYTICS_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1024 ** 2)
    .default(16 * 1024),
  /** Beacon batches one view may send per minute, and analytics requests one client address may make per minute. */
  ANALYTICS_BATCHES_PER_VIEW_PER_MINUTE: z.coerce.number().int().min(1).default(30),
  ANALYTICS_REQUESTS_PER_CLIENT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** `viewersNow` counts views with a beacon in this many seconds. */
  ANALYTICS_VIEWERS_NOW_SECONDS: z.coerce.number().int().min(5).max(3600).default(30),
  /**
   * Live streams (docs/live.md): the RTMP ingest's port (0: any free port; `off`: no ingest) and
   * address (default HOST, liveIngestHosts).
   */
  LIVE_RTMP_PORT: z.union([z.literal("off"), z.coerce.number().int().min(0).max(65535)]).default(1935),
  LIVE_RTMP_HOST: listenHost.optional(),
  /** The ingest URL publishers are told (OBS's "Server"); default rtmp://localhost:{port}/live. */
  LIVE_RTMP_URL: z
    .string()
    .regex(/^rtmps?:\/\/[^\s]+$/)
    .optional(),
  /**
   * The SRT ingest's UDP port (0: any free port; `off`: no SRT ingest) and address. It needs the
   * gateway `npm run setup:srt` builds; without it the API runs with RTMP ingest only and says so.
   */
  LIVE_SRT_PORT: z.union([z.literal("off"), z.coerce.number().int().min(0).max(65535)]).default(9000),
  LIVE_SRT_HOST: listenHost.optional(),
  /** The SRT address publishers are told; default srt://localhost:{port}. */
  LIVE_SRT_URL: z
    .string()
    .regex(/^srt:\/\/[^\s?]+$/)
    .optional(),
  /** SRT's receiver latency offered to callers (ms): what a lost packet may take to be sent again. */
  LIVE_SRT_LATENCY_MS: z.coerce.number().int().min(20).max(10_000).default(200),
  /** Where workers read a broadcast's feed from this API; default PUBLIC_URL, else its own address. */
  LIVE_FEED_URL: z.url().optional(),
  /**
   * Where broadcasts' feeds keep what their encode has not published on this instance's disk, for the
   * instance restarted after a crash (default DATA_DIR/live-spool; `off`: memory only).
   */
  LIVE_SPOOL_DIR: z.string().min(1).optional(),
  /** Simulcast targets one live stream may have (docs/live.md, "Simulcast"). */
  LIVE_SIMULCAST_MAX_TARGETS: z.coerce.number().int().min(0).max(64).default(5),
  /** Broadcasts a tenant may have at once. */
  LIVE_MAX_STREAMS_PER_TENANT: z.coerce.number().int().min(1).max(1000).default(5),
  /**
   * A tenant's broadcast minutes per calendar month (UTC), on air at once or one after another;
   * unset: no monthly quota. A broadcast starts only with time left, and stops when it runs out.
   */
  LIVE_MAX_MINUTES_PER_TENANT_MONTH: z.coerce.number().positive().max(10_000_000).optional(),
  /** The longest broadcast; its encode stops there. At most 6 h: the longest a job's lease is renewed. */
  LIVE_MAX_DURATION_SECONDS: z.coerce.number().int().min(60).max(21_600).default(14_400),
  /** The highest input bit rate a publisher may send, over 5 s. */
  LIVE_MAX_BITRATE: z.coerce.number().int().min(100_000).max(200_000_000).default(20_000_000),
  /** A publisher that reconnects within this continues its broadcast (the same video); after it the broadcast ends. */
  LIVE_RECONNECT_GRACE_SECONDS: z.coerce.number().int().min(0).max(120).default(30),
  /** Connections each ingest (RTMP, SRT) holds at once (publishing or still handshaking); more are refused. */
  LIVE_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(100_000).default(200),
  /** Connections one source address (an IPv6 /64) may hold at once, RTMP and SRT together. */
  LIVE_MAX_CONNECTIONS_PER_SOURCE: z.coerce.number().int().min(1).max(100_000).default(8),
  /** Of those, connections whose stream key has not been accepted yet. */
  LIVE_MAX_HANDSHAKES_PER_SOURCE: z.coerce.number().int().min(1).max(100_000).default(4),
  /** Wrong stream keys one source may send in a minute; past it, its publishes are refused for a minute, doubling. */
  LIVE_MAX_KEY_FAILURES_PER_SOURCE: z.coerce.number().int().min(1).max(100_000).default(10),
  /** A publisher that sends nothing for this long is disconnected. */
  LIVE_STALL_SECONDS: z.coerce.number().int().min(2).max(600).default(10),
  /** Segment lengths of the STANDARD and LOW latency modes. */
  LIVE_SEGMENT_SECONDS: z.coerce.number().min(1).max(10).default(2),
  LIVE_LOW_LATENCY_SEGMENT_SECONDS: z.coerce.number().min(1).max(10).default(1),
  /**
   * How far back viewers of a broadcast on air can seek: its rung playlists list the last this many
   * seconds (a sliding window). 0: the whole broadcast. The recording keeps every segment either way.
   */
  LIVE_DVR_WINDOW_SECONDS: z.coerce
    .number()
    .int()
    .refine((s) => s === 0 || (s >= 10 && s <= 21_600), { message: "0, or 10 to 21600 seconds" })
    .default(1800),
  /** Bytes of images made on request (thumbnails, animated previews) cached per video, and per tenant. */
  IMAGE_CACHE_BYTES_PER_VIDEO: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(64 * 1024 ** 2),
  IMAGE_CACHE_BYTES_PER_TENANT: z.coerce
    .number()
    .int()
    .min(0)
    .default(5 * 1024 ** 3),
  /** Send a job to the API's own worker when no worker with its capability heartbeated for FALLBACK_AFTER_SECONDS. */
  LOCAL_FALLBACK: envFlag.default(false),
  FALLBACK_AFTER_SECONDS: z.coerce.number().int().min(1).default(60),
  /** `prefer`: transcodes go to the nvenc queue while a worker advertising nvenc is alive; `off`: all on cpu. */
  GPU_ROUTING: z.enum(["off", "prefer"]).default("prefer"),
  /** A transcode no GPU worker took within this many seconds goes to cpu. */
  GPU_FALLBACK_AFTER_SECONDS: z.coerce.number().int().min(1).default(60),
  /** Sources known to be shorter (seconds) or smaller (height in pixels) stay on cpu. */
  GPU_MIN_SOURCE_SECONDS: z.coerce.number().min(0).default(0),
  GPU_MIN_HEIGHT: z.coerce.number().int().min(0).default(0),
  /**
   * Split a transcode into time chunks of about this many seconds that other cpu workers encode,
   * while two or more cpu workers have free slots (docs/chunked-transcoding.md, "The default": 60 s
   * keeps each chunk's pre-roll to a few percent of its work); 0: off, every transcode is one run.
   * A source no longer than one chunk is never split.
   */
  CHUNK_SECONDS: z.coerce
    .number()
    .refine((s) => s === 0 || (s >= 2 && s <= 3600), "0 (off) or 2 to 3600")
    .default(60),
  /** The first chunk of a split transcode, about this long: it makes the video playable, so it is short. */
  FIRST_CHUNK_SECONDS: z.coerce.number().min(1).max(3600).default(10),
  /** Largest file createVideoFromUrl downloads (default MAX_UPLOAD_BYTES). */
  URL_IMPORT_MAX_BYTES: z.coerce.number().int().positive().optional(),
  /** Test-only: lets createVideoFromUrl reach private and loopback addresses. */
  URL_IMPORT_ALLOW_PRIVATE: envFlag.default(false),
  GEMINI_API_KEY: z.string().min(1).optional(),
  GEMINI_MODEL: z.string().min(1).default("gemini-3.5-flash"),
  /** Where the Gemini API is (tests point it at a stand-in). */
  GEMINI_BASE_URL: z.url().default("https://generativelanguage.googleapis.com"),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  /** `auto`: readable lines when stderr is a terminal, JSON otherwise (src/shared/log.ts reads it). */
  LOG_FORMAT: z.enum(LOG_FORMATS).default("auto"),
  /** Serves Prometheus metrics on this port (0: a free one); unset: no metrics are collected or served. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** The metrics listener's address: loopback by default, so only the machine (or a sidecar) can scrape. */
  METRICS_HOST: listenHost.default("127.0.0.1"),
  METRICS_PATH: z
    .string()
    .regex(/^\/[\w./-]*$/, "a path such as /metrics")
    .default("/metrics"),
  /** Prices of job costs in USD (defaults: Google's list prices, src/costs/cost-model.ts DEFAULT_PRICES). */
  COST_VCPU_SECOND_USD: z.coerce.number().min(0).default(DEFAULT_PRICES.vcpuSecondUsd),
  COST_GIB_SECOND_USD: z.coerce.number().min(0).default(DEFAULT_PRICES.gibSecondUsd),
  COST_L4_GPU_SECOND_USD: z.coerce.number().min(0).default(DEFAULT_PRICES.l4GpuSecondUsd),
  COST_STORAGE_GB_MONTH_USD: z.coerce.number().min(0).default(DEFAULT_PRICES.storageGbMonthUsd),
  COST_EGRESS_GB_USD: z.coerce.number().min(0).default(DEFAULT_PRICES.egressGbUsd),
  /** The CPU table of cost estimates (defaults: `npm run bench`, src/costs/cost-model.ts DEFAULT_CPU_TABLE). */
  COST_X264_CPU_SECONDS_PER_MEGAPIXEL_MINUTE: z.coerce
    .number()
    .positive()
    .default(DEFAULT_CPU_TABLE.x264PerMegapixelMinute),
  COST_DECODE_CPU_SECONDS_PER_MEGAPIXEL_MINUTE: z.coerce
    .number()
    .positive()
    .default(DEFAULT_CPU_TABLE.decodePerMegapixelMinute),
  COST_JOB_OVERHEAD_CPU_SECONDS: z.coerce.number().min(0).default(DEFAULT_CPU_TABLE.jobOverheadCpuSeconds),
  COST_WORKER_VCPUS: z.coerce.number().positive().default(DEFAULT_COST_SETTINGS.workerVcpus),
  COST_JOB_MEMORY_GIB: z.coerce.number().min(0).default(DEFAULT_COST_SETTINGS.jobMemoryGib),
  COST_ASSUMED_SOURCE_BITRATE: z.coerce.number().positive().default(DEFAULT_COST_SETTINGS.assumedSourceBitrate),
  COST_NVENC_REALTIME_SPEED: z.coerce.number().positive().default(DEFAULT_COST_SETTINGS.nvencRealtimeSpeed),
});

export type Env = Readonly<z.infer<typeof EnvSchema>>;

/** Where the live ingests listen: LIVE_RTMP_HOST and LIVE_SRT_HOST, else HOST (an operator who keeps the API to this machine keeps its ingest there too). */
export function liveIngestHosts(env: Env): { rtmp: string; srt: string } {
  return { rtmp: env.LIVE_RTMP_HOST ?? env.HOST, srt: env.LIVE_SRT_HOST ?? env.HOST };
}

const CheckedEnvSchema = EnvSchema.superRefine((env, ctx) => {
  checkSharedEnv(env, ctx);
  if (env.JWT_JWKS && env.JWT_SECRET) {
    ctx.addIssue({ code: "custom", path: ["JWT_SECRET"], message: "set JWT_JWKS or JWT_SECRET, not both" });
  }
  for (const name of env.JWT_ALLOWED_SCOPES.split(/[\s,]+/).filter(Boolean)) {
    if (!isScope(name))
      ctx.addIssue({ code: "custom", path: ["JWT_ALLOWED_SCOPES"], message: `unknown scope ${name}` });
  }
  if (
    env.GCS_NOTIFICATION_SUBSCRIPTION &&
    !env.GCS_NOTIFICATION_SUBSCRIPTION.startsWith("projects/") &&
    !env.GOOGLE_CLOUD_PROJECT
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["GOOGLE_CLOUD_PROJECT"],
      message: "required with GCS_NOTIFICATION_SUBSCRIPTION, unless that is a full projects/…/subscriptions/… name",
    });
  }
});

/** Parses the environment once; lists every invalid variable before the process exits. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  return parseEnv(CheckedEnvSchema, source, "configuration");
}
