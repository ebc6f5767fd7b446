import pg from "pg";
import type { WorkerEvent } from "../../src/protocol/worker-messages.ts";
import { MAX_PROGRESS_SAMPLE_BYTES, PROGRESS_LOCK_KEY, PROGRESS_NOTIFY_CHANNEL } from "../../src/protocol/queues.ts";
import { log } from "../log.ts";

/** How often the worker looks whether an API instance takes samples (holds their lock). */
const TAKER_CHECK_MS = 5000;

/**
 * The worker's side of progress samples (src/transport/progress-samples.ts): a transcode's
 * `job.progress`, and a heartbeat on the timer, sent with `pg_notify`, with no row, no retry and no
 * wait for a database that is down (the next one says more). Only while an API instance takes
 * them: every 5 s the worker looks whether one holds their lock, and while none does (an API of an
 * earlier release during a rolling deploy, every instance restarting, none ingesting) it sends them
 * through the events queue, where they wait for the API as every event does.
 */
export function createProgressSampleSender(connectionString: string) {
  // Its own connection: a NOTIFY needs no transaction of pg-boss's.
  const pool = new pg.Pool({ connectionString, max: 1, connectionTimeoutMillis: 5000 });
  pool.on("error", (err) => log.warn("progress sample connection lost", { err: err.message }));
  let taken = false;
  let timer: NodeJS.Timeout | null = null;

  async function check(): Promise<void> {
    try {
      const { rows } = await pool.query<{ taken: boolean }>(
        // pg_locks is the whole cluster's: only a taker in this database takes this database's NOTIFYs.
        `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND classid = 0 AND objid = $1 AND objsubid = 1) AS taken`,
        [PROGRESS_LOCK_KEY],
      );
      const now = rows[0]?.taken === true;
      if (now !== taken) log.info(now ? "progress goes as samples" : "progress goes through the events queue");
      taken = now;
    } catch (err) {
      log.debug("could not look for a progress sample taker", { err: (err as Error).message });
    }
  }

  return {
    async start(): Promise<void> {
      await check();
      timer = setInterval(() => void check(), TAKER_CHECK_MS);
      timer.unref();
    },
    /**
     * Sends `event` (a `job.progress` or a `worker.heartbeat`: the API takes no other kind as a
     * sample) as a sample and resolves true, or resolves false: it goes through the queue.
     */
    async send(event: WorkerEvent): Promise<boolean> {
      if ((event.type !== "job.progress" && event.type !== "worker.heartbeat") || !taken) return false;
      const text = JSON.stringify(event);
      if (Buffer.byteLength(text) > MAX_PROGRESS_SAMPLE_BYTES) return false;
      await pool.query("SELECT pg_notify($1, $2)", [PROGRESS_NOTIFY_CHANNEL, text]).catch((err: Error) => {
        log.debug("sample not sent", { type: event.type, err: err.message });
      });
      return true;
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      await pool.end().catch(() => {});
    },
  };
}
