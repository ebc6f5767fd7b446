import type pg from "pg";
import {
  COUNTERS,
  HOUR_COUNTERS,
  type HourCounterName,
  hourColumnType,
  SUM_COUNTERS,
  type SumCounterName,
  VIEW_COUNTERS,
  type ViewCounterName,
} from "./counters.ts";

/** One view's batches of a flush, summed (`batch-buffer.ts`). */
export interface ViewWrite {
  id: string;
  videoId: string;
  tenantId: string;
  firstSeq: number;
  lastSeq: number;
  startupMs: number | null;
  sums: Record<SumCounterName, number>;
  /** Each view counter this flush marks the view with, and the detail of the event that did. */
  marks: Record<ViewCounterName, { detail: string | null } | null>;
}

/** One video's share of the flush's hour, summed over its views. */
export interface VideoWrite {
  videoId: string;
  tenantId: string;
  counters: Record<HourCounterName, number>;
  /** Views per startup-time bucket. */
  histogram: number[];
}

/** What one flush writes, in one statement. */
export interface BeaconWrite {
  /** The hour (ISO 8601) the rollups are written under. */
  hour: string;
  /** In id order, as every list here: the rollups' rows are locked in that order. */
  views: readonly ViewWrite[];
  videos: readonly VideoWrite[];
  heights: readonly { videoId: string; height: number; ms: number }[];
}

// The statement is made once, from COUNTERS: every counter's columns and parameters come from the one
// list, so a counter is written wherever its kind is (the view row, both hours) or nowhere.
const paramsOf: ((w: BeaconWrite) => unknown)[] = [];
/** The next parameter's placeholder, `$n::type`; `of` gives its value for a write. */
function param(type: string, of: (w: BeaconWrite) => unknown): string {
  paramsOf.push(of);
  return `$${paramsOf.length}::${type}`;
}
const q = (column: string) => `"${column}"`;
/** A column of an `unnest(…)`: its name and its parameter's placeholder. */
interface Column {
  name: string;
  placeholder: string;
}
/** A column of `rows`, one parameter (an array of `type`). */
const columnOf =
  <R>(rows: (w: BeaconWrite) => readonly R[]) =>
  (name: string, type: string, of: (row: R) => unknown): Column => ({
    name,
    placeholder: param(`${type}[]`, (w) => rows(w).map(of)),
  });
const unnestOf = (alias: string, columns: readonly Column[]) =>
  `unnest(${columns.map((c) => c.placeholder).join(", ")}) AS ${alias}(${columns.map((c) => q(c.name)).join(", ")})`;

const viewColumn = columnOf((w) => w.views);
const viewMarks = VIEW_COUNTERS.flatMap((name) => {
  const counter: { viewColumn: string; detail?: { column: string } } = COUNTERS[name];
  const marked = viewColumn(counter.viewColumn, "boolean", (v) => v.marks[name] !== null);
  const detail = counter.detail && viewColumn(counter.detail.column, "text", (v) => v.marks[name]?.detail ?? null);
  return [
    { ...marked, set: `${q(marked.name)} = v.${q(marked.name)} OR d.${q(marked.name)}` },
    ...(detail ? [{ ...detail, set: `${q(detail.name)} = COALESCE(v.${q(detail.name)}, d.${q(detail.name)})` }] : []),
  ];
});
const viewSums = SUM_COUNTERS.map((name) => ({
  ...viewColumn(name, COUNTERS[name].sql, (v) => v.sums[name]),
  set: `${q(name)} = v.${q(name)} + d.${q(name)}`,
}));
const VIEWS = unnestOf("d", [
  viewColumn("id", "uuid", (v) => v.id),
  viewColumn("videoId", "uuid", (v) => v.videoId),
  viewColumn("tenantId", "uuid", (v) => v.tenantId),
  viewColumn("firstSeq", "int", (v) => v.firstSeq),
  viewColumn("lastSeq", "int", (v) => v.lastSeq),
  viewColumn("startupMs", "int", (v) => v.startupMs),
  ...viewSums,
  ...viewMarks,
]);
const SET_VIEW = [...viewSums, ...viewMarks].map((c) => c.set).join(",\n           ");

const HOUR = param("timestamptz", (w) => w.hour);
const videoColumn = columnOf((w) => w.videos);
const VIDEO_IDS = videoColumn("videoId", "uuid", (d) => d.videoId);
const VIDEO_TENANTS = videoColumn("tenantId", "uuid", (d) => d.tenantId);
const VIDEO_COUNTERS = HOUR_COUNTERS.map((name) => videoColumn(name, hourColumnType(name), (d) => d.counters[name]));
const HISTOGRAMS = videoColumn("histogram", "jsonb", (d) => JSON.stringify(d.histogram));
const heightColumn = columnOf((w) => w.heights);
const HEIGHTS = unnestOf("y", [
  heightColumn("videoId", "uuid", (h) => h.videoId),
  heightColumn("height", "int", (h) => h.height),
  heightColumn("ms", "bigint", (h) => h.ms),
]);

const counterList = (prefix: string) => HOUR_COUNTERS.map((name) => `${prefix}${q(name)}`).join(", ");
const TENANT_SUMS = HOUR_COUNTERS.map((name) => `sum(x.${q(name)})::${hourColumnType(name)} AS ${q(name)}`).join(", ");

