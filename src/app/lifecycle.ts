import type { Server } from "node:http";
import { bootstrapAdminKey } from "../auth/api-keys.ts";
import { SCOPES } from "../auth/scopes.ts";
import { type Env, liveIngestHosts } from "../config.ts";
import { applyMigrations } from "../db/migrate.ts";
import { createMutationRateLimiter } from "../http/graphql-security.ts";
import { type MetricsServer, startMetricsServer } from "../http/metrics-server.ts";
import type { createHttpRoutes } from "../http/routes.ts";
import { RTMP_APP } from "../live/rtmp-ingest.ts";
import { log } from "../log.ts";
import { ListenerFailed, type ListenerNames, listenOn } from "../shared/listen.ts";
import type { AppParts } from "./services.ts";

interface StartOptions {
  /** Runs once jobs and events flow, before the first request. */
  beforeListen?: () => Promise<void>;
}

/** One part of the API that starts and stops; either may be absent. */
interface LifecycleStep {
  /** Logged as `stopping: <this>` before its stop; none where the stop logs itself (it is also called alone). */
  stopping?: string;
  start?(options: StartOptions): Promise<unknown> | unknown;
  stop?(): Promise<unknown> | unknown;
}

/**
 * The API's start and stop, written once: `start` runs the steps top-down, `stop` runs their stops
 * bottom-up (WebSockets, live ingest, HTTP, storage notifications, webhook deliveries, upload expiry,
 * analytics, dispatcher, transport, queue watch, holder watch, event fan-out, broadcast holds, rate limiter pool,
 * database), whether or not `start` ran or finished.
 */
export function createLifecycle(
  env: Env,
  databaseUrl: string,
  parts: AppParts,
  http: ReturnType<typeof createHttpRoutes>,
) {
  const {
    services,
    eventTarget,
    rateLimits,
    deliverer,
    uploadExpiry,
    holds,
    spools,
    ingestor,
    ingests,
    notifications,
  } = parts;
  const { db, transport, dispatcher, analytics, queueWatch, live } = services;
  const { addresses } = parts; // written as each listener binds: the URLs workers and publishers are told
  const { httpServer, webSockets } = http;
  let serving = false;
  let api: Awaited<ReturnType<typeof listenOn>> | null = null;
  let metricsServer: MetricsServer | null = null;
  let subscriptionsClosed: Promise<void> | null = null;
  let liveIngestStopped: Promise<void> | null = null;
  let holderWatch: { stop(): void } | null = null;

  function closeSubscriptions(): Promise<void> {
    if (!subscriptionsClosed) log.info("stopping: WebSocket subscriptions (close 1001, going away)");
    subscriptionsClosed ??= Promise.resolve(webSockets.dispose());
    return subscriptionsClosed;
  }

  function stopLiveIngest(): Promise<void> {
    liveIngestStopped ??= (async () => {
      if (ingests.rtmp || ingests.srt) {
        log.info(
          "stopping: live ingest (broadcasts are handed on: a publisher reconnecting to any instance continues its own)",
        );
        await Promise.all([ingests.rtmp?.close(), ingests.srt?.close()]);
      }
      await live.handOffAll();
    })();
    return liveIngestStopped;
  }

  const steps: LifecycleStep[] = [
    {
      stopping: "database",
      async start() {
        const applied = await applyMigrations(databaseUrl);
        if (applied.length) log.info("migrations applied", { applied });
      },
      stop: () => db.$disconnect(),
    },
    {
      // The limiter's table is made here; GraphQL finds no limiter before (and no request comes before the listen).
      async start() {
        rateLimits.limiter = await createMutationRateLimiter(rateLimits.pool, env.RATE_LIMIT_MUTATIONS_PER_MINUTE);
      },
      stop: () => rateLimits.pool.end(),
    },
    // After the hand-off (stopLiveIngest): a broadcast's hold goes only once its job waits for another instance.
    { stop: () => holds.close() },
    // Spools no broadcast can come back to (feed-spool.ts), swept now and then.
    { start: () => spools.startSweeping(), stop: () => spools.stop() },
    { stopping: "event fan-out", start: () => eventTarget.start(), stop: () => eventTarget.close() },
    // Says a stream on air whose broadcast no instance holds any more (its holder died) disconnected.
    {
      start() {
        holderWatch = live.watchHolders();
      },
      stop: () => holderWatch?.stop(),
    },
    { start: () => createAdminKeyIfNone(env, db) },
    // Looks for workers that went silent, to tell the videos waiting on them (its first look once jobs can flow).
    { start: () => queueWatch.start(), stop: () => queueWatch.stop() },
    {
      stopping: "transport",
      async start() {
        await transport.start();
        if (env.INGEST_EVENTS) await transport.consumeEvents((events) => ingestor.ingest(events));
      },
      stop: () => transport.stop(),
    },
    { stopping: "dispatcher", start: () => dispatcher.start(), stop: () => dispatcher.stop() },
    { stopping: "analytics", start: () => analytics.start(), stop: () => analytics.stop() },
    { stopping: "upload expiry", start: () => uploadExpiry.start(), stop: () => uploadExpiry.stop() },
    { stopping: "webhook deliveries", start: () => deliverer.start(), stop: () => deliverer.stop() },
    ...(notifications
      ? [{ stopping: "storage notifications", start: () => notifications.start(), stop: () => notifications.stop() }]
      : []),
    {
      stopping: "HTTP connections",
      async start(options) {
        await options.beforeListen?.();
        api = await listening(() => listenOn(httpServer, env.PORT, env.HOST), env.PORT, env.HOST, {
          port: "PORT",
          host: "HOST",
        });
        addresses.api = api.url;
      },
      async stop() {
        // The metrics listener starts last (a scrape finds the API serving) and goes with the API's connections.
        await metricsServer?.close();
        if (serving) await closeHttpServer(httpServer);
      },
    },
    { start: () => listenLiveIngest(env, parts), stop: stopLiveIngest },
    {
      // Up last, down first: subscribers go (to reconnect elsewhere) before anything they use stops.
      async start() {
        serving = true;
        const { address, port, url } = api!;
        log.info("API listening", { address, port, url: `${url}/graphql` });
        if (env.METRICS_PORT !== undefined) metricsServer = await startMetricsServer(env, env.METRICS_PORT);
      },
      stop: () => (serving ? closeSubscriptions() : undefined),
    },
  ];

  return {
    async start(options: StartOptions = {}) {
      for (const step of steps) await step.start?.(options);
      const { port, url } = api!;
      return { port, url, metricsUrl: metricsServer ? `${metricsServer.url}${env.METRICS_PATH}` : null };
    },
    closeSubscriptions,
    stopLiveIngest,
    async stop() {
      for (const step of [...steps].reverse()) {
        if (step.stopping) log.info(`stopping: ${step.stopping}`);
        await step.stop?.();
      }
      log.info("stopped");
    },
  };
}

