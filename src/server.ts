import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import pg from "pg";
import { analyticsSettings, createAnalytics } from "./analytics/analytics.ts";
import { bootstrapAdminKey } from "./auth/api-keys.ts";
import { createAuthenticator } from "./auth/authenticate.ts";
import { createCaptionCatalog } from "./captions/subtitle-playlists.ts";
import { LiveCredentials } from "./auth/live-credentials.ts";
import { parseScopes, type Principal, SCOPES } from "./auth/scopes.ts";
import { type Env, liveIngestHosts } from "./config.ts";
import { costSettings } from "./costs/cost-settings.ts";
import type { AppServices, Context } from "./context.ts";
import { createDb } from "./db/client.ts";
import { applyMigrations } from "./db/migrate.ts";
import { PostgresEventTarget } from "./events/postgres-event-target.ts";
import { createVideoPubSub } from "./events/video-events.ts";
import { CONSOLE_DIST, createConsoleHandler } from "./http/console.ts";
import { graphqlCors } from "./http/cors.ts";
import { createMutationRateLimiter, graphqlSecurityPlugins, maskApiError } from "./http/graphql-security.ts";
import { authorizationParam, serveGraphqlOverWebSocket } from "./http/graphql-ws.ts";
import { serveHealthPath } from "./http/health.ts";
import { startMetricsServer, type MetricsServer } from "./http/metrics-server.ts";
import { createLivePlaylists } from "./http/live-playlists.ts";
import { handleMedia } from "./http/media.ts";
import { dropBodyLeftAfterAnswer } from "./shared/refused-body.ts";
import { traceRequest } from "./http/request-trace.ts";
import { sharedSubscriptionResults } from "./http/shared-subscription-results.ts";
import { graphiqlPage, renderOfflineGraphiQL } from "./http/graphiql.ts";
import { createPlaybackGuard } from "./http/playback-guard.ts";
import { createVideoImageRoute } from "./http/video-images.ts";
import { PlaybackTokens } from "./http/playback-tokens.ts";
import { tellWorkersToCancel } from "./jobs/cancel.ts";
import { createDispatcher } from "./jobs/dispatcher.ts";
import { createEventIngestor } from "./jobs/ingest-events.ts";
import { createBroadcastHolds } from "./live/broadcast-holds.ts";
import { createLiveStreams } from "./live/live-streams.ts";
import { localMediaStorageFull } from "./live/storage-room.ts";
import { DEFAULT_INGEST_LIMITS } from "./live/publisher.ts";
import { createRtmpIngest, RTMP_APP } from "./live/rtmp-ingest.ts";
import { createRelayIngest } from "./live/relay.ts";
import { srtGatewayBuilt } from "./live/srt-gateway-build.ts";
import { createSrtIngest } from "./live/srt-ingest.ts";
import { createSourceLimits } from "./live/source-limits.ts";
import { srtPassphrase, srtPassphraseKey } from "./live/stream-keys.ts";
import { createQueueWatch } from "./jobs/queue-position.ts";
import { log, yogaLog } from "./log.ts";
import { countJobsIn, graphqlMetricsPlugins, observeHttpRequest } from "./metrics.ts";
import { ListenerFailed, type ListenerNames, listenOn } from "./shared/listen.ts";
import { schema } from "./schema/index.ts";
import { createApiStorage } from "./storage/api-storage.ts";
import { MEDIA_PATH_PREFIX, UPLOAD_PATH_PREFIX } from "./storage/api-urls.ts";
import { loadSigningSecret, UrlSigner } from "./storage/url-signer.ts";
import { createPostgresTransport } from "./transport/postgres.ts";
import { createUploadExpiry } from "./uploads/expire-uploads.ts";
import { handleUpload } from "./uploads/upload-put.ts";
import { createWebhookDeliverer } from "./webhooks/deliverer.ts";
import { createWebhookEmitter } from "./webhooks/events.ts";

/** What yoga builds a context from: an HTTP request, or a WebSocket's connection_init payload. */
type ContextInput = { request?: Request; connectionParams?: Record<string, unknown>; principal?: Principal };