/**
 * The SET list of an hourly rollup's upsert (`AnalyticsHour`, `AnalyticsTenantHour`): each hour counter
 * plus the new row's, the startup histograms bucket by bucket.
 */
function addCounters(table: "AnalyticsHour" | "AnalyticsTenantHour"): string {
  return [
    ...HOUR_COUNTERS.map((name) => `${q(name)} = "${table}".${q(name)} + EXCLUDED.${q(name)}`),
    `"startupHistogram" = (SELECT array_agg(COALESCE(a, 0) + COALESCE(b, 0) ORDER BY i)
             FROM unnest("${table}"."startupHistogram", EXCLUDED."startupHistogram") WITH ORDINALITY AS u(a, b, i))`,
  ].join(",\n           ");
}

// Views: each row takes its batches once (lastSeq). Rollups: the hour of the flush, for videos that still
// exist and whose tenant collects (the token's tenant must be the video's).
const WRITE_BEACONS = `WITH d AS (
         SELECT * FROM ${VIEWS}
       ), collecting AS (
         SELECT v.id AS "videoId", v."tenantId" FROM "Video" v JOIN "Tenant" t ON t.id = v."tenantId"
         WHERE t."analyticsEnabled" AND v.id = ANY(${VIDEO_IDS.placeholder})
       ), views AS (
         UPDATE "AnalyticsView" v SET
           "lastSeq" = d."lastSeq",
           "lastBeaconAt" = now() AT TIME ZONE 'UTC',
           "startupMs" = COALESCE(v."startupMs", d."startupMs"),
           ${SET_VIEW}
         FROM d JOIN collecting c ON c."videoId" = d."videoId" AND c."tenantId" = d."tenantId"
         WHERE v.id = d.id AND v."videoId" = d."videoId" AND v."lastSeq" < d."firstSeq"
       ), hours AS (
         INSERT INTO "AnalyticsHour" ("videoId", "tenantId", hour, ${counterList("")}, "startupHistogram")
         SELECT x."videoId", c."tenantId", ${HOUR} AT TIME ZONE 'UTC', ${counterList("x.")},
           (SELECT array_agg(n::int ORDER BY i) FROM jsonb_array_elements_text(x.histogram) WITH ORDINALITY AS h(n, i))
         FROM ${unnestOf("x", [VIDEO_IDS, VIDEO_TENANTS, ...VIDEO_COUNTERS, HISTOGRAMS])}
         JOIN collecting c ON c."videoId" = x."videoId" AND c."tenantId" = x."tenantId"
         ORDER BY x."videoId"
         ON CONFLICT ("videoId", hour) DO UPDATE SET
           ${addCounters("AnalyticsHour")}
         RETURNING "tenantId", "videoId"
       ), tenant_deltas AS (
         -- The same deltas summed per tenant, for the videos written above (their histograms bucket by bucket).
         -- Read from what \`hours\` returns, so every video's hour is written before any tenant's hour: the
         -- order a view's start takes them in (\`startView\`), or the two would deadlock.
         SELECT c."tenantId", ${TENANT_SUMS},
           (SELECT array_agg(s ORDER BY i) FROM (
             SELECT h.i, sum(h.n::int)::int AS s
             FROM ${unnestOf("y", [VIDEO_IDS, HISTOGRAMS])}
             JOIN collecting c2 ON c2."videoId" = y."videoId",
             jsonb_array_elements_text(y.histogram) WITH ORDINALITY AS h(n, i)
             WHERE c2."tenantId" = c."tenantId" GROUP BY h.i) AS per_bucket) AS histogram
         FROM ${unnestOf("x", [VIDEO_IDS, ...VIDEO_COUNTERS])}
         JOIN hours c ON c."videoId" = x."videoId"
         GROUP BY c."tenantId"
       ), tenant_hours AS (
         INSERT INTO "AnalyticsTenantHour" ("tenantId", hour, ${counterList("")}, "startupHistogram")
         SELECT "tenantId", ${HOUR} AT TIME ZONE 'UTC', ${counterList("")}, histogram
         FROM tenant_deltas
         ORDER BY "tenantId"
         ON CONFLICT ("tenantId", hour) DO UPDATE SET
           ${addCounters("AnalyticsTenantHour")}
       )
       INSERT INTO "AnalyticsHeightHour" ("videoId", "tenantId", hour, height, "watchMs")
       SELECT y."videoId", c."tenantId", ${HOUR} AT TIME ZONE 'UTC', y.height, y.ms
       FROM ${HEIGHTS}
       JOIN collecting c ON c."videoId" = y."videoId"
       ORDER BY y."videoId", y.height
       ON CONFLICT ("videoId", hour, height) DO UPDATE SET
         "watchMs" = "AnalyticsHeightHour"."watchMs" + EXCLUDED."watchMs"`;

/** Writes a flush: the views' rows, the videos' and tenants' hours and the heights' hours, in one statement. */
export function writeBeacons(pool: pg.Pool, write: BeaconWrite): Promise<unknown> {
  return pool.query(
    WRITE_BEACONS,
    paramsOf.map((of) => of(write)),
  );
}
