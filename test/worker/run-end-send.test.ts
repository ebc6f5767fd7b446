// A run's end (each rung's outcome and its `job.succeeded`) goes to the transport in one send: over
// Postgres one statement (one commit, one NOTIFY), all or none, where it was one per event
// (docs/performance.md, "A run's end in one send").
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { createPostgresWorkerTransport } from "../../render-worker/transport/postgres.ts";
import type { WorkerTransport } from "../../render-worker/transport/types.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEvent } from "../../src/protocol/job-events.ts";
import { EVENTS_QUEUE } from "../../src/protocol/queues.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/version.ts";
import { parseWorkerEvent } from "../../src/protocol/worker-messages.ts";
import { createPostgresTransport } from "../../src/transport/postgres.ts";
import type { ApiTransport } from "../../src/transport/types.ts";
import { createTestDatabase, queryDatabase, type TestDatabase } from "../support/db.ts";
import { fixturesDir, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";
import { inMemoryTransport } from "./in-memory-transport.ts";
import { startTestWorker } from "./test-worker.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

it("the Postgres transport queues a list of events in one statement, and the API takes each", async () => {
  const db: TestDatabase = await createTestDatabase();
  cleanups.push(() => db.drop());
  const api: ApiTransport = createPostgresTransport({ connectionString: db.url, stallSeconds: 30 });
  await api.start();
  cleanups.push(() => api.stop());
  const received: JobEvent[] = [];
  await api.consumeEvents(async (events) => {
    for (const event of events) received.push(parseWorkerEvent(event) as JobEvent);
  });
  const worker: WorkerTransport = createPostgresWorkerTransport(db.url);
  await worker.start();
  cleanups.push(() => worker.stop());

  const jobId = randomUUID();
  const envelope = { v: PROTOCOL_VERSION, jobId, attempt: 1, workerId: "worker-1" } as const;
  const rung = {
    name: "audio",
    kind: "AUDIO",
    width: null,
    height: null,
    bandwidth: 128_000,
    codecs: "mp4a.40.2",
  } as const;
  const end: JobEvent[] = [
    ...[1, 2, 3].map((seq) => ({
      ...envelope,
      seq,
      at: new Date().toISOString(),
      type: "variant.ready" as const,
      name: `audio${seq}`,
      rung: { ...rung, name: `audio${seq}` },
      playlistKey: `videos/v/hls/audio${seq}/index.m3u8`,
      segmentCount: 3,
    })),
    {
      ...envelope,
      seq: 4,
      at: new Date().toISOString(),
      type: "job.succeeded",
      masterKey: "videos/v/hls/master.m3u8",
      posterKey: null,
    },
  ];
  await worker.publishEvents(end);

  const rows = await queryDatabase(
    db.url,
    "SELECT created_on, (data->>'seq')::int AS seq FROM pgboss.job WHERE name = $1 AND data->>'jobId' = $2",
    [EVENTS_QUEUE, jobId],
  );
  expect(rows.rows.map((r) => r.seq).sort()).toEqual([1, 2, 3, 4]);
  // One statement: its rows share the transaction's time (four sends would have four).
  expect(new Set(rows.rows.map((r) => (r.created_on as Date).toISOString())).size).toBe(1);
  await expect.poll(() => received.length, { timeout: 10_000 }).toBe(4);
  // A batch comes in no set order (pg-boss returns what it claimed as the UPDATE gives it): the
  // API's ingest orders each job's events by seq.
  const bySeq = [...received].sort((a, b) => a.seq - b.seq);
  expect(bySeq.map((e) => [e.type, e.seq])).toEqual(end.map((e) => [e.type, e.seq]));
});

it("a transcode's end, each rung's variant.ready and job.succeeded, is one send with consecutive sequence numbers", async () => {
  const root = await mkdtemp(path.join(fixturesDir(), "run-end-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const memory = inMemoryTransport();
  const worker = await startTestWorker({
    transport: memory.transport,
    storage: createLocalWorkerStorage(root),
    tmpDir: root,
  });
  cleanups.push(() => worker.shutdown(0));
  const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: true });
  const job = await stageTranscodeJob(root, clip, { jobId: randomUUID(), videoId: randomUUID() }, 2);
  await memory.deliver(job, "cpu");

  const ofJob = (events: readonly unknown[]) =>
    events.filter((e): e is JobEvent => (e as JobEvent).jobId === job.jobId);
  const sends = memory.sends.map(ofJob).filter((send) => send.length > 0);
  const last = sends.at(-1)!;
  // 180p, 144p and the audio rung, then the end.
  expect(last.map((e) => e.type)).toEqual(["variant.ready", "variant.ready", "variant.ready", "job.succeeded"]);
  const seqs = last.map((e) => e.seq);
  expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  // Every other event of the run went alone, before it, in order.
  expect(sends.slice(0, -1).every((send) => send.length === 1)).toBe(true);
  expect(ofJob(memory.events).map((e) => e.seq)).toEqual(ofJob(memory.events).map((_, i) => i + 1));
});
