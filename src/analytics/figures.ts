import type pg from "pg";
import { histogramOf } from "./ingest.ts";
import { emptyHourCounters, type HourCounters, histogramQuantile } from "./startup-histogram.ts";

export type AnalyticsInterval = "HOUR" | "DAY";

/** Whose hours are summed: one video's, or every video's of a tenant. */
export type AnalyticsScope = { videoId: string } | { tenantId: string };

/** Figures of a period (the whole range, or one point of its timeline), from the hourly rollups. */
export interface AnalyticsFigures {
  views: number;
  /** Viewers counted once per video per day, summed over the days (and videos) of the period. */
  uniqueViewers: number;
  watchTimeSeconds: number;
  startupTimeP50Ms: number | null;
  startupTimeP95Ms: number | null;
  rebufferCount: number;
  rebufferSeconds: number;
  /** Time spent rebuffering over time spent watching or rebuffering; 0 without either. */
  rebufferRatio: number;
  renditionSwitches: number;
  /** Views that ended in a fatal playback error, over views. */
  failureRate: number;
  /** Views played to the end, over views. */
  completionRate: number;
}

export interface AnalyticsPoint extends AnalyticsFigures {
  at: Date;
}

export interface AnalyticsReport extends AnalyticsFigures {
  from: Date;
  to: Date;
  interval: AnalyticsInterval;
  timeline: AnalyticsPoint[];
  /** Heights by time played there, most first, with their share of the time played. */
  topRenditions: { height: number; watchTimeSeconds: number; share: number }[];
}

interface Sums extends HourCounters {
  views: number;
  uniqueViewers: number;
}

function figuresOf(s: Sums): AnalyticsFigures {
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);
  return {
    views: s.views,
    uniqueViewers: s.uniqueViewers,
    watchTimeSeconds: s.watchMs / 1000,
    startupTimeP50Ms: histogramQuantile(s.histogram, 0.5),
    startupTimeP95Ms: histogramQuantile(s.histogram, 0.95),
    rebufferCount: s.rebufferCount,
    rebufferSeconds: s.rebufferMs / 1000,
    rebufferRatio: ratio(s.rebufferMs, s.watchMs + s.rebufferMs),
    renditionSwitches: s.renditionSwitches,
    failureRate: ratio(s.failedViews, s.views),
    completionRate: ratio(s.completedViews, s.views),
  };
}

function addSums(into: Sums, s: Sums): void {
  into.views += s.views;
  into.uniqueViewers += s.uniqueViewers;
  into.watchMs += s.watchMs;
  into.rebufferCount += s.rebufferCount;
  into.rebufferMs += s.rebufferMs;
  into.renditionSwitches += s.renditionSwitches;
  into.failedViews += s.failedViews;
  into.completedViews += s.completedViews;
  for (let i = 0; i < into.histogram.length; i++) into.histogram[i]! += s.histogram[i] ?? 0;
}

const emptySums = (): Sums => ({ views: 0, uniqueViewers: 0, ...emptyHourCounters() });

// Fixed tables and filters: nothing of the query is built from input.
const SCOPE = {
  video: { hours: `"AnalyticsHour"`, filter: `"videoId" = $1::uuid` },
  tenant: { hours: `"AnalyticsTenantHour"`, filter: `"tenantId" = $1::uuid` },
} as const;

/**
 * Reads the hourly rollups of a scope over [from, to) (a video's, or its tenant's: one row per hour
 * whatever its videos): one indexed range read, summed in SQL per point of the timeline (the startup
 * histograms bucket by bucket); never a raw view. Top renditions come from the heights' rollups.
 */
export async function analyticsReport(
  pool: pg.Pool,
  scope: AnalyticsScope,
  range: { from: Date; to: Date; interval: AnalyticsInterval },
): Promise<AnalyticsReport> {
  const { hours: hoursTable, filter } = "videoId" in scope ? SCOPE.video : SCOPE.tenant;
  const id = "videoId" in scope ? scope.videoId : scope.tenantId;
  const unit = range.interval === "HOUR" ? "hour" : "day";
  const params = [id, range.from.toISOString(), range.to.toISOString(), unit];
  const rangeFilter = `${filter} AND hour >= $2::timestamptz AT TIME ZONE 'UTC' AND hour < $3::timestamptz AT TIME ZONE 'UTC'`;
  const [points, heights] = await Promise.all([
    pool.query<Omit<Sums, "histogram"> & { at: string; histogram: number[] | null }>(
      `WITH hours AS (SELECT * FROM ${hoursTable} WHERE ${rangeFilter}),
       points AS (
         SELECT date_trunc($4, hour) AS at, sum(views)::int AS "views", sum("uniqueViewers")::int AS "uniqueViewers",
           sum("watchMs")::float8 AS "watchMs", sum("rebufferCount")::int AS "rebufferCount",
           sum("rebufferMs")::float8 AS "rebufferMs", sum("renditionSwitches")::int AS "renditionSwitches",
           sum("failedViews")::int AS "failedViews", sum("completedViews")::int AS "completedViews"
         FROM hours GROUP BY 1
       ), buckets AS (
         SELECT date_trunc($4, hour) AS at, u.i, sum(u.c)::int AS c
         FROM hours, unnest(hours."startupHistogram") WITH ORDINALITY AS u(c, i) GROUP BY 1, 2
       )
       SELECT to_char(p.at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, p.views, p."uniqueViewers", p."watchMs",
         p."rebufferCount", p."rebufferMs", p."renditionSwitches", p."failedViews", p."completedViews",
         (SELECT array_agg(b.c ORDER BY b.i) FROM buckets b WHERE b.at = p.at) AS histogram
       FROM points p ORDER BY p.at`,
      params,
    ),
    pool.query<{ height: number; watchMs: number }>(
      `SELECT height, sum("watchMs")::float8 AS "watchMs" FROM "AnalyticsHeightHour" WHERE ${rangeFilter}
       GROUP BY height ORDER BY 2 DESC, height DESC LIMIT 10`,
      params.slice(0, 3),
    ),
  ]);
  const total = emptySums();
  const timeline = points.rows.map((row) => {
    const sums: Sums = { ...row, histogram: histogramOf(row.histogram) };
    addSums(total, sums);
    return { at: new Date(row.at), ...figuresOf(sums) };
  });
  const heightMs = heights.rows.reduce((a, h) => a + h.watchMs, 0);
  return {
    from: range.from,
    to: range.to,
    interval: range.interval,
    ...figuresOf(total),
    timeline,
    topRenditions: heights.rows.map((h) => ({
      height: h.height,
      watchTimeSeconds: h.watchMs / 1000,
      share: heightMs > 0 ? h.watchMs / heightMs : 0,
    })),
  };
}