export interface App {
  /** The yoga instance, so tests can call `yoga.fetch` without a port. */
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  services: AppServices;
  /**
   * Applies migrations, connects the transport and listens; resolves with the bound port (and
   * metrics URL). `beforeListen` runs once jobs and events flow, before the first request.
   */
  start(options?: {
    beforeListen?: () => Promise<void>;
  }): Promise<{ port: number; url: string; metricsUrl: string | null }>;
  /**
   * Closes every graphql-ws socket at once with 1001 (going away) and takes no new ones, so
   * subscribers reconnect to another instance (or this one restarted) while jobs and HTTP drain.
   * The first step of a shutdown; `stop` does it too.
   */
  closeSubscriptions(): Promise<void>;
  /**
   * Closes the live ingest and hands this instance's broadcasts on (their runs stopped, their jobs
   * waiting for their publishers' reconnect to any API instance), so a worker's run ends in seconds,
   * not at its shutdown grace, and a deploy does not end a broadcast. A shutdown's step before the
   * local worker's; `stop` does it too.
   */
  stopLiveIngest(): Promise<void>;
  /** Stops in a fixed order: WebSockets, live ingest, HTTP, storage notifications, dispatcher, transport, fan-out, database. */
  stop(): Promise<void>;
}

/** Builds the API around one database; `start` makes it serve. */
export async function createApp(env: Env, databaseUrl: string): Promise<App> {
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
  // A small pool of its own for the rate limiter's counters (Prisma's pool is not a pg.Pool).
  const limiterPool = new pg.Pool({ connectionString: databaseUrl, max: 4, connectionTimeoutMillis: 10_000 });
  // An idle client whose connection the server ends (a restart, a failover) must not crash the API.
  limiterPool.on("error", (err) => log.warn("rate limiter connection lost", { err }));
  const publicUrl = env.PUBLIC_URL?.replace(/\/$/, "") ?? "";
  const storage = await createApiStorage(env, { publicUrl, signer });
  // The Pub/Sub SDK is imported only when configured: it weighs tens of MiB of resident memory.
  const transport =
    env.TRANSPORT === "pubsub"
      ? (await import("./transport/pubsub.ts")).createPubSubApiTransport({
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
  // A worker counts as serving its queues while the dispatcher counts it alive.
  const queueWatch = createQueueWatch({
    db,
    pubSub,
    aliveWithinSeconds: 3 * env.JOB_STALL_SECONDS,
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
    ? (await import("./uploads/gcs-notifications.ts")).createUploadNotificationListener({
        subscription: env.GCS_NOTIFICATION_SUBSCRIPTION,
        projectId: env.GOOGLE_CLOUD_PROJECT,
        bucket: env.GCS_BUCKET ?? null,
        deps: services,
      })
    : null;

  const guard = createPlaybackGuard(db, playbackTokens);
  const livePlaylists = createLivePlaylists({
    windowSeconds: env.LIVE_DVR_WINDOW_SECONDS,
    readText: (key) => storage.readText(key),
  });
  const captions = createCaptionCatalog(db);
  const serveMedia = (req: IncomingMessage, res: ServerResponse, url: URL) =>
    handleMedia(storage, guard, captions, livePlaylists, req, res, url);
  const videoImages = createVideoImageRoute({
    db,
    storage,
    guard,
    serveMedia,
    cacheBudget: { videoBytes: env.IMAGE_CACHE_BYTES_PER_VIDEO, tenantBytes: env.IMAGE_CACHE_BYTES_PER_TENANT },
    trustedProxyHops: env.TRUST_PROXY_HOPS,
  });

  let limiter: Awaited<ReturnType<typeof createMutationRateLimiter>> | null = null;
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    // HTTP: the Authorization header. WebSocket (no fetch Request): `authorization` in the
    // connection_init payload. Both go through the same authenticate().
    context: async (initial: ContextInput): Promise<Context> => {
      const { request, connectionParams, principal } = initial;
      const own = {
        requestOrigin: request?.headers.get("origin") ?? null,
        // A WebSocket operation gets the principal its connection authenticated as (graphql-ws.ts).
        auth:
          principal ??
          (await authenticate(request ? request.headers.get("authorization") : authorizationParam(connectionParams))),
      };
      // A WebSocket operation's context inherits the services already (graphql-ws.ts).
      return Object.getPrototypeOf(initial) === services ? (own as Context) : { ...services, ...own };
    },
    plugins: [
      ...graphqlSecurityPlugins(env, () => limiter),
      liveCredentials.plugin(),
      sharedSubscriptionResults(),
      graphiqlPage(),
      ...(env.METRICS_PORT === undefined ? [] : graphqlMetricsPlugins()),
    ],
    graphqlEndpoint: "/graphql",
    cors: graphqlCors(env.CORS_ORIGINS),
    graphiql: env.GRAPHIQL ?? env.NODE_ENV !== "production",
    renderGraphiQL: renderOfflineGraphiQL,
    landingPage: false,
    maskedErrors: { maskError: maskApiError },
    logging: yogaLog(),
  });

  const handleConsole = createConsoleHandler({
    distDir: CONSOLE_DIST,
    remoteMedia: storage.publishedObjects.servedBy === "bucket",
  });
  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (env.METRICS_PORT !== undefined) observeHttpRequest(req, res, url.pathname);
    // S3 and local storage take uploads here; GCS takes them in resumable sessions of its own.
    if (url.pathname.startsWith(UPLOAD_PATH_PREFIX) && "writeUploadChunk" in storage) {
      return handleUpload(
        { ...services, storage, idleTimeoutMs: env.UPLOAD_IDLE_TIMEOUT_SECONDS * 1000 },
        req,
        res,
        url,
      );
    }
    if (url.pathname.startsWith(MEDIA_PATH_PREFIX)) {
      // Tenant bytes: a browser must never guess them into HTML or script.
      res.setHeader("x-content-type-options", "nosniff");
      return videoImages.matches(url) ? videoImages.handle(req, res, url) : serveMedia(req, res, url);
    }
    if (analytics.matches(url)) return analytics.handle(req, res, url);
    if (live.matchesFeed(url)) return live.handleFeed(req, res, url);
    if (relayIngest.matches(url)) return relayIngest.handle(req, res, url);
    if (await serveHealthPath(url.pathname, { db, transport }, res)) return;
    if (await handleConsole(req, res, url)) return;
    if (refusedForSize(req, res, env)) return;
    await yoga.requestListener(req, res);
  }

  const httpServer = createHttpServer((req, res) => {
    dropBodyLeftAfterAnswer(req, res);
    traceRequest(req, () => route(req, res)).catch((err) => {
      log.error("request failed", { err, url: req.url });
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "Internal server error" }));
    });
  });
  httpServer.keepAliveTimeout = env.HTTP_KEEP_ALIVE_SECONDS * 1000;

  const wsHandle = serveGraphqlOverWebSocket(
    httpServer,
    yoga,
    { authenticate, liveCredentials },
    { maxConnections: env.WS_MAX_CONNECTIONS, maxBufferedBytes: env.WS_MAX_BUFFERED_BYTES },
    services,
  );
  if (env.METRICS_PORT !== undefined) countJobsIn(db);

  let started = false;
  let metricsServer: MetricsServer | null = null;
  let subscriptionsClosed: Promise<void> | null = null;
  let liveIngestStopped: Promise<void> | null = null;
  function stopLiveIngest(): Promise<void> {
    liveIngestStopped ??= (async () => {
      if (rtmpIngest || srtIngest) {
        log.info(
          "stopping: live ingest (broadcasts are handed on: a publisher reconnecting to any instance continues its own)",
        );
        await Promise.all([rtmpIngest?.close(), srtIngest?.close()]);
      }
      await live.handOffAll();
    })();
    return liveIngestStopped;
  }

  function closeSubscriptions(): Promise<void> {
    if (!subscriptionsClosed) log.info("stopping: WebSocket subscriptions (close 1001, going away)");
    subscriptionsClosed ??= Promise.resolve(wsHandle.dispose());
    return subscriptionsClosed;
  }
  return {
    yoga,
    services,
    async start(options = {}) {
      const applied = await applyMigrations(databaseUrl);
      if (applied.length) log.info("migrations applied", { applied });
      await eventTarget.start();
      limiter = await createMutationRateLimiter(limiterPool, env.RATE_LIMIT_MUTATIONS_PER_MINUTE);
      // In production a secret printed to stdout would sit in the logs: keys come from the CLI or BOOTSTRAP_API_KEY.
      const created = await bootstrapAdminKey(db, env.BOOTSTRAP_API_KEY, SCOPES, {
        createIfNone: env.NODE_ENV !== "production",
      });
      if (created && !env.BOOTSTRAP_API_KEY) {
        // Printed once, on the first start of an empty database: the secret is not stored.
        process.stdout.write(
          `\n  Admin API key (tenant "default", every scope) — shown once, keep it:\n\n` +
            `    export VIDEOGRAPH_KEY=${created.secret}\n\n` +
            `  Send it as: Authorization: Bearer <key>\n\n`,
        );
        log.info("admin API key created", { keyId: created.key.id, prefix: created.key.prefix });
      }
      await transport.start();
      if (env.INGEST_EVENTS) await transport.consumeEvents((events) => ingestor.ingest(events));
      dispatcher.start();
      deliverer.start();
      uploadExpiry.start();
      analytics.start();
      await notifications?.start();
      await options.beforeListen?.();
      const { address, port, url } = await listening(
        () => listenOn(httpServer, env.PORT, env.HOST),
        env.PORT,
        env.HOST,
        { port: "PORT", host: "HOST" },
      );
      addresses.api = url;
      const ingestHosts = liveIngestHosts(env);
      if (rtmpIngest && env.LIVE_RTMP_PORT !== "off") {
        const rtmpPort = env.LIVE_RTMP_PORT;
        const rtmp = await listening(() => rtmpIngest.listen(rtmpPort, ingestHosts.rtmp), rtmpPort, ingestHosts.rtmp, {
          port: "LIVE_RTMP_PORT",
          host: "LIVE_RTMP_HOST",
          what: "the RTMP ingest's port",
        });
        addresses.rtmp = `rtmp://localhost:${rtmp.port}/${RTMP_APP}`;
        log.info("live ingest listening", { protocol: "rtmp", ...rtmp, url: addresses.rtmp });
      }
      if (srtIngest && env.LIVE_SRT_PORT !== "off") {
        const srtPort = env.LIVE_SRT_PORT;
        const srt = await listening(() => srtIngest.listen(srtPort, ingestHosts.srt), srtPort, ingestHosts.srt, {
          port: "LIVE_SRT_PORT",
          host: "LIVE_SRT_HOST",
          what: "the SRT ingest's UDP port",
          transport: "udp",
        });
        addresses.srt = `srt://localhost:${srt.port}`;
        log.info("live ingest listening", { protocol: "srt", ...srt, url: addresses.srt });
      } else if (env.LIVE_SRT_PORT !== "off") {
        log.warn("SRT ingest off: its gateway is not built (npm run setup:srt; docs/live.md#srt)");
      }
      started = true;
      log.info("API listening", { address, port, url: `${url}/graphql` });
      if (env.METRICS_PORT !== undefined) metricsServer = await startMetricsServer(env, env.METRICS_PORT);
      return { port, url, metricsUrl: metricsServer ? `${metricsServer.url}${env.METRICS_PATH}` : null };
    },
    closeSubscriptions,
    stopLiveIngest,
    async stop() {
      if (started) await closeSubscriptions();
      await stopLiveIngest();
      log.info("stopping: HTTP connections");
      await metricsServer?.close();
      if (started) {
        const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        const timer = setTimeout(() => httpServer.closeAllConnections(), 5000).unref();
        await closed;
        clearTimeout(timer);
      }
      if (notifications) {
        log.info("stopping: storage notifications");
        await notifications.stop();
      }
      log.info("stopping: webhook deliveries");
      await deliverer.stop();
      log.info("stopping: upload expiry");
      await uploadExpiry.stop();
      log.info("stopping: analytics");
      await analytics.stop();
      log.info("stopping: dispatcher");
      await dispatcher.stop();
      log.info("stopping: transport");
      await transport.stop();
      await queueWatch.stop();
      log.info("stopping: event fan-out");
      await eventTarget.close();
      // After the hand-off (stopLiveIngest): a broadcast's hold goes only once its job waits for another instance.
      await holds.close();
      await limiterPool.end();
      log.info("stopping: database");
      await db.$disconnect();
      log.info("stopped");
    },
  };
}

