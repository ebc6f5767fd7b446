import pg from "pg";
import { analyticsSettings, createAnalytics } from "../analytics/analytics.ts";
import { createAuthenticator } from "../auth/authenticate.ts";
import { LiveCredentials } from "../auth/live-credentials.ts";
import { parseScopes } from "../auth/scopes.ts";
import type { Env } from "../config.ts";
import { costSettings } from "../costs/cost-settings.ts";
import type { AppServices } from "../context.ts";
import { createDb, type Db } from "../db/client.ts";
import { PostgresEventTarget } from "../events/postgres-event-target.ts";
import { createVideoPubSub } from "../events/video-events.ts";
import type { createMutationRateLimiter } from "../http/graphql-security.ts";
import { PlaybackTokens } from "../http/playback-tokens.ts";
import { ContentKeys } from "../content-protection/content-keys.ts";
import { tellWorkersToCancel } from "../jobs/cancel.ts";
import { createDispatcher, type Dispatcher } from "../jobs/dispatcher.ts";
import { createEventIngestor } from "../jobs/ingest-events.ts";
import { createQueueWatch } from "../jobs/queue-position.ts";
import { log } from "../log.ts";
import { countJobsIn } from "../metrics.ts";
import { createApiStorage } from "../storage/api-storage.ts";
import { loadSigningSecret, UrlSigner } from "../storage/url-signer.ts";
import { createPostgresTransport } from "../transport/postgres.ts";
import type { ApiTransport } from "../transport/types.ts";
import { createUploadExpiry } from "../uploads/expire-uploads.ts";
import { createWebhookDeliverer } from "../webhooks/deliverer.ts";
import { createWebhookEmitter } from "../webhooks/events.ts";
import { createLiveParts } from "./live-services.ts";

/** Everything the API is made of: the services resolvers get, and the parts its routes and lifecycle use. */
export type AppParts = Awaited<ReturnType<typeof createServices>>;

/** Builds the API's services around one database; nothing starts or listens yet (the lifecycle does). */
export async function createServices(env: Env, databaseUrl: string) {
  const db = createDb(databaseUrl);
  const eventTarget = new PostgresEventTarget<never>(databaseUrl);
  const pubSub = createVideoPubSub(eventTarget);
  const signingSecret = await loadSigningSecret(env.SIGNING_SECRET, env.DATA_DIR);
  const signer = new UrlSigner(signingSecret);
  const access = createAccess(env, db, eventTarget, signingSecret, databaseUrl);
  const publicUrl = env.PUBLIC_URL?.replace(/\/$/, "") ?? "";
  const storage = await createApiStorage(env, { publicUrl, signer });
  const { transport, dispatcher } = await createJobQueue(env, db, databaseUrl, access.contentKeys);
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
  const live = createLiveParts(env, {
    db,
    pubSub,
    dispatcher,
    transport,
    signer,
    signingSecret,
    storage,
    costs,
    webhooks,
    eventTarget,
    databaseUrl,
    addresses,
  });
  const ingestor = createEventIngestor({
    live: live.live,
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
    clock: Date.now,
  });
  const analytics = createAnalytics({
    databaseUrl,
    signingSecret,
    playbackTokens: access.playbackTokens,
    eventTarget,
    settings: analyticsSettings(env),
  });
  const services: AppServices = {
    db,
    analytics,
    storage,
    live: live.service,
    signer,
    playbackTokens: access.playbackTokens,
    contentKeys: access.contentKeys,
    pubSub,
    dispatcher,
    transport,
    publicUrl,
    costs,
    queueWatch,
    ...settingsOfServices(env),
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
    authenticate: access.authenticate,
    liveCredentials: access.liveCredentials,
    rateLimits: access.rateLimits,
    deliverer,
    uploadExpiry,
    holds: live.holds,
    spools: live.spools,
    ingestor,
    ingests: live.ingests,
    notifications,
    addresses,
  };
}

/** Who may ask: API keys and JWTs, credentials re-checked on live connections, playback tokens, rate limits. */
function createAccess(
  env: Env,
  db: Db,
  eventTarget: PostgresEventTarget<never>,
  signingSecret: string,
  databaseUrl: string,
) {
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
  return { playbackTokens, contentKeys: new ContentKeys(signingSecret), authenticate, liveCredentials, rateLimits };
}

/** The job transport TRANSPORT names and the dispatcher that publishes on it. */
async function createJobQueue(
  env: Env,
  db: Db,
  databaseUrl: string,
  contentKeys: ContentKeys,
): Promise<{ transport: ApiTransport; dispatcher: Dispatcher }> {
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
    contentKeys,
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
  return { transport, dispatcher };
}

/** The plain settings resolvers read from `AppServices`. */
function settingsOfServices(env: Env) {
  return {
    maxUploadBytes: env.MAX_UPLOAD_BYTES,
    uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS,
    maxAttempts: env.JOB_MAX_ATTEMPTS,
    gemini: { apiKey: env.GEMINI_API_KEY, model: env.GEMINI_MODEL, baseUrl: env.GEMINI_BASE_URL },
    urlImport: { allowPrivateAddresses: env.URL_IMPORT_ALLOW_PRIVATE },
    apiKeys: { maxActivePerTenant: env.API_KEYS_MAX_PER_TENANT },
    videoSearch: { titleTimeoutMs: env.VIDEO_SEARCH_TIMEOUT_MS },
  };
}
