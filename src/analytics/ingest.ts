import { randomBytes, createHmac, randomUUID } from "node:crypto";
import type pg from "pg";
import { retryDeadlockVictim } from "../db/deadlock-retry.ts";
import type { BeaconEvent } from "../shared/analytics-beacons.ts";
import { COUNTERS, SUM_COUNTERS, type SumCounterName, VIEW_COUNTERS, type ViewCounterName } from "./counters.ts";
import { STARTUP_BUCKET_COUNT, startupHistogramOf } from "./startup-histogram.ts";

/** What one batch adds to its view and to the video's hour. */
export interface BatchFigures {
  /** The first startup time the batch reports (a view counts one). */
  startupMs: number | null;
  /** Each sum counter's amount over the batch's events. */
  sums: Record<SumCounterName, number>;
  /** Each view counter: null when no event of the batch counts; else the first counting event's detail (null: none). */
  marks: Record<ViewCounterName, { detail: string | null } | null>;
  /** Milliseconds played at each height. */
  watchMsByHeight: Map<number, number>;
  /** The last live latency the batch reports (`liveLatency`; null: none): for the operators' metric, not stored. */
  liveLatencyMs: number | null;
}

type EventType = BeaconEvent["type"];
// The counters each event type feeds, from COUNTERS (their functions take the event of their type).
const SUMS_FED_BY = new Map<EventType, { name: SumCounterName; amount: (e: BeaconEvent) => number }[]>();
const MARKS_FED_BY = new Map<
  EventType,
  { name: ViewCounterName; counts: (e: BeaconEvent) => boolean; detail: ((e: BeaconEvent) => string) | undefined }[]
>();
for (const name of SUM_COUNTERS) {
  const { event, amount } = COUNTERS[name] as { event: EventType; amount: (e: BeaconEvent) => number };
  SUMS_FED_BY.set(event, [...(SUMS_FED_BY.get(event) ?? []), { name, amount }]);
}
for (const name of VIEW_COUNTERS) {
  const counter = COUNTERS[name] as {
    event: EventType;
    counts: (e: BeaconEvent) => boolean;
    detail?: { of: (e: BeaconEvent) => string };
  };
  MARKS_FED_BY.set(counter.event, [
    ...(MARKS_FED_BY.get(counter.event) ?? []),
    { name, counts: counter.counts, detail: counter.detail?.of },
  ]);
}

export function batchFigures(events: readonly BeaconEvent[]): BatchFigures {
  const figures: BatchFigures = {
    startupMs: null,
    sums: Object.fromEntries(SUM_COUNTERS.map((n) => [n, 0])) as Record<SumCounterName, number>,
    marks: Object.fromEntries(VIEW_COUNTERS.map((n) => [n, null])) as BatchFigures["marks"],
    watchMsByHeight: new Map(),
    liveLatencyMs: null,
  };
  for (const e of events) {
    for (const { name, amount } of SUMS_FED_BY.get(e.type) ?? []) figures.sums[name] += amount(e);
    for (const { name, counts, detail } of MARKS_FED_BY.get(e.type) ?? [])
      if (figures.marks[name] === null && counts(e)) figures.marks[name] = { detail: detail ? detail(e) : null };
    if (e.type === "startup") figures.startupMs ??= e.startupMs;
    else if (e.type === "watch")
      figures.watchMsByHeight.set(e.height, (figures.watchMsByHeight.get(e.height) ?? 0) + e.watchedMs);
    // One a batch counts, however many it holds: a player sends one.
    else if (e.type === "liveLatency") figures.liveLatencyMs = e.latencyMs;
  }
  return figures;
}

/**
 * Unique viewers one source (a client address, an IPv6 address's /64: `clientAddress`) may count for
 * a video in a UTC day, however many user agents it sends: a household or an office behind one
 * address counts up to this many; more from one address (a NAT of many people, or one client
 * changing its User-Agent) count as views, not viewers (docs/analytics.md, "What is protected").
 */
export const UNIQUE_VIEWERS_PER_SOURCE = 10;

const hourOf = (now: number) => new Date(Math.floor(now / 3_600_000) * 3_600_000).toISOString();
const dayOf = (now: number) => new Date(now).toISOString().slice(0, 10);
const EMPTY_HISTOGRAM = startupHistogramOf(null);

