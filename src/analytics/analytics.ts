import type { IncomingMessage, ServerResponse } from "node:http";
import pg from "pg";
import type { Env } from "../config.ts";
import type { PlaybackTokens } from "../http/playback-tokens.ts";
import { log } from "../log.ts";
import { ANALYTICS_PATHS } from "../shared/analytics-beacons.ts";
import { viewerEgressBytes } from "../costs/viewer-egress.ts";
import { type CollectionLimits, createCollectionEndpoint } from "./collect.ts";
import { type AnalyticsInterval, type AnalyticsScope, analyticsReport } from "./figures.ts";
import { COLLECTION_TOPIC, createCollectionSwitch } from "./collection-switch.ts";
import { createAnalyticsIngest } from "./ingest.ts";
import { createIngestThread } from "./ingest-supervisor.ts";
import { serveAnalyticsScript } from "./script.ts";
import { ViewTokens } from "./view-tokens.ts";
import { createViewersNow } from "./viewers-now.ts";

/** The ANALYTICS_* settings (docs/configuration.md). */
export interface AnalyticsSettings extends Omit<CollectionLimits, "flushIntervalMs"> {
  retentionDays: number;
  viewTokenTtlSeconds: number;
  viewersNowSeconds: number;
}

const FLUSH_INTERVAL_MS = 10_000;
/** How often accepted beacons are written (batch-buffer.ts). */
const FLUSH_EVERY_MS = 250;
const PRUNE_EVERY_MS = 3600_000;

/**
 * Viewer analytics (docs/analytics.md): the collection endpoint, the hourly rollups it keeps, the
 * reports GraphQL reads from them, live viewer counts and the pruning of raw views. Its own small
 * pool (starting views, reports), so it never queues behind Prisma's; beacon batches are taken and
 * written by the ingest thread, with a pool of its own.
 */
export function createAnalytics(options: {
  databaseUrl: string;
  signingSecret: string;
  playbackTokens: PlaybackTokens;
  /** The event fan-out every API instance listens to. */
  eventTarget: EventTarget;
  settings: AnalyticsSettings;
}) {
  const { settings } = options;
  // Beacons are samples: a crash may lose the last few hundred milliseconds of them, and in exchange a
  // batch's commit does not wait for the WAL to reach disk (the rollup row's lock is held until then).
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 8,
    connectionTimeoutMillis: 10_000,
    options: "-c synchronous_commit=off",
  });
  pool.on("error", (err) => log.warn("analytics connection lost", { err }));
  const ingest = createAnalyticsIngest(pool);
  const collection = createCollectionSwitch(pool, options.eventTarget);
  const ingestThread = createIngestThread({
    databaseUrl: options.databaseUrl,
    signingSecret: options.signingSecret,
    viewTokenTtlSeconds: settings.viewTokenTtlSeconds,
    batchesPerViewPerMinute: settings.batchesPerViewPerMinute,
    flushEveryMs: FLUSH_EVERY_MS,
  });
  // The ingest thread keeps its own memory of the switches; it hears of a change as this thread does.
  options.eventTarget.addEventListener(COLLECTION_TOPIC, (event) => {
    const tenantId = ((event as CustomEvent).detail as { tenantId?: string } | undefined)?.tenantId;
    ingestThread.collectionChanged(tenantId ?? null);
  });
  const viewersNow = createViewersNow({
    target: options.eventTarget,
    count: async (videoId) => {
      await ingestThread.flush();
      return ingest.viewersNow(videoId, settings.viewersNowSeconds);
    },
    publishEveryMs: 1000,
    recountEveryMs: Math.max(1000, (settings.viewersNowSeconds * 1000) / 6),
  });
  const endpoint = createCollectionEndpoint({
    pool,
    ingest,
    ingestThread,
    collection,
    viewTokens: new ViewTokens(options.signingSecret, settings.viewTokenTtlSeconds),
    playbackTokens: options.playbackTokens,
    limits: { ...settings, flushIntervalMs: FLUSH_INTERVAL_MS },
    onActivity: (videoId) => viewersNow.publishActivity(videoId),
  });
  let pruneTimer: NodeJS.Timeout | null = null;
  /** The pruning under way: `stop` waits for it before it closes the pool (a start that fails stops at once). */
  let pruning: Promise<unknown> = Promise.resolve();
  const prune = () => {
    pruning = ingest
      .prune(settings.retentionDays)
      .then(({ views }) => views && log.info("analytics: old views pruned", { views }))
      .catch((err) => log.warn("analytics pruning failed", { err }));
    return pruning;
  };

  return {
    /** Whether `url` is the collection endpoint's, which `handle` answers. */
    matches: (url: URL) => endpoint.matches(url) || url.pathname === ANALYTICS_PATHS.script,
    handle: (req: IncomingMessage, res: ServerResponse, url: URL) =>
      url.pathname === ANALYTICS_PATHS.script ? serveAnalyticsScript(res) : endpoint.handle(req, res, url),
    /** The figures of a video or tenant; what this process has pending is written first. */
    async report(scope: AnalyticsScope, range: { from: Date; to: Date; interval: AnalyticsInterval }) {
      await ingestThread.flush();
      return analyticsReport(pool, scope, range);
    },
    /** Estimated bytes the tenant's viewers fetched in the period, by video (egress.ts); pending batches are written first. */
    async viewerEgressBytes(tenantId: string, from: Date, to: Date): Promise<Map<string, number>> {
      await ingestThread.flush();
      return viewerEgressBytes(pool, tenantId, from, to);
    },
    /** Turns a tenant's collection on or off on every API instance (this one's ingest thread at once). */
    async setCollection(tenantId: string, enabled: boolean): Promise<void> {
      await collection.set(tenantId, enabled);
      ingestThread.collectionChanged(tenantId);
    },
    /** The thread that takes beacon batches (ingest-thread.ts). */
    ingestThread,
    followViewersNow: viewersNow.follow,
    /** Deletes raw views past the retention window (also hourly once started). */
    prune,
    start(): void {
      ingestThread.start();
      void prune();
      pruneTimer = setInterval(prune, PRUNE_EVERY_MS);
      pruneTimer.unref();
    },
    async stop(): Promise<void> {
      if (pruneTimer) clearInterval(pruneTimer);
      await ingestThread.stop();
      await pruning;
      await pool.end();
    },
  };
}

export type Analytics = ReturnType<typeof createAnalytics>;

export function analyticsSettings(env: Env): AnalyticsSettings {
  return {
    retentionDays: env.ANALYTICS_RETENTION_DAYS,
    viewTokenTtlSeconds: env.ANALYTICS_VIEW_TOKEN_TTL_SECONDS,
    viewersNowSeconds: env.ANALYTICS_VIEWERS_NOW_SECONDS,
    maxBodyBytes: env.ANALYTICS_MAX_BODY_BYTES,
    batchesPerViewPerMinute: env.ANALYTICS_BATCHES_PER_VIEW_PER_MINUTE,
    requestsPerClientPerMinute: env.ANALYTICS_REQUESTS_PER_CLIENT_PER_MINUTE,
    trustedProxyHops: env.TRUST_PROXY_HOPS,
  };
}
