import { randomBytes, createHmac, randomUUID } from "node:crypto";
import type pg from "pg";
import type { BeaconEvent } from "../shared/analytics-beacons.ts";
import { STARTUP_BUCKET_COUNT, startupHistogramOf } from "./startup-histogram.ts";

/** What one batch adds to its view and to the video's hour. */
export interface BatchFigures {
  /** The first startup time the batch reports (a view counts one). */
  startupMs: number | null;
  watchMs: number;
  rebufferCount: number;
  rebufferMs: number;
  renditionSwitches: number;
  /** The code of the batch's first fatal failure; null: none. */
  fatalFailureCode: string | null;
  completed: boolean;
  /** Milliseconds played at each height. */
  watchMsByHeight: Map<number, number>;
}

export function batchFigures(events: readonly BeaconEvent[]): BatchFigures {
  const figures: BatchFigures = {
    startupMs: null,
    watchMs: 0,
    rebufferCount: 0,
    rebufferMs: 0,
    renditionSwitches: 0,
    fatalFailureCode: null,
    completed: false,
    watchMsByHeight: new Map(),
  };
  for (const e of events) {
    switch (e.type) {
      case "startup":
        figures.startupMs ??= e.startupMs;
        break;
      case "rebuffer":
        figures.rebufferCount++;
        figures.rebufferMs += e.durationMs;
        break;
      case "rendition":
        figures.renditionSwitches++;
        break;
      case "watch":
        figures.watchMs += e.watchedMs;
        figures.watchMsByHeight.set(e.height, (figures.watchMsByHeight.get(e.height) ?? 0) + e.watchedMs);
        break;
      case "failure":
        if (e.fatal) figures.fatalFailureCode ??= e.code;
        break;
      case "completed":
        figures.completed = true;
        break;
      default:
        e satisfies never;
    }
  }
  return figures;
}

const hourOf = (now: number) => new Date(Math.floor(now / 3_600_000) * 3_600_000).toISOString();
const dayOf = (now: number) => new Date(now).toISOString().slice(0, 10);
const EMPTY_HISTOGRAM = startupHistogramOf(null);

/** Adds two histograms bucket by bucket (the stored one and a batch's). */
const ADD_HISTOGRAMS = `(SELECT array_agg(COALESCE(a, 0) + COALESCE(b, 0) ORDER BY i)
  FROM unnest("AnalyticsHour"."startupHistogram", EXCLUDED."startupHistogram") WITH ORDINALITY AS u(a, b, i))`;

