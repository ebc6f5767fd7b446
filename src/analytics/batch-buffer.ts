import type pg from "pg";
import { retryDeadlockVictim } from "../db/deadlock-retry.ts";
import { log } from "../log.ts";
import type { BatchFigures } from "./ingest.ts";
import { emptyHourCounters, type HourCounters, startupBucket } from "./startup-histogram.ts";
import type { ViewClaims } from "./view-tokens.ts";

/**
 * What this process remembers of a view: enough to count each batch, startup, failure and completion
 * once, and the watch time it has counted, which `watchBoundMs` bounds.
 */
interface ViewState {
  lastSeq: number;
  startup: boolean;
  failed: boolean;
  completed: boolean;
  watchMs: number;
}

/**
 * How much watch time one view may report (docs/analytics.md, "What is protected"): a player counts
 * the media time it played, so a viewer at up to `playbackRate` times speed, plus `allowanceMs` for
 * the time between the view's start and its first request; and, for a video of known duration, at
 * most `durationMultiple` times it (a few replays) plus the same allowance.
 */
export const WATCH_BOUNDS = { playbackRate: 2, allowanceMs: 30_000, durationMultiple: 4 } as const;

/** The most watch time a view of these claims may have counted by `now` (ms). */
function watchBoundMs(view: Pick<ViewClaims, "startedAt" | "durationMs">, now: number): number {
  const { playbackRate, allowanceMs, durationMultiple } = WATCH_BOUNDS;
  const bySinceStart = Math.max(0, now - view.startedAt) * playbackRate + allowanceMs;
  return view.durationMs === null
    ? bySinceStart
    : Math.min(bySinceStart, view.durationMs * durationMultiple + allowanceMs);
}

/**
 * The batch's watch time cut to what `allowedMs` leaves, height by height in the batch's order; the
 * same figures when it fits.
 */
function withinWatchBound(f: BatchFigures, allowedMs: number): BatchFigures {
  if (f.watchMs <= allowedMs) return f;
  const watchMsByHeight = new Map<number, number>();
  let left = Math.max(0, allowedMs);
  for (const [height, ms] of f.watchMsByHeight) {
    const taken = Math.min(ms, left);
    if (taken > 0) watchMsByHeight.set(height, taken);
    left -= taken;
  }
  return { ...f, watchMs: Math.max(0, allowedMs), watchMsByHeight };
}

/** A view's batches since the last flush, summed. */
interface ViewDelta {
  /** What this process remembered of the view before them: it remembers that again if their write fails. */
  before: ViewState;
  videoId: string;
  tenantId: string;
  firstSeq: number;
  lastSeq: number;
  startupMs: number | null;
  watchMs: number;
  rebufferCount: number;
  rebufferMs: number;
  renditionSwitches: number;
  failureCode: string | null;
  completed: boolean;
}

/** A video's share of the current hour since the last flush, summed over its views. */
interface VideoDelta extends HourCounters {
  tenantId: string;
  watchMsByHeight: Map<number, number>;
}

/**
 * The SET list of an hourly rollup's upsert (`AnalyticsHour`, `AnalyticsTenantHour`): each of its
 * counters (HourCounters) plus the new row's, the startup histograms bucket by bucket.
 */
function addCounters(table: "AnalyticsHour" | "AnalyticsTenantHour"): string {
  const sums = ["watchMs", "rebufferCount", "rebufferMs", "renditionSwitches", "failedViews", "completedViews"].map(
    (column) => `"${column}" = "${table}"."${column}" + EXCLUDED."${column}"`,
  );
  return [
    ...sums,
    `"startupHistogram" = (SELECT array_agg(COALESCE(a, 0) + COALESCE(b, 0) ORDER BY i)
             FROM unnest("${table}"."startupHistogram", EXCLUDED."startupHistogram") WITH ORDINALITY AS u(a, b, i))`,
  ].join(",\n           ");
}

const ADD_TO_VIDEO_HOUR = addCounters("AnalyticsHour");
const ADD_TO_TENANT_HOUR = addCounters("AnalyticsTenantHour");

/** The batches of one flush: settled when their write lands (rejected when it failed). */
function writeOutcome() {
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const written = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  // A caller that does not wait for it (a test adding figures) leaves no unhandled rejection.
  written.catch(() => {});
  return { written, ...settle };
}

/** Views this process remembers (their last seq and flags); the oldest are forgotten past it. */
const MAX_REMEMBERED_VIEWS = 200_000;

