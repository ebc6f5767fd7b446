import type pg from "pg";
import { retryDeadlockVictim } from "../db/deadlock-retry.ts";
import { log } from "../log.ts";
import { type VideoWrite, type ViewWrite, writeBeacons } from "./beacon-write.ts";
import { HOUR_COUNTERS, SUM_COUNTERS, VIEW_COUNTERS, type ViewCounterName } from "./counters.ts";
import type { BatchFigures } from "./ingest.ts";
import { STARTUP_BUCKET_COUNT, startupBucket } from "./startup-histogram.ts";
import type { ViewClaims } from "./view-tokens.ts";

/**
 * What this process remembers of a view: enough to count each batch, startup, failure and completion
 * once, and the watch time it has counted, which `watchBoundMs` bounds.
 */
interface ViewState {
  lastSeq: number;
  startup: boolean;
  /** The view counters (COUNTERS) that counted this view. */
  marked: Record<ViewCounterName, boolean>;
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
  if (f.sums.watchMs <= allowedMs) return f;
  const watchMsByHeight = new Map<number, number>();
  let left = Math.max(0, allowedMs);
  for (const [height, ms] of f.watchMsByHeight) {
    const taken = Math.min(ms, left);
    if (taken > 0) watchMsByHeight.set(height, taken);
    left -= taken;
  }
  return { ...f, sums: { ...f.sums, watchMs: Math.max(0, allowedMs) }, watchMsByHeight };
}

/** A view's batches since the last flush, summed. */
interface ViewDelta extends Omit<ViewWrite, "id"> {
  /** What this process remembered of the view before them: it remembers that again if their write fails. */
  before: ViewState;
}

/** A video's share of the current hour since the last flush, summed over its views. */
interface VideoDelta extends Omit<VideoWrite, "videoId"> {
  watchMsByHeight: Map<number, number>;
}

const zeroOf = <N extends string>(names: readonly N[]) =>
  Object.fromEntries(names.map((n) => [n, 0])) as Record<N, number>;

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
 * Beacon batches, summed in memory and written every `flushEveryMs` in one statement, so 2,000 batches a second
 * are a few statements, not 2,000 upserts of the same busy rollup rows (docs/performance.md, "Viewer analytics").
 * A batch counts once per view by its `seq`; its promise settles when its write lands, so a `202` means written
 * and a failed write is a `503` the player may send again. Readers `flush()` first. A batch retried on another
 * instance may count twice in the rollups (the view row takes it once, by `lastSeq`).
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
      const marked = Object.fromEntries(VIEW_COUNTERS.map((n) => [n, false])) as ViewState["marked"];
      state = { lastSeq: -1, startup: false, marked, watchMs: 0 };
      if (views.size >= MAX_REMEMBERED_VIEWS) views.delete(views.keys().next().value!);
    }
    views.set(viewId, state);
    return state;
  }

  function add(view: ViewClaims, seq: number, reported: BatchFigures, now = Date.now()): Promise<void> | null {
    const state = stateOf(view.viewId);
    if (seq <= state.lastSeq) return null;
    const before = { ...state, marked: { ...state.marked } };
    state.lastSeq = seq;
    const f = withinWatchBound(reported, watchBoundMs(view, now) - state.watchMs);
    state.watchMs += f.sums.watchMs;
    const newStartup = f.startupMs !== null && !state.startup;
    state.startup ||= newStartup;
    // The view counters this batch counts the view in for the first time.
    const newMarks = VIEW_COUNTERS.filter((n) => f.marks[n] !== null && !state.marked[n]);
    for (const n of newMarks) state.marked[n] = true;

    let v = pendingViews.get(view.viewId);
    if (!v) {
      v = {
        before,
        videoId: view.videoId,
        tenantId: view.tenantId,
        firstSeq: seq,
        lastSeq: seq,
        startupMs: null,
        sums: zeroOf(SUM_COUNTERS),
        marks: Object.fromEntries(VIEW_COUNTERS.map((n) => [n, null])) as ViewWrite["marks"],
      };
      pendingViews.set(view.viewId, v);
    }
    v.lastSeq = seq;
    if (newStartup) v.startupMs = f.startupMs;
    for (const n of SUM_COUNTERS) v.sums[n] += f.sums[n];
    for (const n of newMarks) v.marks[n] = f.marks[n];

    let d = pendingVideos.get(view.videoId);
    if (!d) {
      d = {
        tenantId: view.tenantId,
        counters: zeroOf(HOUR_COUNTERS),
        histogram: new Array<number>(STARTUP_BUCKET_COUNT).fill(0),
        watchMsByHeight: new Map(),
      };
      pendingVideos.set(view.videoId, d);
    }
    for (const n of SUM_COUNTERS) d.counters[n] += f.sums[n];
    for (const n of newMarks) d.counters[n]++;
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

  function write(viewDeltas: Map<string, ViewDelta>, videoDeltas: Map<string, VideoDelta>): Promise<unknown> {
    const now = Date.now();
    const hour = new Date(Math.floor(now / 3_600_000) * 3_600_000).toISOString();
    // The rollups' rows are locked in id order (ORDER BY), every video's hour before any tenant's, as a view's
    // start takes them: no two writes deadlock on them. The views' rows go in the order their join gives
    // (a view's batch retried on another instance can meet it there): a deadlock's victim is written again.
    const byId = <T>(a: [string, T], b: [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const ds = [...videoDeltas].sort(byId);
    return writeBeacons(pool, {
      hour,
      views: [...viewDeltas].sort(byId).map(([id, v]) => ({ ...v, id })),
      videos: ds.map(([videoId, d]) => ({ ...d, videoId })),
      heights: ds.flatMap(([videoId, d]) =>
        [...d.watchMsByHeight].sort((a, b) => a[0] - b[0]).map(([height, ms]) => ({ videoId, height, ms })),
      ),
    });
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
