// The fleet's progress (and its workers' heartbeats on their timers) over the embedded transport
// travels as NOTIFY samples, not queue rows (src/transport/progress-samples.ts): taken by one API
// instance at a time, another taking over when it stops, each job's latest kept while a batch is
// applied; every other event still in the queue.
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { JobEvent } from "../src/protocol/job-events.ts";
import type { WorkerEvent } from "../src/protocol/worker-messages.ts";
import { EVENTS_QUEUE, PROGRESS_LOCK_KEY } from "../src/protocol/queues.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import { createPostgresTransport } from "../src/transport/postgres.ts";
import type { ApiTransport } from "../src/transport/types.ts";
import { createPostgresWorkerTransport } from "../render-worker/transport/postgres.ts";
import type { WorkerTransport } from "../render-worker/transport/types.ts";
import { createTestDatabase, queryDatabase, type TestDatabase } from "./support/db.ts";

let db: TestDatabase;
let worker: WorkerTransport | null = null;
const apis = new Map<string, ApiTransport>();

/** An API instance's transport whose ingest records what it is handed (and may be slowed); `ingest: false` takes none. */
async function startApi(name: string, received: { api: string; event: JobEvent }[], applyMs = 0, ingest = true) {
  const transport = createPostgresTransport({ connectionString: db.url, stallSeconds: 30 });
  await transport.start();
  const consume = () =>
    transport.consumeEvents(async (events) => {
      for (const event of events) received.push({ api: name, event: event as JobEvent });
      if (applyMs) await new Promise((r) => setTimeout(r, applyMs));
    });
  if (ingest) await consume();
  apis.set(name, transport);
  return { transport, consume };
}

/** A worker's transport, started once an instance takes samples (it looks at its start, then every 5 s). */
async function startWorker() {
  worker = createPostgresWorkerTransport(db.url);
  await worker.start();
  return worker;
}

function progress(jobId: string, seq: number, rungs = 1): JobEvent {
  return {
    v: PROTOCOL_VERSION,
    type: "job.progress",
    jobId,
    attempt: 1,
    seq,
    workerId: "worker-1",
    at: new Date().toISOString(),
    progress: Math.min(1, seq / 100),
    fps: 30,
    speed: 1.2,
    etaSeconds: 10,
    variants: Array.from({ length: rungs }, (_, i) => ({ name: `rung-${i}`, progress: 0.5, segmentCount: 3 })),
  };
}

