import type { Db } from "../../src/db/client.ts";
import type { TestApp } from "./app.ts";
import { queryDatabase } from "./db.ts";

// Live admission counts the live slots of the workers it has heard from (docs/live.md "Capacity").

/**
 * A worker serving `live` with `liveSlots`, as its heartbeat leaves it in the database, for tests that
 * start broadcasts with no worker process (their LIVE jobs stay QUEUED): stamped an hour ahead, so it
 * counts as alive for the whole file without heartbeats.
 */
export async function standInLiveWorker(db: Db, liveSlots: number, id = "stand-in-live"): Promise<void> {
  const row = { capabilities: ["live"], slots: 1, liveSlots, lastHeartbeatAt: new Date(Date.now() + 3600_000) };
  await db.worker.upsert({ where: { id }, create: { id, ...row }, update: row });
}

/**
 * Waits until the worker `workerId` (a process of the test's own) has heartbeated into `database`
 * (a test database, which API processes of the test may share): its live slots count from then.
 */
export async function workerReported(database: { url: string }, workerId: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while ((await queryDatabase(database.url, `SELECT 1 FROM "Worker" WHERE id = $1`, [workerId])).rowCount === 0) {
    if (Date.now() > until) throw new Error(`the worker ${workerId} did not heartbeat within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until each of the app's workers has heartbeated: before that, its live slots do not count. */
export async function workersReported(t: TestApp): Promise<void> {
  const reported = await Promise.all(t.workers.map((w) => w.reported(t.app.services.db, 30_000)));
  if (reported.includes(false)) throw new Error("a worker did not heartbeat within 30 s");
}
