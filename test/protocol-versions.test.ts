import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { createTestEventIngestor } from "./support/event-ingestor.ts";
import { parseControlMessage, parseWorkerEvent } from "../src/protocol/worker-messages.ts";
import { parseJobMessage } from "../src/protocol/job-message.ts";
import { PROTOCOL_VERSION, ProtocolError } from "../src/protocol/version.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

// Version 1 as its workers and APIs sent it, written out by hand so a change to the current
// schemas cannot change what is tested here.
const envelope = (jobId: string, seq: number) => ({
  v: 1,
  jobId,
  attempt: 1,
  seq,
  workerId: "old-worker",
  at: new Date(Date.parse("2026-11-22T10:00:00Z") + seq * 1000).toISOString(),
});
const v1RenderProgress = (jobId: string, seq: number) => ({
  ...envelope(jobId, seq),
  type: "render.progress",
  animationIndex: 1,
  animationCount: 3,
  percent: 50,
  description: "Transform(Square)",
  renderedCount: 1,
  cachedCount: 0,
});
const v1RenderSucceeded = (jobId: string, seq: number, outputKey: string) => ({
  ...envelope(jobId, seq),
  type: "render.succeeded",
  outputKey,
  duration: 2,
  width: 854,
  height: 480,
  fps: 15,
  animationsRendered: 2,
  animationsCached: 1,
});

// A worker of the previous release: version 2, its step progress still named render.progress.
const v2RenderProgress = (jobId: string, seq: number) => ({
  ...envelope(jobId, seq),
  v: 2,
  type: "render.progress",
  index: 1,
  count: 3,
  percent: 50,
  description: "Transform(Square)",
  renderedCount: 1,
  cachedCount: 0,
});

describe("protocol versions: version 1 is still read, as version 2", () => {
  it("is version 2 now", () => {
    expect(PROTOCOL_VERSION).toBe(2);
  });

  it("reads a version 1 render.progress with the step fields under their new names", () => {
    const jobId = randomUUID();
    expect(parseWorkerEvent(v1RenderProgress(jobId, 2))).toMatchObject({
      v: 2,
      type: "step.progress",
      index: 1,
      count: 3,
      percent: 50,
      renderedCount: 1,
    });
  });

  it("reads a version 2 render.progress, as workers of the previous release send it, as step.progress", () => {
    const event = parseWorkerEvent(v2RenderProgress(randomUUID(), 2));
    expect(event).toMatchObject({ v: 2, type: "step.progress", index: 1, count: 3, percent: 50, renderedCount: 1 });
  });

  it("reads a version 1 render.succeeded as source.ready", () => {
    const event = parseWorkerEvent(v1RenderSucceeded(randomUUID(), 3, "videos/x/source/scene.mp4"));
    expect(event).toMatchObject({ v: 2, type: "source.ready", renderedCount: 2, cachedCount: 1, width: 854 });
    expect(event).not.toHaveProperty("animationsRendered");
  });

  it("reads version 1 heartbeats, job messages and control messages", () => {
    const jobId = randomUUID();
    const heartbeat = {
      v: 1,
      type: "worker.heartbeat",
      workerId: "w",
      capabilities: ["cpu"],
      activeJobs: [],
      at: new Date().toISOString(),
    };
    expect(parseWorkerEvent(heartbeat)).toMatchObject({ v: 2, type: "worker.heartbeat" });
    const videoId = randomUUID();
    const transcode = {
      v: 1,
      type: "transcode",
      jobId,
      attempt: 1,
      videoId,
      sourceKey: "k",
      outputPrefix: `videos/${videoId}`,
    };
    expect(parseJobMessage(transcode)).toMatchObject({ v: 2, type: "transcode", options: { segmentSeconds: 4 } });
    expect(parseControlMessage({ v: 1, type: "job.cancel", jobId, attempt: 1 })).toMatchObject({
      v: 2,
      type: "job.cancel",
    });
  });

  it("does not read a version 2 event under version 1's names, nor a version it does not know", () => {
    const jobId = randomUUID();
    expect(() => parseWorkerEvent({ ...v1RenderProgress(jobId, 2), v: 2 })).toThrow(ProtocolError);
    expect(() => parseWorkerEvent({ ...v1RenderSucceeded(jobId, 2, "k"), v: 2 })).toThrow(ProtocolError);
    expect(() => parseWorkerEvent({ ...envelope(jobId, 1), v: 3, type: "job.started" })).toThrow(
      /protocol version 3, expected 1 or 2/,
    );
  });

  describe("an API of this version applying the events of older workers", () => {
    let database: TestDatabase;
    let db: Db;
    beforeAll(async () => {
      database = await createTestDatabase();
      db = createDb(database.url);
    });
    afterAll(async () => {
      await db.$disconnect();
      await database.drop();
    });

    const renderJob = async () => {
      const video = await db.video.create({
        data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", source: "MANIM" },
      });
      const job = await db.job.create({ data: { videoId: video.id, kind: "RENDER_MANIM", dispatchedAt: new Date() } });
      const ingestor = createTestEventIngestor(db);
      return { video, job, ingestor };
    };

    it("stores the source, succeeds the render and queues its transcode", async () => {
      const { video, job, ingestor } = await renderJob();
      const outputKey = `videos/${video.id}/source/scene.mp4`;
      const raw = [
        { ...envelope(job.id, 1), type: "job.started" },
        v1RenderProgress(job.id, 2),
        v1RenderSucceeded(job.id, 3, outputKey),
      ];
      await ingestor.ingest(raw.map(parseWorkerEvent));

      const after = await db.video.findUniqueOrThrow({ where: { id: video.id }, include: { jobs: true } });
      expect(after.sourceKey).toBe(outputKey);
      expect(after.sourceName).toBe("scene.mp4");
      const byKind = Object.fromEntries(after.jobs.map((j) => [j.kind, j.status]));
      expect(byKind).toEqual({ RENDER_MANIM: "SUCCEEDED", TRANSCODE: "QUEUED" });
    });

    it("applies a render.progress from a worker of the previous release: the render's progress moves", async () => {
      const { job, ingestor } = await renderJob();
      await ingestor.ingest([{ ...envelope(job.id, 1), v: 2, type: "job.started" }, v2RenderProgress(job.id, 2)]);
      const after = await db.job.findUniqueOrThrow({ where: { id: job.id } });
      // Step 2 of 3, half done.
      expect(after).toMatchObject({ status: "RUNNING", progress: 0.5 });
    });
  });
});