/** Whether an instance holds the samples' lock (and so LISTENs). */
const takerHolds = async () =>
  (
    await queryDatabase(
      db.url,
      `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = 0
       AND objid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [PROGRESS_LOCK_KEY],
    )
  ).rows[0].n === 1;

const queueRows = async (type: string) =>
  (
    await queryDatabase(db.url, "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND data->>'type' = $2", [
      EVENTS_QUEUE,
      type,
    ])
  ).rows[0].n as number;

beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await worker?.stop();
  worker = null;
  for (const api of apis.values()) await api.stop().catch(() => {});
  apis.clear();
  await db?.drop();
});

it("a job's progress reaches one API instance as a sample with no queue row; its other events go through the queue", async () => {
  const received: { api: string; event: JobEvent }[] = [];
  await startApi("a", received);
  await startApi("b", received);
  // Both instances try for the samples at once; one of them listens.
  await expect.poll(takerHolds, { timeout: 5000 }).toBe(true);
  const worker = await startWorker();
  const jobId = randomUUID();
  for (let seq = 1; seq <= 5; seq++) {
    await worker.publishEvent(progress(jobId, seq));
    // Further apart than a batch gathers (50 ms): each applied, none superseded.
    await new Promise((r) => setTimeout(r, 150));
  }
  await expect.poll(() => received.filter((r) => r.event.type === "job.progress").length, { timeout: 5000 }).toBe(5);
  // Exactly once each, all at one instance.
  expect(new Set(received.map((r) => r.api)).size).toBe(1);
  expect(received.map((r) => r.event.seq)).toEqual([1, 2, 3, 4, 5]);
  expect(await queueRows("job.progress")).toBe(0);

  // A state event still goes through the queue (durable, retried, in order).
  await worker.publishEvent({ ...progress(jobId, 6), type: "job.canceled" } as JobEvent);
  await expect.poll(() => received.some((r) => r.event.type === "job.canceled"), { timeout: 5000 }).toBe(true);
  expect(await queueRows("job.canceled")).toBe(1);

  // A sample too long for a NOTIFY payload goes through the queue as every other event.
  const long = progress(jobId, 7, 200);
  expect(JSON.stringify(long).length).toBeGreaterThan(7900);
  await worker.publishEvent(long);
  expect(await queueRows("job.progress")).toBe(1);
  await expect.poll(() => received.some((r) => r.event.seq === 7), { timeout: 5000 }).toBe(true);

  // The instance taking the samples stops (a deploy): the other takes over within seconds.
  const taker = received[0]!.api;
  const other = taker === "a" ? "b" : "a";
  await apis.get(taker)!.stop();
  apis.delete(taker);
  const tookOver = Date.now();
  let seq = 100;
  await expect
    .poll(
      async () => {
        await worker.publishEvent(progress(jobId, ++seq));
        return received.some((r) => r.api === other && r.event.type === "job.progress");
      },
      { timeout: 8000, interval: 200 },
    )
    .toBe(true);
  expect(Date.now() - tookOver).toBeLessThan(4000);
});

it("while a batch is applied, each job's samples wait as its latest only", async () => {
  const received: { api: string; event: JobEvent }[] = [];
  await startApi("slow", received, 1000);
  await expect.poll(takerHolds, { timeout: 5000 }).toBe(true);
  const worker = await startWorker();
  const jobs = [randomUUID(), randomUUID()];
  // The first sample starts a batch that takes a second; twenty more of each job come meanwhile.
  await worker.publishEvent(progress(jobs[0]!, 1));
  await new Promise((r) => setTimeout(r, 100));
  for (let seq = 2; seq <= 21; seq++) for (const jobId of jobs) await worker.publishEvent(progress(jobId, seq));
  await expect.poll(() => received.length, { timeout: 5000 }).toBe(3);
  await new Promise((r) => setTimeout(r, 1500));
  // The first, then one batch holding each job's latest: nothing older applied after something newer.
  expect(received.map((r) => [jobs.indexOf(r.event.jobId as (typeof jobs)[number]), r.event.seq])).toEqual([
    [0, 1],
    [0, 21],
    [1, 21],
  ]);
});

it("a worker's heartbeat on its timer goes as a sample, each worker's latest kept while a batch is applied; one that says something new goes through the queue", async () => {
  const received: { api: string; event: JobEvent }[] = [];
  await startApi("slow", received, 1000);
  await expect.poll(takerHolds, { timeout: 5000 }).toBe(true);
  const worker = await startWorker();
  const beat = (workerId: string, second: number): WorkerEvent => ({
    v: PROTOCOL_VERSION,
    type: "worker.heartbeat",
    workerId,
    capabilities: ["cpu"],
    activeJobs: [],
    at: `2026-11-29T10:00:${String(second).padStart(2, "0")}.000Z`,
  });
  // The first starts a batch that takes a second; meanwhile worker-1 beats five times more, and
  // worker-2's newer heartbeat comes before its older one.
  await worker.publishEvent(beat("worker-1", 0), { sample: true });
  await new Promise((r) => setTimeout(r, 100));
  for (let second = 1; second <= 5; second++) await worker.publishEvent(beat("worker-1", second), { sample: true });
  await worker.publishEvent(beat("worker-2", 9), { sample: true });
  await worker.publishEvent(beat("worker-2", 8), { sample: true });
  await expect.poll(() => received.length, { timeout: 5000 }).toBe(3);
  const heard = () =>
    received.map(({ event }) => [(event as { workerId: string }).workerId, (event as { at: string }).at]);
  expect(heard()).toEqual([
    ["worker-1", "2026-11-29T10:00:00.000Z"],
    ["worker-1", "2026-11-29T10:00:05.000Z"],
    ["worker-2", "2026-11-29T10:00:09.000Z"],
  ]);
  expect(await queueRows("worker.heartbeat")).toBe(0);
  // A heartbeat sent without `sample` (a capability changed, a reconnect, the last at shutdown) is durable.
  await worker.publishEvent(beat("worker-1", 10));
  expect(await queueRows("worker.heartbeat")).toBe(1);
  await expect.poll(() => heard().at(-1), { timeout: 5000 }).toEqual(["worker-1", "2026-11-29T10:00:10.000Z"]);
});

it("while no API instance takes samples, progress goes through the events queue (a taker in another database of the server does not count); once one does, as samples", async () => {
  const received: { api: string; event: JobEvent }[] = [];
  // Another database of the same server has a taker: its lock is not this database's.
  const elsewhere = await createTestDatabase();
  const otherApi = createPostgresTransport({ connectionString: elsewhere.url, stallSeconds: 30 });
  await otherApi.start();
  await otherApi.consumeEvents(async () => {});
  // An API that ingests nothing yet (an earlier release, or INGEST_EVENTS=false): no one holds the lock here.
  const api = await startApi("late", received, 0, false);
  const worker = await startWorker().finally(async () => {
    await otherApi.stop();
    await elsewhere.drop();
  });
  const jobId = randomUUID();
  await worker.publishEvent(progress(jobId, 1));
  expect(await queueRows("job.progress")).toBe(1);

  await api.consume();
  await expect.poll(takerHolds, { timeout: 5000 }).toBe(true);
  // The queued one is applied; within the worker's next look (5 s), progress goes as samples.
  let seq = 1;
  await expect
    .poll(
      async () => {
        const before = await queueRows("job.progress");
        await worker.publishEvent(progress(jobId, ++seq));
        return (await queueRows("job.progress")) === before;
      },
      { timeout: 8000, interval: 500 },
    )
    .toBe(true);
  await expect.poll(() => received.some((r) => r.event.seq === seq), { timeout: 5000 }).toBe(true);
  // The one sent while no one took samples was applied from the queue.
  expect(received.some((r) => r.event.seq === 1)).toBe(true);
});
