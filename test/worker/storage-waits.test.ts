import { randomUUID } from "node:crypto";
import { open, rm, stat, statfs } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createPostgresWorkerTransport } from "../../render-worker/transport/postgres.ts";
import type { WorkerTransport } from "../../render-worker/transport/types.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { Worker } from "../../render-worker/worker.ts";
import type { JobEvent } from "../../src/protocol/job-events.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { EVENTS_QUEUE } from "../../src/protocol/queues.ts";
import { createTestDatabase, queryDatabase, type TestDatabase } from "../support/db.ts";
import { jobDirsPerTest, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";
import { canMountTmpfs, fillInodes, mountSmallDisk } from "../support/tmpfs.ts";
import { inMemoryTransport } from "./in-memory-transport.ts";
import { startTestWorker } from "./test-worker.ts";

const dirs = jobDirsPerTest("storage-waits");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A worker on `transport` whose runs wait out storage for 60 s; its work dirs under `tmpDir`. */
async function startWorker(transport: WorkerTransport, tmpDir: string, storageDir: string): Promise<Worker> {
  const worker = await startTestWorker({
    transport,
    storage: createLocalWorkerStorage(storageDir),
    storageOutagePatienceSeconds: 60,
    tmpDir,
    x264Preset: "ultrafast",
  });
  cleanups.push(() => worker.shutdown(0));
  return worker;
}

/** Fills the file system of `dir` but for `leaveBytes` with one file; removing it makes room. */
async function fill(dir: string, leaveBytes: number): Promise<{ makeRoom(): Promise<void> }> {
  const file = path.join(dir, "filler");
  const fs = await statfs(dir);
  const bytes = Math.max(0, fs.bavail * fs.bsize - leaveBytes);
  const handle = await open(file, "w");
  try {
    await handle.write(Buffer.alloc(bytes));
  } finally {
    await handle.close();
  }
  return { makeRoom: () => rm(file, { force: true }) };
}

async function transcodeJob(): Promise<TranscodeJobMessage> {
  const clip = await makeClip({ width: 320, height: 180, seconds: 4, audio: true });
  return stageTranscodeJob(dirs.dataDir, clip, { jobId: randomUUID(), videoId: randomUUID() }, 2);
}

const typesOf = (events: readonly { type: string }[]) => events.map((e) => e.type);

// A real ENOSPC from a small tmpfs: mounting one needs root.
describe.skipIf(!canMountTmpfs)("a full disk is waited out like a storage outage (tmpfs; needs root)", () => {
  it("a work dir full when the job starts: the run goes on once there is room, in its attempt, with no failure reported", async () => {
    const job = await transcodeJob();
    const tmpDir = path.join(dirs.root, "tmp");
    const disk = await mountSmallDisk(tmpDir, 8 * 1024 * 1024);
    cleanups.push(() => disk.unmount());
    const memory = inMemoryTransport();
    await startWorker(memory.transport, tmpDir, dirs.dataDir);
    const full = await fill(tmpDir, 16 * 1024);
    const delivered = memory.deliver(job, "cpu");
    // The disk stays full through the first tries (1 s, then 2 s apart).
    await new Promise((r) => setTimeout(r, 3500));
    const duringFull = typesOf(memory.events.filter((e) => e.type !== "worker.heartbeat"));
    await full.makeRoom();
    await delivered;
    const events = memory.events.filter((e): e is JobEvent => e.type !== "worker.heartbeat");
    expect(duringFull).toContain("job.started");
    expect(typesOf(events)).not.toContain("job.failed");
    expect(typesOf(events)).toContain("job.succeeded");
    expect(new Set(events.map((e) => e.attempt))).toEqual(new Set([1]));
  }, 90_000);

  it("a work dir with no room for the run's own dir (no byte or inode left): the run waits and goes on once there is room, in its attempt, with no failure reported", async () => {
    const job = await transcodeJob();
    const tmpDir = path.join(dirs.root, "tmp-inodes");
    const disk = await mountSmallDisk(tmpDir, 8 * 1024 * 1024, { inodes: 256 });
    cleanups.push(() => disk.unmount());
    const memory = inMemoryTransport();
    await startWorker(memory.transport, tmpDir, dirs.dataDir);
    const full = await fill(tmpDir, 16 * 1024);
    const inodes = await fillInodes(tmpDir);
    const delivered = memory.deliver(job, "cpu");
    await new Promise((r) => setTimeout(r, 3500));
    const duringFull = typesOf(memory.events.filter((e) => e.type !== "worker.heartbeat"));
    await rm(inodes, { recursive: true, force: true });
    await full.makeRoom();
    await delivered;
    const events = memory.events.filter((e): e is JobEvent => e.type !== "worker.heartbeat");
    // A run that fails making its dir reports job.failed at once (ENOSPC, mkdtemp), before job.started.
    expect(duringFull).not.toContain("job.failed");
    expect(typesOf(events)).not.toContain("job.failed");
    expect(typesOf(events)).toContain("job.succeeded");
    expect(new Set(events.map((e) => e.attempt))).toEqual(new Set([1]));
  }, 90_000);

  it("storage full mid-job: its upload waits for room and the job succeeds in its attempt", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 4, audio: true });
    const disk = await mountSmallDisk(dirs.dataDir, (await stat(clip)).size + 4 * 1024 * 1024);
    cleanups.push(() => disk.unmount());
    const job = await stageTranscodeJob(dirs.dataDir, clip, { jobId: randomUUID(), videoId: randomUUID() }, 2);
    const full = await fill(dirs.dataDir, 16 * 1024);
    const memory = inMemoryTransport();
    await startWorker(memory.transport, dirs.workDir, dirs.dataDir);
    const delivered = memory.deliver(job, "cpu");
    await new Promise((r) => setTimeout(r, 4000));
    await full.makeRoom();
    await delivered;
    const types = typesOf(memory.events.filter((e) => e.type !== "worker.heartbeat"));
    expect(types).not.toContain("job.failed");
    expect(types).toContain("job.succeeded");
  }, 90_000);
});