/** Starts views (one statement each: the view, its hour's count and its viewer), counts live ones, prunes. */
export function createAnalyticsIngest(pool: pg.Pool) {
  const salts = new Map<string, Promise<string>>();

  /** The day's random salt, made by whichever instance needs it first; dropped from storage after the day. */
  function saltOf(day: string): Promise<string> {
    let salt = salts.get(day);
    if (!salt) {
      salt = pool
        .query<{ salt: string }>(
          `WITH made AS (INSERT INTO "AnalyticsSalt" (day, salt) VALUES ($1::date, $2) ON CONFLICT DO NOTHING RETURNING salt)
           SELECT salt FROM made UNION ALL SELECT salt FROM "AnalyticsSalt" WHERE day = $1::date LIMIT 1`,
          [day, randomBytes(32).toString("base64url")],
        )
        .then((r) => r.rows[0]!.salt);
      salt.catch(() => salts.delete(day));
      salts.clear();
      salts.set(day, salt);
    }
    return salt;
  }

  return {
    /**
     * Records a new view: its row, one view in its video's and tenant's hour and, the first time this viewer (address
     * and user agent, hashed with the day's salt) watches the video that day, one unique viewer, while its address
     * has counted fewer than UNIQUE_VIEWERS_PER_SOURCE for the video that day.
     */
    async startView(
      view: { videoId: string; tenantId: string; client: string; userAgent: string },
      now = Date.now(),
    ): Promise<string> {
      const viewId = randomUUID();
      const day = dayOf(now);
      const salt = await saltOf(day);
      const viewerHash = createHmac("sha256", salt).update(`${view.client}\n${view.userAgent}`).digest("base64url");
      const sourceHash = createHmac("sha256", salt).update(`source\n${view.client}`).digest("base64url");
      // One statement: a deadlock's victim runs again (a failed start costs the player its whole view).
      await retryDeadlockVictim("analytics: a view's start", () =>
        pool.query(
          `WITH v AS (
           INSERT INTO "AnalyticsView" (id, "videoId", "tenantId", "startedAt", "lastBeaconAt")
           VALUES ($1, $2, $3, $4::timestamptz AT TIME ZONE 'UTC', $4::timestamptz AT TIME ZONE 'UTC')
         ), viewer AS (
           INSERT INTO "AnalyticsDailyViewer" ("videoId", day, "viewerHash") VALUES ($2, $5::date, $6)
           ON CONFLICT DO NOTHING RETURNING 1
         ), source AS (
           -- A new viewer counts while its address has counted fewer than $10 for the video that day; the
           -- upsert locks the address's row, so views starting together cannot pass the bound.
           INSERT INTO "AnalyticsDailySource" ("videoId", day, "sourceHash", viewers)
           SELECT $2, $5::date, $9, 1 FROM viewer
           ON CONFLICT ("videoId", day, "sourceHash") DO UPDATE SET viewers = "AnalyticsDailySource".viewers + 1
             WHERE "AnalyticsDailySource".viewers < $10
           RETURNING 1
         ), video_hour AS (
           INSERT INTO "AnalyticsHour" ("videoId", "tenantId", hour, views, "uniqueViewers", "startupHistogram")
           VALUES ($2, $3, $7::timestamptz AT TIME ZONE 'UTC', 1, (SELECT count(*) FROM source), $8::int[])
           ON CONFLICT ("videoId", hour) DO UPDATE SET
             views = "AnalyticsHour".views + 1,
             "uniqueViewers" = "AnalyticsHour"."uniqueViewers" + EXCLUDED."uniqueViewers"
           RETURNING "tenantId"
         )
         -- The tenant's hour is written from what the video's returned, so after it: the order a flush of
         -- beacons takes them in (batch-buffer.ts), or the two would deadlock.
         INSERT INTO "AnalyticsTenantHour" ("tenantId", hour, views, "uniqueViewers", "startupHistogram")
         SELECT "tenantId", $7::timestamptz AT TIME ZONE 'UTC', 1, (SELECT count(*) FROM source), $8::int[]
         FROM video_hour
         ON CONFLICT ("tenantId", hour) DO UPDATE SET
           views = "AnalyticsTenantHour".views + 1,
           "uniqueViewers" = "AnalyticsTenantHour"."uniqueViewers" + EXCLUDED."uniqueViewers"`,
          [
            viewId,
            view.videoId,
            view.tenantId,
            new Date(now).toISOString(),
            day,
            viewerHash,
            hourOf(now),
            EMPTY_HISTOGRAM,
            sourceHash,
            UNIQUE_VIEWERS_PER_SOURCE,
          ],
        ),
      );
      return viewId;
    },

    /** Views of `videoId` with a beacon (or a start) in the last `seconds`. */
    async viewersNow(videoId: string, seconds: number): Promise<number> {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "AnalyticsView"
         WHERE "videoId" = $1 AND "lastBeaconAt" > (now() AT TIME ZONE 'UTC') - make_interval(secs => $2)`,
        [videoId, seconds],
      );
      return rows[0]!.n;
    },

    /**
     * Deletes raw views older than `retentionDays`, and the viewer and source hashes and salts of days before
     * yesterday (a late beacon of yesterday's view may still arrive; its viewer was already counted).
     */
    async prune(retentionDays: number, now = Date.now()): Promise<{ views: number }> {
      const cutoff = new Date(now - retentionDays * 86_400_000).toISOString();
      const yesterday = dayOf(now - 86_400_000);
      const views = await pool.query(
        `DELETE FROM "AnalyticsView" WHERE "startedAt" < $1::timestamptz AT TIME ZONE 'UTC'`,
        [cutoff],
      );
      await pool.query(`DELETE FROM "AnalyticsDailyViewer" WHERE day < $1::date`, [yesterday]);
      await pool.query(`DELETE FROM "AnalyticsDailySource" WHERE day < $1::date`, [yesterday]);
      await pool.query(`DELETE FROM "AnalyticsSalt" WHERE day < $1::date`, [yesterday]);
      return { views: views.rowCount ?? 0 };
    },
  };
}

export type AnalyticsIngest = ReturnType<typeof createAnalyticsIngest>;

/** Buckets of a stored histogram, padded to the current bucket count. */
export function histogramOf(stored: readonly number[] | null): number[] {
  return Array.from({ length: STARTUP_BUCKET_COUNT }, (_, i) => stored?.[i] ?? 0);
}