/** Writes views and beacons: each call is one statement, which updates the raw view and its hour's rollups together. */
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
     * Records a new view: its row, one view in its hour and, the first time this viewer (address
     * and user agent, hashed with the day's salt) watches the video that day, one unique viewer.
     */
    async startView(
      view: { videoId: string; tenantId: string; client: string; userAgent: string },
      now = Date.now(),
    ): Promise<string> {
      const viewId = randomUUID();
      const day = dayOf(now);
      const viewerHash = createHmac("sha256", await saltOf(day))
        .update(`${view.client}\n${view.userAgent}`)
        .digest("base64url");
      await pool.query(
        `WITH v AS (
           INSERT INTO "AnalyticsView" (id, "videoId", "tenantId", "startedAt", "lastBeaconAt")
           VALUES ($1, $2, $3, $4::timestamptz AT TIME ZONE 'UTC', $4::timestamptz AT TIME ZONE 'UTC')
         ), viewer AS (
           INSERT INTO "AnalyticsDailyViewer" ("videoId", day, "viewerHash") VALUES ($2, $5::date, $6)
           ON CONFLICT DO NOTHING RETURNING 1
         )
         INSERT INTO "AnalyticsHour" ("videoId", "tenantId", hour, views, "uniqueViewers", "startupHistogram")
         VALUES ($2, $3, $7::timestamptz AT TIME ZONE 'UTC', 1, (SELECT count(*) FROM viewer), $8::int[])
         ON CONFLICT ("videoId", hour) DO UPDATE SET
           views = "AnalyticsHour".views + 1,
           "uniqueViewers" = "AnalyticsHour"."uniqueViewers" + EXCLUDED."uniqueViewers"`,
        [
          viewId,
          view.videoId,
          view.tenantId,
          new Date(now).toISOString(),
          day,
          viewerHash,
          hourOf(now),
          EMPTY_HISTOGRAM,
        ],
      );
      return viewId;
    },

    /**
     * Adds a batch to its view and to the video's current hour, once: a batch whose `seq` is not
     * above the view's last is a repeat. Nothing is written when the view's tenant turned collection off.
     */
    async recordBatch(
      view: { viewId: string; videoId: string; tenantId: string },
      seq: number,
      f: BatchFigures,
      now = Date.now(),
    ): Promise<"counted" | "repeat" | "no such view" | "collection off"> {
      const heights = [...f.watchMsByHeight.keys()];
      const heightMs = heights.map((h) => f.watchMsByHeight.get(h)!);
      const { rows } = await pool.query<{ found: number; enabled: boolean | null; counted: number }>(
        `WITH old AS (
           SELECT v.id, v."startupMs", v.failed, v.completed, v."lastSeq", t."analyticsEnabled" AS enabled
           FROM "AnalyticsView" v JOIN "Tenant" t ON t.id = v."tenantId"
           WHERE v.id = $1 AND v."videoId" = $2 AND v."tenantId" = $3
           FOR UPDATE OF v
         ), upd AS (
           UPDATE "AnalyticsView" v SET
             "lastSeq" = $4,
             "lastBeaconAt" = now() AT TIME ZONE 'UTC',
             "startupMs" = COALESCE(v."startupMs", $5::int),
             "watchMs" = v."watchMs" + $6::bigint,
             "rebufferCount" = v."rebufferCount" + $7::int,
             "rebufferMs" = v."rebufferMs" + $8::bigint,
             "renditionSwitches" = v."renditionSwitches" + $9::int,
             failed = v.failed OR $10::text IS NOT NULL,
             "failureCode" = COALESCE(v."failureCode", $10::text),
             completed = v.completed OR $11::boolean
           FROM old WHERE v.id = old.id AND old.enabled AND old."lastSeq" < $4
           RETURNING old."startupMs" IS NULL AND $5::int IS NOT NULL AS "newStartup",
             NOT old.failed AND $10::text IS NOT NULL AS "newFailure",
             NOT old.completed AND $11::boolean AS "newCompletion"
         ), hour AS (
           INSERT INTO "AnalyticsHour" ("videoId", "tenantId", hour, "watchMs", "rebufferCount", "rebufferMs",
             "renditionSwitches", "failedViews", "completedViews", "startupHistogram")
           SELECT $2, $3, $12::timestamptz AT TIME ZONE 'UTC', $6::bigint, $7::int, $8::bigint, $9::int,
             "newFailure"::int, "newCompletion"::int, CASE WHEN "newStartup" THEN $13::int[] ELSE $14::int[] END
           FROM upd
           ON CONFLICT ("videoId", hour) DO UPDATE SET
             "watchMs" = "AnalyticsHour"."watchMs" + EXCLUDED."watchMs",
             "rebufferCount" = "AnalyticsHour"."rebufferCount" + EXCLUDED."rebufferCount",
             "rebufferMs" = "AnalyticsHour"."rebufferMs" + EXCLUDED."rebufferMs",
             "renditionSwitches" = "AnalyticsHour"."renditionSwitches" + EXCLUDED."renditionSwitches",
             "failedViews" = "AnalyticsHour"."failedViews" + EXCLUDED."failedViews",
             "completedViews" = "AnalyticsHour"."completedViews" + EXCLUDED."completedViews",
             "startupHistogram" = ${ADD_HISTOGRAMS}
         ), heights AS (
           INSERT INTO "AnalyticsHeightHour" ("videoId", "tenantId", hour, height, "watchMs")
           SELECT $2, $3, $12::timestamptz AT TIME ZONE 'UTC', h, ms
           FROM upd, unnest($15::int[], $16::bigint[]) AS x(h, ms)
           ON CONFLICT ("videoId", hour, height) DO UPDATE SET
             "watchMs" = "AnalyticsHeightHour"."watchMs" + EXCLUDED."watchMs"
         )
         SELECT (SELECT count(*) FROM old)::int AS found, (SELECT bool_and(enabled) FROM old) AS enabled,
           (SELECT count(*) FROM upd)::int AS counted`,
        [
          view.viewId,
          view.videoId,
          view.tenantId,
          seq,
          f.startupMs,
          f.watchMs,
          f.rebufferCount,
          f.rebufferMs,
          f.renditionSwitches,
          f.fatalFailureCode,
          f.completed,
          hourOf(now),
          startupHistogramOf(f.startupMs),
          EMPTY_HISTOGRAM,
          heights,
          heightMs,
        ],
      );
      const row = rows[0]!;
      if (row.found === 0) return "no such view";
      if (!row.enabled) return "collection off";
      return row.counted > 0 ? "counted" : "repeat";
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
     * Deletes raw views older than `retentionDays`, and the viewer hashes and salts of days before
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