/**
 * Bodies are read into memory by yoga: an oversized POST is refused (413), or one without a
 * Content-Length (411), before a byte is read (the server then drops what arrives:
 * dropBodyLeftAfterAnswer). True once the request was answered.
 */
function refusedForSize(req: IncomingMessage, res: ServerResponse, env: Env): boolean {
  if (req.method !== "POST") return false;
  const multipart = String(req.headers["content-type"] ?? "").startsWith("multipart/form-data");
  const [limit, name] = multipart
    ? [env.MULTIPART_MAX_BYTES, "MULTIPART_MAX_BYTES"]
    : [env.GRAPHQL_MAX_BODY_BYTES, "GRAPHQL_MAX_BODY_BYTES"];
  const length = Number(req.headers["content-length"] ?? NaN);
  if (!Number.isFinite(length)) {
    res.writeHead(411, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ message: "GraphQL POST requests need a Content-Length" }] }));
    return true;
  }
  if (length > limit) {
    res.writeHead(413, { "content-type": "application/json" });
    const hint = multipart ? "; use createUpload for large files" : "";
    res.end(JSON.stringify({ errors: [{ message: `Request of ${length} bytes exceeds ${name} (${limit})${hint}` }] }));
    return true;
  }
  return false;
}

/** A listener's bind, whose failure names the listener (main.ts turns it into one line). */
async function listening<T>(bind: () => Promise<T>, port: number, host: string, names: ListenerNames): Promise<T> {
  try {
    return await bind();
  } catch (err) {
    throw new ListenerFailed(port, host, names, err);
  }
}