/**
 * Outside production, the first start of an empty database makes an admin key and prints it once (the
 * secret is not stored); in production a secret printed to stdout would sit in the logs: keys come from
 * the CLI or BOOTSTRAP_API_KEY.
 */
async function createAdminKeyIfNone(env: Env, db: AppParts["services"]["db"]): Promise<void> {
  const created = await bootstrapAdminKey(db, env.BOOTSTRAP_API_KEY, SCOPES, {
    createIfNone: env.NODE_ENV !== "production",
  });
  if (created && !env.BOOTSTRAP_API_KEY) {
    process.stdout.write(
      `\n  Admin API key (tenant "default", every scope) — shown once, keep it:\n\n` +
        `    export VIDEOGRAPH_KEY=${created.secret}\n\n` +
        `  Send it as: Authorization: Bearer <key>\n\n`,
    );
    log.info("admin API key created", { keyId: created.key.id, prefix: created.key.prefix });
  }
}

/** Binds the RTMP and SRT ingests that are on, and records the URLs publishers are told. */
async function listenLiveIngest(env: Env, { ingests, addresses }: AppParts): Promise<void> {
  const ingestHosts = liveIngestHosts(env);
  if (ingests.rtmp && env.LIVE_RTMP_PORT !== "off") {
    addresses.rtmp = await listenIngest("rtmp", ingests.rtmp, env.LIVE_RTMP_PORT, ingestHosts.rtmp, {
      names: { port: "LIVE_RTMP_PORT", host: "LIVE_RTMP_HOST", what: "the RTMP ingest's port" },
      url: (port) => `rtmp://localhost:${port}/${RTMP_APP}`,
    });
  }
  if (ingests.srt && env.LIVE_SRT_PORT !== "off") {
    addresses.srt = await listenIngest("srt", ingests.srt, env.LIVE_SRT_PORT, ingestHosts.srt, {
      names: { port: "LIVE_SRT_PORT", host: "LIVE_SRT_HOST", what: "the SRT ingest's UDP port", transport: "udp" },
      url: (port) => `srt://localhost:${port}`,
    });
  } else if (env.LIVE_SRT_PORT !== "off") {
    log.warn("SRT ingest off: its gateway is not built (npm run setup:srt; docs/live.md#srt)");
  }
}

/**
 * Binds one live ingest (a failure names its variables: `names`) and logs where it listens; the URL
 * publishers are told, from the port it bound.
 */
async function listenIngest(
  protocol: "rtmp" | "srt",
  ingest: { listen(port: number, host: string): Promise<{ address: string; port: number }> },
  port: number,
  host: string,
  { names, url }: { names: ListenerNames; url: (boundPort: number) => string },
): Promise<string> {
  const bound = await listening(() => ingest.listen(port, host), port, host, names);
  const publishersUrl = url(bound.port);
  log.info("live ingest listening", { protocol, ...bound, url: publishersUrl });
  return publishersUrl;
}

/** Takes no new connections, ends idle ones now and the rest after 5 s at most. */
async function closeHttpServer(httpServer: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
  httpServer.closeIdleConnections();
  const timer = setTimeout(() => httpServer.closeAllConnections(), 5000).unref();
  await closed;
  clearTimeout(timer);
}

/** A listener's bind, whose failure names the listener (main.ts turns it into one line). */
async function listening<T>(bind: () => Promise<T>, port: number, host: string, names: ListenerNames): Promise<T> {
  try {
    return await bind();
  } catch (err) {
    throw new ListenerFailed(port, host, names, err);
  }
}