/**
 * The worker's events go to a real Postgres through the real transport, and its job comes from the
 * test. What Postgres answers is made by a trigger on pg-boss's job table (not a real full disk: a
 * data dir filled to ENOSPC makes Postgres PANIC on a WAL write as often as it fails the insert).
 */
describe("a database that refuses a run's events does not cost the job an attempt", () => {
  /** A fresh database, dropped after the worker on it stopped. */
  async function testDatabase(): Promise<TestDatabase> {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    return database;
  }

  /** The worker's transport: the job from the test, the events into `db`'s queue (kept once sent). */
  async function transportOn(db: TestDatabase) {
    const memory = inMemoryTransport();
    const postgres = createPostgresWorkerTransport(db.url);
    await postgres.start();
    cleanups.push(() => postgres.stop());
    const transport: WorkerTransport = {
      ...memory.transport,
      async publishEvent(event) {
        await postgres.publishEvent(event);
        await memory.transport.publishEvent(event);
      },
      async publishEvents(events) {
        await postgres.publishEvents(events);
        await memory.transport.publishEvents(events);
      },
    };
    return { memory, transport };
  }

  /** The types of the events of `jobId` in the database's events queue. */
  async function queuedTypes(db: TestDatabase, jobId: string): Promise<string[]> {
    const { rows } = await queryDatabase(
      db.url,
      `SELECT data->>'type' AS type FROM pgboss.job WHERE name = $1 AND data->>'jobId' = $2 ORDER BY created_on`,
      [EVENTS_QUEUE, jobId],
    );
    return rows.map((r) => r.type as string);
  }

  it(`events refused as out of space (disk_full, from a trigger) wait for the database, and the job succeeds in its \
attempt`, async () => {
    const database = await testDatabase();
    await queryDatabase(
      database.url,
      `CREATE TABLE disk_full_until (until timestamptz);
       INSERT INTO disk_full_until VALUES (now() + interval '4 seconds');
       CREATE FUNCTION refuse_as_full() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.name = '${EVENTS_QUEUE}' AND NEW.data->>'type' <> 'worker.heartbeat'
           AND now() < (SELECT until FROM disk_full_until) THEN
           RAISE EXCEPTION 'could not extend file "base/16384/17359": No space left on device'
             USING ERRCODE = 'disk_full';
         END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER refuse_as_full BEFORE INSERT ON pgboss.job FOR EACH ROW EXECUTE FUNCTION refuse_as_full();`,
    );
    const { memory, transport } = await transportOn(database);
    await startWorker(transport, dirs.workDir, dirs.dataDir);
    const job = await transcodeJob();
    await memory.deliver(job, "cpu");
    const types = await queuedTypes(database, job.jobId);
    expect(types).not.toContain("job.failed");
    expect(types).toContain("job.succeeded");
  }, 90_000);

  it(`an event the database refuses for good (a trigger) hands the job back to the transport instead of reporting \
a failure that would burn an attempt`, async () => {
    const database = await testDatabase();
    await queryDatabase(
      database.url,
      `CREATE FUNCTION refuse_probed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.name = '${EVENTS_QUEUE}' AND NEW.data->>'type' = 'job.probed' THEN
           RAISE EXCEPTION 'could not write to file "pg_wal/xlogtemp.123"';
         END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER refuse_probed BEFORE INSERT ON pgboss.job FOR EACH ROW EXECUTE FUNCTION refuse_probed();`,
    );
    const { memory, transport } = await transportOn(database);
    await startWorker(transport, dirs.workDir, dirs.dataDir);
    const job = await transcodeJob();
    await expect(memory.deliver(job, "cpu")).rejects.toThrow(/could not be sent/);
    const types = await queuedTypes(database, job.jobId);
    expect(types).toContain("job.started");
    expect(types).not.toContain("job.failed");
  }, 90_000);
});