/**
 * Beacon batches, summed in memory and written every `flushEveryMs` in one statement for all the
 * views, videos and tenants that reported meanwhile: at 2,000 batches a second Postgres sees a few
 * statements a second instead of 2,000 upserts of the same busy rollup rows. A batch is counted once
 * per view by its `seq` (a repeat is null, synchronously); a view's first startup, fatal failure and
 * completion count once. A batch taken gives a promise settled when its write lands, rejected when
 * the write failed (the database restarting, say): the endpoint answers only then, so a `202` means
 * written and a failed write is a `503`, and the view's batches may be sent again. What is pending is
 * lost if the process dies (at most `flushEveryMs` of beacons, unanswered); readers call `flush()`
 * first, so a query sees every batch this process accepted. A batch retried on another API instance may count twice in the rollups (the raw view
 * row still takes it once, by `lastSeq`).
 */
export function createBatchBuffer(pool: pg.Pool, flushEveryMs: number) {
  const views = new Map<string, ViewState>();
  let pendingViews = new Map<string, ViewDelta>();
  let pendingVideos = new Map<string, VideoDelta>();
  let pendingWrite = writeOutcome();
  let flushing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;

  function stateOf(viewId: string): ViewState {
    let state = views.get(viewId);
    if (state) {
      // Most recently used last, so the oldest go first.
      views.delete(viewId);
    } else {
      state = { lastSeq: -1, startup: false, failed: false, completed: false, watchMs: 0 };
      if (views.size >= MAX_REMEMBERED_VIEWS) views.delete(views.keys().next().value!);
    }
    views.set(viewId, state);
    return state;
  }

  function add(view: ViewClaims, seq: number, reported: BatchFigures, now = Date.now()): Promise<void> | null {
    const state = stateOf(view.viewId);
    if (seq <= state.lastSeq) return null;
    const before = { ...state };
    state.lastSeq = seq;
    const f = withinWatchBound(reported, watchBoundMs(view, now) - state.watchMs);
    state.watchMs += f.watchMs;
    const newStartup = f.startupMs !== null && !state.startup;
    const newFailure = f.fatalFailureCode !== null && !state.failed;
    const newCompletion = f.completed && !state.completed;
    state.startup ||= newStartup;
    state.failed ||= newFailure;
    state.completed ||= newCompletion;

    let v = pendingViews.get(view.viewId);
    if (!v) {
      v = {
        before,
        videoId: view.videoId,
        tenantId: view.tenantId,
        firstSeq: seq,
        lastSeq: seq,
        startupMs: null,
        watchMs: 0,
        rebufferCount: 0,
        rebufferMs: 0,
        renditionSwitches: 0,
        failureCode: null,
        completed: false,
      };
      pendingViews.set(view.viewId, v);
    }
    v.lastSeq = seq;
    if (newStartup) v.startupMs = f.startupMs;
    v.watchMs += f.watchMs;
    v.rebufferCount += f.rebufferCount;
    v.rebufferMs += f.rebufferMs;
    v.renditionSwitches += f.renditionSwitches;
    if (newFailure) v.failureCode = f.fatalFailureCode;
    v.completed ||= newCompletion;

    let d = pendingVideos.get(view.videoId);
    if (!d) {
      d = { tenantId: view.tenantId, ...emptyHourCounters(), watchMsByHeight: new Map() };
      pendingVideos.set(view.videoId, d);
    }
    d.watchMs += f.watchMs;
    d.rebufferCount += f.rebufferCount;
    d.rebufferMs += f.rebufferMs;
    d.renditionSwitches += f.renditionSwitches;
    if (newFailure) d.failedViews++;
    if (newCompletion) d.completedViews++;
    if (newStartup) d.histogram[startupBucket(f.startupMs!)]!++;
    for (const [height, ms] of f.watchMsByHeight)
      d.watchMsByHeight.set(height, (d.watchMsByHeight.get(height) ?? 0) + ms);
    return pendingWrite.written;
  }

  /** A write that failed: each of its views is remembered as before its batches, unless newer ones came since. */
  function forget(viewDeltas: Map<string, ViewDelta>): void {
    for (const [viewId, v] of viewDeltas) {
      const state = views.get(viewId);
      if (state?.lastSeq === v.lastSeq) Object.assign(state, v.before);
    }
  }

  async function write(viewDeltas: Map<string, ViewDelta>, videoDeltas: Map<string, VideoDelta>): Promise<void> {
    const now = Date.now();
    const hour = new Date(Math.floor(now / 3_600_000) * 3_600_000).toISOString();
    // The rollups' rows are locked in id order (ORDER BY), every video's hour before any tenant's, as a view's
    // start takes them: no two writes deadlock on them. The views' rows go in the order their join gives
    // (a view's batch retried on another instance can meet it there): a deadlock's victim is written again.
    const byId = <T>(a: [string, T], b: [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const vs = [...viewDeltas].sort(byId);
    const ds = [...videoDeltas].sort(byId);
    const heights = ds.flatMap(([videoId, d]) =>
      [...d.watchMsByHeight].sort((a, b) => a[0] - b[0]).map(([h, ms]) => [videoId, h, ms] as const),
    );
    // Views: each row takes its batches once (lastSeq). Rollups: the hour of the flush, for videos that
    // still exist and whose tenant collects (the token's tenant must be the video's).
    await pool.query(
      `WITH d AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[], $6::int[], $7::bigint[],
           $8::int[], $9::bigint[], $10::int[], $11::text[], $12::boolean[])
           AS d(id, "videoId", "tenantId", "firstSeq", "lastSeq", "startupMs", "watchMs", "rebufferCount",
             "rebufferMs", "renditionSwitches", "failureCode", completed)
       ), collecting AS (
         SELECT v.id AS "videoId", v."tenantId" FROM "Video" v JOIN "Tenant" t ON t.id = v."tenantId"
         WHERE t."analyticsEnabled" AND v.id = ANY($13::uuid[])
       ), views AS (
         UPDATE "AnalyticsView" v SET
           "lastSeq" = d."lastSeq",
           "lastBeaconAt" = now() AT TIME ZONE 'UTC',
           "startupMs" = COALESCE(v."startupMs", d."startupMs"),
           "watchMs" = v."watchMs" + d."watchMs",
           "rebufferCount" = v."rebufferCount" + d."rebufferCount",
           "rebufferMs" = v."rebufferMs" + d."rebufferMs",
           "renditionSwitches" = v."renditionSwitches" + d."renditionSwitches",
           failed = v.failed OR d."failureCode" IS NOT NULL,
           "failureCode" = COALESCE(v."failureCode", d."failureCode"),
           completed = v.completed OR d.completed
         FROM d JOIN collecting c ON c."videoId" = d."videoId" AND c."tenantId" = d."tenantId"
         WHERE v.id = d.id AND v."videoId" = d."videoId" AND v."lastSeq" < d."firstSeq"
       ), hours AS (
         INSERT INTO "AnalyticsHour" ("videoId", "tenantId", hour, "watchMs", "rebufferCount", "rebufferMs",
           "renditionSwitches", "failedViews", "completedViews", "startupHistogram")
         SELECT x."videoId", c."tenantId", $14::timestamptz AT TIME ZONE 'UTC', x."watchMs", x."rebufferCount",
           x."rebufferMs", x."renditionSwitches", x."failedViews", x."completedViews",
           (SELECT array_agg(n::int ORDER BY i) FROM jsonb_array_elements_text(x.histogram) WITH ORDINALITY AS h(n, i))
         FROM unnest($13::uuid[], $15::uuid[], $16::bigint[], $17::int[], $18::bigint[], $19::int[], $20::int[],
           $21::int[], $22::jsonb[])
           AS x("videoId", "tenantId", "watchMs", "rebufferCount", "rebufferMs", "renditionSwitches", "failedViews",
             "completedViews", histogram)
         JOIN collecting c ON c."videoId" = x."videoId" AND c."tenantId" = x."tenantId"
         ORDER BY x."videoId"
         ON CONFLICT ("videoId", hour) DO UPDATE SET
           ${ADD_TO_VIDEO_HOUR}
         RETURNING "tenantId", "videoId"
       ), tenant_deltas AS (
         -- The same deltas summed per tenant, for the videos written above (their histograms bucket by bucket).
         -- Read from what \`hours\` returns, so every video's hour is written before any tenant's hour: the
         -- order a view's start takes them in (\`startView\`), or the two would deadlock.
         SELECT c."tenantId", sum(x."watchMs") AS "watchMs", sum(x."rebufferCount")::int AS "rebufferCount",
           sum(x."rebufferMs") AS "rebufferMs", sum(x."renditionSwitches")::int AS "renditionSwitches",
           sum(x."failedViews")::int AS "failedViews", sum(x."completedViews")::int AS "completedViews",
           (SELECT array_agg(s ORDER BY i) FROM (
             SELECT h.i, sum(h.n::int)::int AS s
             FROM unnest($13::uuid[], $22::jsonb[]) AS y("videoId", histogram)
             JOIN collecting c2 ON c2."videoId" = y."videoId",
             jsonb_array_elements_text(y.histogram) WITH ORDINALITY AS h(n, i)
             WHERE c2."tenantId" = c."tenantId" GROUP BY h.i) AS per_bucket) AS histogram
         FROM unnest($13::uuid[], $16::bigint[], $17::int[], $18::bigint[], $19::int[], $20::int[], $21::int[])
           AS x("videoId", "watchMs", "rebufferCount", "rebufferMs", "renditionSwitches", "failedViews", "completedViews")
         JOIN hours c ON c."videoId" = x."videoId"
         GROUP BY c."tenantId"
       ), tenant_hours AS (
         INSERT INTO "AnalyticsTenantHour" ("tenantId", hour, "watchMs", "rebufferCount", "rebufferMs",
           "renditionSwitches", "failedViews", "completedViews", "startupHistogram")
         SELECT "tenantId", $14::timestamptz AT TIME ZONE 'UTC', "watchMs", "rebufferCount", "rebufferMs",
           "renditionSwitches", "failedViews", "completedViews", histogram
         FROM tenant_deltas
         ORDER BY "tenantId"
         ON CONFLICT ("tenantId", hour) DO UPDATE SET
           ${ADD_TO_TENANT_HOUR}
       )
       INSERT INTO "AnalyticsHeightHour" ("videoId", "tenantId", hour, height, "watchMs")
       SELECT y."videoId", c."tenantId", $14::timestamptz AT TIME ZONE 'UTC', y.height, y.ms
       FROM unnest($23::uuid[], $24::int[], $25::bigint[]) AS y("videoId", height, ms)
       JOIN collecting c ON c."videoId" = y."videoId"
       ORDER BY y."videoId", y.height
       ON CONFLICT ("videoId", hour, height) DO UPDATE SET
         "watchMs" = "AnalyticsHeightHour"."watchMs" + EXCLUDED."watchMs"`,
      [
        vs.map(([id]) => id),
        vs.map(([, v]) => v.videoId),
        vs.map(([, v]) => v.tenantId),
        vs.map(([, v]) => v.firstSeq),
        vs.map(([, v]) => v.lastSeq),
        vs.map(([, v]) => v.startupMs),
        vs.map(([, v]) => v.watchMs),
        vs.map(([, v]) => v.rebufferCount),
        vs.map(([, v]) => v.rebufferMs),
        vs.map(([, v]) => v.renditionSwitches),
        vs.map(([, v]) => v.failureCode),
        vs.map(([, v]) => v.completed),
        ds.map(([id]) => id),
        hour,
        ds.map(([, d]) => d.tenantId),
        ds.map(([, d]) => d.watchMs),
        ds.map(([, d]) => d.rebufferCount),
        ds.map(([, d]) => d.rebufferMs),
        ds.map(([, d]) => d.renditionSwitches),
        ds.map(([, d]) => d.failedViews),
        ds.map(([, d]) => d.completedViews),
        ds.map(([, d]) => JSON.stringify(d.histogram)),
        heights.map(([videoId]) => videoId),
        heights.map(([, h]) => h),
        heights.map(([, , ms]) => ms),
      ],
    );
  }

  /** Writes what is pending (after any write under way); resolves once it is in the database. */
  function flush(): Promise<void> {
    flushing = flushing.then(async () => {
      if (pendingViews.size === 0) return;
      const viewDeltas = pendingViews;
      const videoDeltas = pendingVideos;
      const outcome = pendingWrite;
      pendingViews = new Map();
      pendingVideos = new Map();
      pendingWrite = writeOutcome();
      // A failed write loses these beacons rather than retrying without end: their batches are
      // answered 503 and their views stay countable. The write is one statement: a deadlock's victim
      // (the views' rows go in the order the join gives, and a statement from outside keeps no order
      // of ours) is written again.
      try {
        await retryDeadlockVictim("analytics: a write of beacons", () => write(viewDeltas, videoDeltas));
        outcome.resolve();
      } catch (err) {
        log.warn("analytics: a write of beacons failed; they are answered 503", { err, views: viewDeltas.size });
        forget(viewDeltas);
        outcome.reject(err);
      }
    });
    return flushing;
  }

  return {
    add,
    flush,
    start(): void {
      timer = setInterval(() => void flush(), flushEveryMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      await flush();
    },
  };
}
