// The Postgres worker transport wakes one idle slot per job published (render-worker/transport/
// job-wakes.ts), where pg-boss's own LISTEN woke every idle slot and each fetched.
import { PgBoss } from "pg-boss";
import { afterEach, describe, expect, it } from "vitest";
import { bossChannel, listenForJobWakes, type QueueSlot } from "../../render-worker/transport/job-wakes.ts";
import { createPostgresWorkerTransport } from "../../render-worker/transport/postgres.ts";
import { jobQueueName } from "../../src/protocol/queues.ts";
import { createPostgresTransport } from "../../src/transport/postgres.ts";
import { createTestDatabase, queryDatabase } from "../support/db.ts";
import { transcodeJobMessage } from "../support/job-events.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function apiTransport() {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const api = createPostgresTransport({ connectionString: db.url, stallSeconds: 30 });
  await api.start();
  cleanups.push(() => api.stop());
  return { db, api };
}

/** A Postgres worker transport taking the cpu queue's jobs with `slots` slots into `handler`. */
async function startWorker(url: string, slots: number, handler: () => Promise<void>) {
  const worker = createPostgresWorkerTransport(url);
  await worker.start();
  cleanups.push(() => worker.stop());
  await worker.consumeJobs(["cpu"], slots, handler);
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Index and sequential scans of pg-boss's job table in this database: a fetch is one. */
async function jobTableScans(url: string): Promise<number> {
  await new Promise((r) => setTimeout(r, 1500)); // backends report their counts within a second of idling
  const { rows } = await queryDatabase(
    url,
    `SELECT coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)::int AS n
       FROM pg_stat_user_tables WHERE schemaname = 'pgboss' AND relname = 'job_common'`,
  );
  return rows[0].n as number;
}

describe("job wakes (Postgres transport)", () => {
  it("the channel is pg-boss's own: the name its SQL derives for the schema", async () => {
    const { db } = await apiTransport();
    const { rows } = await queryDatabase(
      db.url,
      "SELECT 'pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24) AS c",
    );
    expect(bossChannel("pgboss")).toBe(rows[0].c);
  });

  it("each job published wakes one idle slot, none while all are busy, every idle slot after a reconnect", async () => {
    const { db, api } = await apiTransport();
    const woken: string[] = [];
    const wakes = await listenForJobWakes({
      connectionString: db.url,
      schema: "pgboss",
      wake: (id) => woken.push(id),
      pollMs: 3_600_000, // signals only
    });
    cleanups.push(() => wakes.close());
    const slots = wakes.slotsOf(jobQueueName("cpu"));
    for (let i = 0; i < 8; i++) slots.push({ workerId: `slot-${i}`, busy: false, wokenAt: 0 } satisfies QueueSlot);

    for (let i = 0; i < 3; i++) await api.publishJob("cpu", transcodeJobMessage());
    await until(() => woken.length >= 3, 5000);
    await new Promise((r) => setTimeout(r, 300));
    expect(woken).toHaveLength(3);
    expect(new Set(woken).size).toBe(3); // three different slots, none twice

    // A job of another queue wakes none of these.
    await api.publishJob("nvenc", transcodeJobMessage());
    await new Promise((r) => setTimeout(r, 300));
    expect(woken).toHaveLength(3);

    for (const slot of slots) slot.busy = true;
    await api.publishJob("cpu", transcodeJobMessage());
    await new Promise((r) => setTimeout(r, 300));
    expect(woken).toHaveLength(3);

    // The listener's connection is cut: signals sent meanwhile are lost, so every idle slot looks once.
    slots[0]!.busy = false;
    slots[1]!.busy = false;
    woken.length = 0;
    await queryDatabase(
      db.url,
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN pgboss_%'",
    );
    await until(() => woken.length >= 2, 10_000);
    expect(woken.sort()).toEqual(["slot-0", "slot-1"]);
  });

  it("a worker of 32 idle slots takes a job within a second and fetches about once a job, not once a slot", async () => {
    const { db, api } = await apiTransport();
    const taken: number[] = [];
    await startWorker(db.url, 32, async () => {
      taken.push(Date.now());
    });
    await new Promise((r) => setTimeout(r, 1000)); // every slot's first fetch is done
    const before = await jobTableScans(db.url);
    for (let i = 0; i < 5; i++) {
      const publishedAt = Date.now();
      await api.publishJob("cpu", transcodeJobMessage());
      await until(() => taken.length > i, 5000);
      // Well under the 10 s backstop poll: a wake reached a slot.
      expect(taken[i]! - publishedAt).toBeLessThan(1000);
    }
    const scans = (await jobTableScans(db.url)) - before;
    // pg-boss's own LISTEN woke the 31–32 idle slots for each job: 5 jobs, at least 155 fetches (16
    // slots took 186). Now a fetch takes each job and one looks again after it, beside what comes
    // with time: the idle poll (one a second), the API's event fetches and supervision (17 for the
    // 16 slots alone, 40 in a loaded CI run).
    expect(scans).toBeLessThan(80);
  });

  it("a backlog drains through one slot without waiting for the backstop poll", async () => {
    const { db, api } = await apiTransport();
    for (let i = 0; i < 4; i++) await api.publishJob("cpu", transcodeJobMessage());
    let done = 0;
    const startedAt = Date.now();
    await startWorker(db.url, 1, async () => {
      await new Promise((r) => setTimeout(r, 100));
      done++;
    });
    // Each finished job looks again at once: four in well under the second each would wait for the
    // idle poll otherwise (0.6–0.7 s measured).
    await until(() => done === 4, 5000);
    expect(Date.now() - startedAt).toBeLessThan(2500);
  });

  it("a job no signal announces (due after a delay, as pg-boss puts back a lapsed one) is taken within a second or so of being due", async () => {
    const { db } = await apiTransport();
    const taken: number[] = [];
    await startWorker(db.url, 4, async () => {
      taken.push(Date.now());
    });
    const boss = new PgBoss({ connectionString: db.url });
    await boss.start();
    cleanups.push(() => boss.stop({ graceful: false }));
    // Its insert signals nothing: it is not runnable yet. Two, so the second is found by the chain.
    const dueAt = Date.now() + 2000;
    await boss.send(jobQueueName("cpu"), transcodeJobMessage(), { startAfter: 2 });
    await boss.send(jobQueueName("cpu"), transcodeJobMessage(), { startAfter: 2 });
    await until(() => taken.length === 2, 15_000);
    // Each slot alone looks every 30 s; one idle slot a second looks for the process.
    for (const at of taken) expect(at - dueAt).toBeLessThan(2500);
  });
});
