import { ContentKeys } from "../src/content-protection/content-keys.ts";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../src/db/client.ts";
import { createDispatcher } from "../src/jobs/dispatcher.ts";
import { TranscodeJobMessage } from "../src/protocol/transcode-messages.ts";
import { jobQueueName } from "../src/protocol/queues.ts";
import { createPostgresTransport } from "../src/transport/postgres.ts";
import type { ApiTransport } from "../src/transport/types.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

describe("dispatcher (outbox) with the Postgres transport", () => {
  let database: TestDatabase;
  let db: Db;
  let transport: ApiTransport;
  let reader: PgBoss;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    transport = createPostgresTransport({ connectionString: database.url, stallSeconds: 10 });
    await transport.start();
    reader = new PgBoss({ connectionString: database.url, supervise: false, schedule: false });
    await reader.start();
  });
  afterAll(async () => {
    await reader.stop({ graceful: false });
    await transport.stop();
    await db.$disconnect();
    await database.drop();
  });

  async function queuedMessages() {
    const jobs = await reader.fetch(jobQueueName("cpu"), { batchSize: 50 });
    return jobs.map((j) => TranscodeJobMessage.parse(j.data));
  }

  const CHUNKING = { chunkSeconds: 60, firstChunkSeconds: 10 };
  const dispatcherFor = (vanishedAfterSeconds = 90, chunking: typeof CHUNKING | null = null) =>
    createDispatcher({
      db,
      transport,
      segmentSeconds: 2,
      maxDurationSeconds: 60,
      contentKeys: new ContentKeys("a dispatcher test's signing secret, 32+ bytes"),
      urlImport: { maxBytes: 1e6, allowPrivateAddresses: false },
      vanishedAfterSeconds,
      chunking,
    });

  async function sweep(vanishedAfterSeconds = 90, chunking: typeof CHUNKING | null = null) {
    const dispatcher = dispatcherFor(vanishedAfterSeconds, chunking);
    dispatcher.start();
    await dispatcher.stop();
  }

  it("publishes a queued job once, stamps it, and leaves a retry alone until its runAfter", async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", sourceKey: "videos/x/source/upload" },
    });
    const now = await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE" } });
    const later = await db.job.create({
      data: { videoId: video.id, kind: "TRANSCODE", attempt: 2, runAfter: new Date(Date.now() + 60_000) },
    });
    await sweep();
    await sweep();
    const messages = await queuedMessages();
    expect(messages.map((m) => [m.jobId, m.attempt, m.options.segmentSeconds, m.options.maxDurationSeconds])).toEqual([
      [now.id, 1, 2, 60],
    ]);
    expect((await db.job.findUniqueOrThrow({ where: { id: now.id } })).dispatchedAt).not.toBeNull();
    expect((await db.job.findUniqueOrThrow({ where: { id: later.id } })).dispatchedAt).toBeNull();
  });

  it(`queues again a RUNNING job whose worker went silent, and leaves a live one alone \
(startup recovery)`, async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "PROCESSING", sourceKey: "videos/y/source/upload" },
    });
    const silent = await db.job.create({
      data: {
        videoId: video.id,
        kind: "TRANSCODE",
        status: "RUNNING",
        workerId: "gone",
        dispatchedAt: new Date(0),
        heartbeatAt: new Date(Date.now() - 120_000),
      },
    });
    const alive = await db.job.create({
      data: {
        videoId: video.id,
        kind: "TRANSCODE",
        status: "RUNNING",
        workerId: "here",
        dispatchedAt: new Date(0),
        heartbeatAt: new Date(),
      },
    });
    await sweep(90);
    const messages = await queuedMessages();
    expect(messages.map((m) => m.jobId)).toEqual([silent.id]);
    expect(await db.job.findUniqueOrThrow({ where: { id: silent.id } })).toMatchObject({
      status: "QUEUED",
      attempt: 1,
      workerId: null,
    });
    expect(await db.job.findUniqueOrThrow({ where: { id: alive.id } })).toMatchObject({
      status: "RUNNING",
      workerId: "here",
    });
  });

  it(`fails a job no worker could run (a transcode without a source) and still dispatches the \
ones behind it`, async () => {
    const broken = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "no source", status: "QUEUED" },
    });
    const good = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", sourceKey: "videos/z/source/upload" },
    });
    const bad = await db.job.create({ data: { videoId: broken.id, kind: "TRANSCODE" } });
    const fine = await db.job.create({ data: { videoId: good.id, kind: "TRANSCODE" } });
    await sweep();
    expect((await queuedMessages()).map((m) => m.jobId)).toEqual([fine.id]);
    expect(await db.job.findUniqueOrThrow({ where: { id: bad.id } })).toMatchObject({
      status: "FAILED",
      error: expect.stringMatching(/cannot be sent to a worker: .*no source/),
    });
    expect(await db.video.findUniqueOrThrow({ where: { id: broken.id } })).toMatchObject({ status: "FAILED" });
  });

  it("lets a transcode split only while two cpu workers have free slots, and tells it their slots", async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", sourceKey: "videos/c/source/upload" },
    });
    // Earlier tests' jobs, sent and never taken, would hold cpu slots here.
    await db.job.updateMany({ where: { status: { in: ["QUEUED", "RUNNING"] } }, data: { status: "CANCELED" } });
    const transcode = async () => {
      const job = await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE" } });
      await sweep(90, CHUNKING);
      const sent = (await queuedMessages()).find((m) => m.jobId === job.id)!;
      // Taken and done: it holds no slot in the next sweep.
      await db.job.update({ where: { id: job.id }, data: { status: "SUCCEEDED" } });
      return sent.options.chunking;
    };
    const runningOn = (workerId: string) =>
      db.job.create({
        data: {
          videoId: video.id,
          kind: "RENDER_MANIM",
          status: "RUNNING",
          workerId,
          dispatchedAt: new Date(),
          heartbeatAt: new Date(),
        },
      });
    const sentNotTaken = () =>
      db.job.create({
        data: { videoId: video.id, kind: "TRANSCODE", dispatchedAt: new Date(), dispatchedTo: "cpu" },
      });
    await db.worker.deleteMany();
    const now = new Date();
    await db.worker.create({ data: { id: "cpu-a", capabilities: ["cpu"], slots: 3, lastHeartbeatAt: now } });
    await db.worker.create({ data: { id: "gpu-b", capabilities: ["nvenc"], slots: 8, lastHeartbeatAt: now } });
    await db.worker.create({ data: { id: "cpu-gone", capabilities: ["cpu"], slots: 8, lastHeartbeatAt: new Date(0) } });
    // One cpu worker alive (the embedded default's one): never split, whatever its slots.
    expect(await transcode()).toBeUndefined();
    await db.worker.create({ data: { id: "cpu-c", capabilities: ["cpu", "manim"], slots: 2, lastHeartbeatAt: now } });
    expect(await transcode()).toEqual({ ...CHUNKING, slots: 5 });
    // cpu-a busy: only cpu-c has room, and its two slots are one machine's.
    const busy = await Promise.all([runningOn("cpu-a"), runningOn("cpu-a"), runningOn("cpu-a")]);
    expect(await transcode()).toBeUndefined();
    // A transcode split before (its first run retried) splits again, busy or not: its chunks are queued.
    const retried = await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE", attempt: 2 } });
    await db.job.create({
      data: { videoId: video.id, kind: "TRANSCODE_CHUNK", parentId: retried.id, status: "RUNNING" },
    });
    await sweep(90, CHUNKING);
    expect((await queuedMessages()).find((m) => m.jobId === retried.id)!.options.chunking).toEqual({
      ...CHUNKING,
      slots: 5,
    });
    await db.job.updateMany({
      where: { OR: [{ id: retried.id }, { parentId: retried.id }] },
      data: { status: "SUCCEEDED" },
    });
    await db.job.update({ where: { id: busy[0]!.id }, data: { status: "SUCCEEDED" } });
    expect(await transcode()).toEqual({ ...CHUNKING, slots: 5 });
    // Jobs sent to cpu and not yet taken take the next free slots: three free less two waiting.
    await sentNotTaken();
    expect(await transcode()).toEqual({ ...CHUNKING, slots: 5 });
    await sentNotTaken();
    expect(await transcode()).toBeUndefined();
    await db.job.updateMany({ where: { videoId: video.id }, data: { status: "CANCELED" } });
    await db.worker.deleteMany();
  });

  it("redispatch publishes again the queued jobs already sent to a queue whose messages were lost", async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", sourceKey: "videos/y/source/upload" },
    });
    const lost = await db.job.create({
      data: { videoId: video.id, kind: "TRANSCODE", dispatchedAt: new Date(), dispatchedTo: "cpu" },
    });
    const elsewhere = await db.job.create({
      data: { videoId: video.id, kind: "TRANSCODE", dispatchedAt: new Date(), dispatchedTo: "nvenc" },
    });
    await queuedMessages();
    const dispatcher = dispatcherFor();
    await dispatcher.redispatch("cpu");
    await dispatcher.stop();
    const published = (await queuedMessages()).map((m) => m.jobId);
    expect(published).toContain(lost.id);
    expect(published).not.toContain(elsewhere.id);
    expect((await db.job.findUniqueOrThrow({ where: { id: lost.id } })).dispatchedAt).not.toBeNull();
    expect((await db.job.findUniqueOrThrow({ where: { id: elsewhere.id } })).dispatchedTo).toBe("nvenc");
  });
});
