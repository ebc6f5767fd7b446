import type pg from "pg";
import {
  type CounterSums,
  emptyCounterSums,
  type Figures,
  figuresOf,
  hourColumnType,
  ROLLUP_COUNTERS,
} from "./counters.ts";
import { histogramOf } from "./ingest.ts";

export type AnalyticsInterval = "HOUR" | "DAY";

/** Whose hours are summed: one video's, or every video's of a tenant. */
export type AnalyticsScope = { videoId: string } | { tenantId: string };

/** Figures of a period (the whole range, or one point of its timeline), from the hourly rollups (`FIGURES`). */
export type AnalyticsFigures = Figures;

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

type Sums = CounterSums;

function addSums(into: Sums, s: Sums): void {
  for (const n of ROLLUP_COUNTERS) into[n] += s[n];
  for (let i = 0; i < into.histogram.length; i++) into.histogram[i]! += s.histogram[i] ?? 0;
}

/** Each counter's sum over a point's hours (a bigint column's as float8: a sum may pass 2^31). */
const SUMS_SELECT = ROLLUP_COUNTERS.map(
  (n) => `sum("${n}")::${hourColumnType(n) === "bigint" ? "float8" : "int"} AS "${n}"`,
).join(", ");
const SUMS_LIST = ROLLUP_COUNTERS.map((n) => `p."${n}"`).join(", ");

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
         SELECT date_trunc($4, hour) AS at, ${SUMS_SELECT}
         FROM hours GROUP BY 1
       ), buckets AS (
         SELECT date_trunc($4, hour) AS at, u.i, sum(u.c)::int AS c
         FROM hours, unnest(hours."startupHistogram") WITH ORDINALITY AS u(c, i) GROUP BY 1, 2
       )
       SELECT to_char(p.at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, ${SUMS_LIST},
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
  const total = emptyCounterSums();
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
