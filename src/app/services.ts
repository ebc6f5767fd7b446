import pg from "pg";
import { analyticsSettings, createAnalytics } from "../analytics/analytics.ts";
import { createAuthenticator } from "../auth/authenticate.ts";
import { LiveCredentials } from "../auth/live-credentials.ts";
import { parseScopes } from "../auth/scopes.ts";
import type { Env } from "../config.ts";
import { costSettings } from "../costs/cost-settings.ts";
import type { AppServices } from "../context.ts";
import { createDb } from "../db/client.ts";
import { PostgresEventTarget } from "../events/postgres-event-target.ts";
import { createVideoPubSub } from "../events/video-events.ts";
import type { createMutationRateLimiter } from "../http/graphql-security.ts";
import { PlaybackTokens } from "../http/playback-tokens.ts";
import { tellWorkersToCancel } from "../jobs/cancel.ts";
import { createDispatcher } from "../jobs/dispatcher.ts";
import { createEventIngestor } from "../jobs/ingest-events.ts";
import { createQueueWatch } from "../jobs/queue-position.ts";
import { createBroadcastHolds } from "../live/broadcast-holds.ts";
import { createLiveStreams } from "../live/live-streams.ts";
import { DEFAULT_INGEST_LIMITS } from "../live/publisher.ts";
import { createRelayIngest } from "../live/relay.ts";
import { createRtmpIngest } from "../live/rtmp-ingest.ts";
import { createSourceLimits } from "../live/source-limits.ts";
import { srtGatewayBuilt } from "../live/srt-gateway-build.ts";
import { createSrtIngest } from "../live/srt-ingest.ts";
import { localMediaStorageFull } from "../live/storage-room.ts";
import { srtPassphrase, srtPassphraseKey } from "../live/stream-keys.ts";
import { log } from "../log.ts";
import { countJobsIn } from "../metrics.ts";
import { createApiStorage } from "../storage/api-storage.ts";
import { loadSigningSecret, UrlSigner } from "../storage/url-signer.ts";
import { createPostgresTransport } from "../transport/postgres.ts";
import { createUploadExpiry } from "../uploads/expire-uploads.ts";
import { createWebhookDeliverer } from "../webhooks/deliverer.ts";
import { createWebhookEmitter } from "../webhooks/events.ts";

/** Everything the API is made of: the services resolvers get, and the parts its routes and lifecycle use. */
export type AppParts = Awaited<ReturnType<typeof createServices>>;

