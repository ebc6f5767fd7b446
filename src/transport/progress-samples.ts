import type pg from "pg";
import { PROGRESS_LOCK_KEY, PROGRESS_NOTIFY_CHANNEL } from "../protocol/queues.ts";
import { progressSamples } from "../metrics.ts";
import type { Log } from "../shared/log.ts";
import { listeningClient, PROBE_INTERVAL_MS } from "../shared/postgres-listener.ts";

/** How often an instance that does not take the samples tries to (the holder died or stopped). */
const TAKE_OVER_INTERVAL_MS = 2000;
/**
 * A batch starts this long after the one before it (or after the first sample that finds none
 * applied): what comes meanwhile joins it. Each batch reads its jobs and videos once, so a fleet's
 * samples spread over the second cost a few batches, not one each; 50 ms of a progress bar's 1 s.
 */
const GATHER_MS = 50;

/** Heartbeats wait under their worker's id with this before it: a job's id is a UUID, never this. */
const HEARTBEAT_KEY = "worker ";

/**
 * Where a sample waits and what orders it against the one it may replace: a `job.progress` under
 * its job, by attempt and sequence number; a `worker.heartbeat` (a worker's on its timer:
 * render-worker/heartbeats.ts) under its worker, by its time. Null for anything else: the sample's
 * contract is parsed when its batch is applied, like every worker event.
 */
function sampleKey(raw: unknown): { key: string; order: [number, number]; progress: boolean } | null {
  const { type, jobId, attempt, seq, workerId, at } = (raw ?? {}) as Record<string, unknown>;
  if (type === "worker.heartbeat") {
    const time = typeof at === "string" ? Date.parse(at) : Number.NaN;
    if (typeof workerId !== "string" || Number.isNaN(time)) return null;
    return { key: HEARTBEAT_KEY + workerId, order: [time, 0], progress: false };
  }
  if (typeof jobId !== "string" || typeof attempt !== "number" || typeof seq !== "number") return null;
  return { key: jobId, order: [attempt, seq], progress: true };
}

export interface ProgressSampleOptions {
  connectionString: string;
  log: Pick<Log, "info" | "warn">;
  /** Applies a batch of raw samples (the ingestor's `ingest`); one batch at a time. */
  apply: (samples: unknown[]) => Promise<void>;
}

/**
 * The fleet's `job.progress`, and its workers' heartbeats on their timers, taken as the samples they
 * are (docs/performance.md, "The control plane"): over the embedded transport a worker sends each
 * with `pg_notify` instead of a row in pg-boss's queue, so a sample costs Postgres no insert, fetch,
 * completion or WAL flush. One API instance takes them: the one whose connection holds the session
 * advisory lock `PROGRESS_LOCK_KEY` LISTENs; the others try for the lock every 2 s, so when the taker
 * dies or stops, another takes over within about that (its connection's end releases the lock).
 * Resolves after the first try.
 *
 * What arrives is applied in batches, one at a time, at most one every 50 ms. While one is gathered
 * or applied, the samples that come wait, each job (and each worker's heartbeat) keeping only its
 * latest (a job's progress only grows and each sample carries all of it; a heartbeat says all a
 * worker runs), so an API behind the fleet skips samples instead of queueing them: what it holds is
 * bounded by the jobs and workers running. A sample sent while no instance listens (a takeover, a
 * restart) is lost, as a missed tick of a progress bar is; the next one says more.
 */
export async function takeProgressSamples(options: ProgressSampleOptions): Promise<{ close(): Promise<void> }> {
  const { log } = options;
  let client: pg.Client | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  let probe: NodeJS.Timeout | null = null;
  /**
   * The latest sample of each job (by its id) and of each worker (its heartbeat), waiting for the
   * next batch, with what orders two of them: a job's attempt and sequence number, a heartbeat's time.
   */
  let waiting = new Map<string, { order: [number, number]; progress: boolean; raw: unknown }>();
  let applying: Promise<void> | null = null;

  function received(payload: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(payload);
    } catch {
      progressSamples.inc({ outcome: "malformed" });
      return;
    }
    const sample = sampleKey(raw);
    if (!sample) {
      progressSamples.inc({ outcome: "malformed" });
      return;
    }
    const { key, order, progress } = sample;
    const held = waiting.get(key);
    // A heartbeat superseded by a newer one of its worker is not counted: the metric is progress's.
    if (held && (held.order[0] > order[0] || (held.order[0] === order[0] && held.order[1] > order[1]))) {
      if (progress) progressSamples.inc({ outcome: "superseded" });
      return;
    }
    if (held && progress) progressSamples.inc({ outcome: "superseded" });
    waiting.set(key, { order, progress, raw });
    if (!applying) applying = sleep(GATHER_MS).then(drain);
  }

  async function drain(): Promise<void> {
    while (waiting.size) {
      const started = Date.now();
      const batch = [...waiting.values()].map((w) => w.raw);
      const progress = [...waiting.values()].filter((w) => w.progress).length;
      waiting = new Map();
      try {
        await options.apply(batch);
        progressSamples.inc({ outcome: "applied" }, progress);
      } catch (err) {
        // A sample is not redelivered: the job's (or worker's) next one carries everything it did.
        progressSamples.inc({ outcome: "failed" }, progress);
        log.warn("samples not applied", { count: batch.length, err: (err as Error).message });
      }
      const rest = GATHER_MS - (Date.now() - started);
      if (rest > 0) await sleep(rest);
    }
    applying = null;
  }

  async function tryToTake(): Promise<void> {
    timer = null;
    if (closed) return;
    // Named, so operators see which session holds the samples' lock in pg_stat_activity.
    const next = listeningClient(options.connectionString, "videograph progress samples");
    next.on("notification", (msg) => {
      if (msg.payload !== undefined && client === next) received(msg.payload);
    });
    next.on("error", (err) => lost(next, err));
    next.on("end", () => lost(next, new Error("connection ended")));
    try {
      await next.connect();
      const { rows } = await next.query<{ taken: boolean }>("SELECT pg_try_advisory_lock($1) AS taken", [
        PROGRESS_LOCK_KEY,
      ]);
      if (!rows[0]?.taken || closed) {
        await next.end().catch(() => {});
        return later();
      }
      await next.query(`LISTEN ${PROGRESS_NOTIFY_CHANNEL}`);
    } catch (err) {
      await next.end().catch(() => {});
      if (!closed) log.warn("progress samples: could not listen; retrying", { err: (err as Error).message });
      return later();
    }
    client = next;
    log.info("progress samples: this instance takes them");
    probe = setInterval(() => {
      next.query("SELECT 1").catch((err: Error) => lost(next, err));
    }, PROBE_INTERVAL_MS);
    probe.unref();
  }

  function lost(which: pg.Client, err: Error): void {
    if (client !== which) return;
    client = null;
    if (probe) clearInterval(probe);
    probe = null;
    which.end().catch(() => {});
    if (closed) return;
    log.warn("progress samples: connection lost; trying again", { err: err.message });
    later();
  }

  function later(): void {
    if (closed || timer) return;
    timer = setTimeout(() => void tryToTake(), TAKE_OVER_INTERVAL_MS);
    timer.unref();
  }

  // The first try before the API announces itself (a failed one is tried again later).
  await tryToTake();

  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (probe) clearInterval(probe);
      const current = client;
      client = null;
      // Ending the session releases the lock: another instance takes over at its next try.
      await current?.end().catch(() => {});
      await applying;
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