/** Builds the API's services around one database; nothing starts or listens yet (the lifecycle does). */
export async function createServices(env: Env, databaseUrl: string) {
  const db = createDb(databaseUrl);
  const eventTarget = new PostgresEventTarget<never>(databaseUrl);
  const pubSub = createVideoPubSub(eventTarget);
  const signingSecret = await loadSigningSecret(env.SIGNING_SECRET, env.DATA_DIR);
  const signer = new UrlSigner(signingSecret);
  const playbackTokens = new PlaybackTokens(
    signingSecret,
    env.PLAYBACK_TOKEN_TTL_SECONDS,
    env.PLAYBACK_SESSION_SECONDS,
  );
  const authenticate = createAuthenticator(db, {
    jwks: env.JWT_JWKS ?? null,
    secret: env.JWT_SECRET ?? null,
    issuer: env.JWT_ISSUER,
    audience: env.JWT_AUDIENCE,
    tenantClaim: env.JWT_TENANT_CLAIM,
    allowedScopes: parseScopes(env.JWT_ALLOWED_SCOPES),
    maxLifetimeSeconds: env.JWT_MAX_LIFETIME_SECONDS,
  });
  const liveCredentials = new LiveCredentials(authenticate, env.AUTH_RECHECK_SECONDS);
  liveCredentials.listen(eventTarget);
  const rateLimits = {
    // A small pool of its own for the rate limiter's counters (Prisma's pool is not a pg.Pool).
    pool: new pg.Pool({ connectionString: databaseUrl, max: 4, connectionTimeoutMillis: 10_000 }),
    /** Null until the API has started (its table is made then). */
    limiter: null as Awaited<ReturnType<typeof createMutationRateLimiter>> | null,
  };
  // An idle client whose connection the server ends (a restart, a failover) must not crash the API.
  rateLimits.pool.on("error", (err) => log.warn("rate limiter connection lost", { err }));
  const publicUrl = env.PUBLIC_URL?.replace(/\/$/, "") ?? "";
  const storage = await createApiStorage(env, { publicUrl, signer });
  // The Pub/Sub SDK is imported only when configured: it weighs tens of MiB of resident memory.
  const transport =
    env.TRANSPORT === "pubsub"
      ? (await import("../transport/pubsub.ts")).createPubSubApiTransport({
          projectId: env.GOOGLE_CLOUD_PROJECT!,
          topicPrefix: env.PUBSUB_TOPIC_PREFIX,
          onJobQueueRecreated: (capability) =>
            void dispatcher.redispatch(capability).catch((err) => log.error("redispatch failed", { err })),
        })
      : createPostgresTransport({ connectionString: databaseUrl, stallSeconds: env.JOB_STALL_SECONDS });
  const dispatcher = createDispatcher({
    db,
    transport,
    segmentSeconds: env.HLS_SEGMENT_SECONDS,
    maxDurationSeconds: env.MAX_DURATION_SECONDS,
    urlImport: {
      maxBytes: env.URL_IMPORT_MAX_BYTES ?? env.MAX_UPLOAD_BYTES,
      allowPrivateAddresses: env.URL_IMPORT_ALLOW_PRIVATE,
    },
    vanishedAfterSeconds: 3 * env.JOB_STALL_SECONDS,
    fallback: env.LOCAL_FALLBACK ? { afterSeconds: env.FALLBACK_AFTER_SECONDS } : null,
    chunking:
      env.CHUNK_SECONDS > 0 ? { chunkSeconds: env.CHUNK_SECONDS, firstChunkSeconds: env.FIRST_CHUNK_SECONDS } : null,
    gpuRouting: {
      mode: env.GPU_ROUTING,
      fallbackAfterSeconds: env.GPU_FALLBACK_AFTER_SECONDS,
      minSourceSeconds: env.GPU_MIN_SOURCE_SECONDS,
      minHeight: env.GPU_MIN_HEIGHT,
    },
  });
  const deliverer = createWebhookDeliverer({
    db,
    timeoutMs: env.WEBHOOK_TIMEOUT_MS,
    retryBaseSeconds: env.WEBHOOK_RETRY_BASE_SECONDS,
    allowPrivateUrls: env.WEBHOOK_ALLOW_PRIVATE_URLS,
  });
  const uploadExpiry = createUploadExpiry({
    db,
    storage,
    pubSub,
    graceSeconds: env.UPLOAD_EXPIRY_GRACE_SECONDS,
    uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS,
  });
  const webhooks = createWebhookEmitter({ retryHours: env.WEBHOOK_RETRY_HOURS, onQueued: () => deliverer.kick() });
  const costs = costSettings(env);
  // A worker counts as serving its queues' estimates until its jobs would stall: routing waits
  // longer (3 × JOB_STALL_SECONDS) before it takes one for gone, but nothing starts on it meanwhile.
  const queueWatch = createQueueWatch({
    db,
    pubSub,
    aliveWithinSeconds: env.JOB_STALL_SECONDS,
    gpuFallback:
      env.GPU_ROUTING === "off"
        ? undefined
        : { afterSeconds: env.GPU_FALLBACK_AFTER_SECONDS, silentAfterSeconds: env.JOB_STALL_SECONDS },
  });
  // Set once the API and the ingest listen: where workers read feeds, and what publishers are told.
  const addresses = { api: "", rtmp: "", srt: null as string | null };
  // Which instance holds each broadcast, a dead one's let go by Postgres with its session.
  const holds = createBroadcastHolds({ connectionString: databaseUrl, onLost: (videoId) => live.dropFeed(videoId) });
  const live = createLiveStreams({
    db,
    pubSub,
    dispatcher,
    signer,
    storage,
    stopRun: (jobId, attempt, workerId, runId) => tellWorkersToCancel(transport, jobId, attempt, workerId, runId),
    ...(transport.withdrawJob ? { withdrawJob: transport.withdrawJob.bind(transport) } : {}),
    ...(env.STORAGE === "local" ? { storageFull: () => localMediaStorageFull(env.DATA_DIR) } : {}),
    holds,
    costs,
    webhooks,
    target: eventTarget,
    settings: {
      segmentSeconds: env.LIVE_SEGMENT_SECONDS,
      lowLatencySegmentSeconds: env.LIVE_LOW_LATENCY_SEGMENT_SECONDS,
      maxStreamsPerTenant: env.LIVE_MAX_STREAMS_PER_TENANT,
      maxMinutesPerTenantMonth: env.LIVE_MAX_MINUTES_PER_TENANT_MONTH ?? null,
      maxDurationSeconds: env.LIVE_MAX_DURATION_SECONDS,
      reconnectGraceSeconds: env.LIVE_RECONNECT_GRACE_SECONDS,
      workerAliveSeconds: 3 * env.JOB_STALL_SECONDS,
      feedBaseUrl: () => (env.LIVE_FEED_URL ?? env.PUBLIC_URL ?? addresses.api).replace(/\/$/, ""),
    },
  });
  const ingestLimits = {
    ...DEFAULT_INGEST_LIMITS,
    maxBitrate: env.LIVE_MAX_BITRATE,
    stallSeconds: env.LIVE_STALL_SECONDS,
    maxConnections: env.LIVE_MAX_CONNECTIONS,
  };
  const passphraseKey = srtPassphraseKey(signingSecret);
  // One account of each source for both ingests: a source's connections and wrong keys count across them.
  const sources = createSourceLimits({
    maxConnectionsPerSource: env.LIVE_MAX_CONNECTIONS_PER_SOURCE,
    maxHandshakesPerSource: env.LIVE_MAX_HANDSHAKES_PER_SOURCE,
    maxKeyFailuresPerSource: env.LIVE_MAX_KEY_FAILURES_PER_SOURCE,
  });
  const rtmpIngest = env.LIVE_RTMP_PORT === "off" ? null : createRtmpIngest(live.sessions, ingestLimits, sources);
  const srtIngest =
    env.LIVE_SRT_PORT === "off" || !srtGatewayBuilt()
      ? null
      : createSrtIngest(live.sessions, ingestLimits, sources, { latencyMs: env.LIVE_SRT_LATENCY_MS, passphraseKey });
  // A publisher reconnecting to another instance is relayed here while this one holds its broadcast.
  const relayIngest = createRelayIngest({
    resumeSessions: (videoId) => live.resumeSessions(videoId),
    limits: ingestLimits,
    signer,
  });
  const ingestor = createEventIngestor({
    live,
    db,
    storage,
    pubSub,
    webhooks,
    costs,
    queueWatch,
    progressWriteIntervalMs: env.PROGRESS_WRITE_INTERVAL_MS,
    onJobRequeued: (runAfter) => dispatcher.kickAt(runAfter),
    onCanceledJobReported: (jobId, attempt, workerId, runId) =>
      tellWorkersToCancel(transport, jobId, attempt, workerId, runId),
    stallSeconds: env.JOB_STALL_SECONDS,
  });
  const analytics = createAnalytics({
    databaseUrl,
    signingSecret,
    playbackTokens,
    eventTarget,
    settings: analyticsSettings(env),
  });
  const services: AppServices = {
    db,
    analytics,
    storage,
    live: {
      ...live,
      ingestUrl: () => env.LIVE_RTMP_URL ?? addresses.rtmp,
      srtIngestUrl: () => (addresses.srt === null ? null : (env.LIVE_SRT_URL ?? addresses.srt)),
      srtPassphrase: (key) => srtPassphrase(passphraseKey, key),
    },
    signer,
    playbackTokens,
    pubSub,
    dispatcher,
    transport,
    publicUrl,
    maxUploadBytes: env.MAX_UPLOAD_BYTES,
    uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS,
    maxAttempts: env.JOB_MAX_ATTEMPTS,
    costs,
    queueWatch,
    gemini: { apiKey: env.GEMINI_API_KEY, model: env.GEMINI_MODEL, baseUrl: env.GEMINI_BASE_URL },
    urlImport: { allowPrivateAddresses: env.URL_IMPORT_ALLOW_PRIVATE },
    apiKeys: { maxActivePerTenant: env.API_KEYS_MAX_PER_TENANT },
    videoSearch: { titleTimeoutMs: env.VIDEO_SEARCH_TIMEOUT_MS },
    webhooks: {
      allowPrivateUrls: env.WEBHOOK_ALLOW_PRIVATE_URLS,
      retryHours: env.WEBHOOK_RETRY_HOURS,
      maxEndpointsPerTenant: env.WEBHOOK_MAX_ENDPOINTS_PER_TENANT,
      kick: () => deliverer.kick(),
    },
  };

  const notifications = env.GCS_NOTIFICATION_SUBSCRIPTION
    ? (await import("../uploads/gcs-notifications.ts")).createUploadNotificationListener({
        subscription: env.GCS_NOTIFICATION_SUBSCRIPTION,
        projectId: env.GOOGLE_CLOUD_PROJECT,
        bucket: env.GCS_BUCKET ?? null,
        deps: services,
      })
    : null;
  if (env.METRICS_PORT !== undefined) countJobsIn(db);

  return {
    services,
    /** The same as services.storage, with its adapter's type: whether it takes uploads through the API. */
    storage,
    eventTarget,
    authenticate,
    liveCredentials,
    rateLimits,
    deliverer,
    uploadExpiry,
    holds,
    ingestor,
    ingests: { rtmp: rtmpIngest, srt: srtIngest, relay: relayIngest },
    notifications,
    addresses,
  };
}
