import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { DEFAULT_COST_SETTINGS } from "../src/costs/cost-model.ts";
import { createDb, type Db } from "../src/db/client.ts";
import type { EventIngestor } from "../src/jobs/ingest-events.ts";
import { createTestEventIngestor } from "./support/event-ingestor.ts";
import { queueStaticRenditions, requestStaticRenditions } from "../src/jobs/queue-static-renditions.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import type { JobEvent, JobEventBody } from "../src/protocol/job-events.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

describe("static renditions jobs' events (ingest)", () => {
  let database: TestDatabase;
  let db: Db;
  let ingestor: EventIngestor;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    ingestor = createTestEventIngestor(db);
  });
  afterAll(async () => {
    await db.$disconnect();
    await database.drop();
  });

  /** A READY video with a 360p, a 144p and an audio rung, its renditions asked for and their job queued. */
  async function readyVideoWithJob(maxAttempts: number) {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "READY", playable: true, hasAudio: true },
    });
    await db.variant.createMany({
      data: [
        {
          videoId: video.id,
          name: "360p",
          kind: "VIDEO",
          width: 640,
          height: 360,
          bandwidth: 1,
          codecs: "",
          status: "READY",
        },
        {
          videoId: video.id,
          name: "144p",
          kind: "VIDEO",
          width: 256,
          height: 144,
          bandwidth: 1,
          codecs: "",
          status: "READY",
        },
        { videoId: video.id, name: "audio", kind: "AUDIO", bandwidth: 1, codecs: "", status: "READY" },
      ],
    });
    const job = await db.$transaction(async (tx) => {
      await requestStaticRenditions(tx, video.id, ["HIGHEST", "LOW", "AUDIO"]);
      return queueStaticRenditions(tx, video.id, { maxAttempts, costs: DEFAULT_COST_SETTINGS });
    });
    expect(job).not.toBeNull();
    await db.job.update({ where: { id: job!.id }, data: { dispatchedAt: new Date() } });
    return { videoId: video.id, jobId: job!.id };
  }

  const events = (jobId: string, bodies: JobEventBody[]): JobEvent[] =>
    bodies.map((b, i) => ({
      ...b,
      v: PROTOCOL_VERSION,
      jobId,
      attempt: 1,
      seq: i + 1,
      workerId: "w",
      at: new Date(Date.parse("2026-11-22T10:00:00Z") + i * 1000).toISOString(),
    })) as JobEvent[];

  const renditions = (videoId: string) =>
    db.staticRendition.findMany({
      where: { videoId },
      orderBy: { name: "asc" },
      select: { name: true, status: true, videoRung: true, audioRung: true, error: true },
    });

  it("plans each rendition from the READY rungs; a done event applied twice changes nothing the second time", async () => {
    const { videoId, jobId } = await readyVideoWithJob(3);
    expect(await renditions(videoId)).toEqual([
      { name: "HIGHEST", status: "PREPARING", videoRung: "360p", audioRung: "audio", error: null },
      { name: "LOW", status: "PREPARING", videoRung: "360p", audioRung: "audio", error: null },
      { name: "AUDIO", status: "PREPARING", videoRung: null, audioRung: "audio", error: null },
    ]);
    const done = events(jobId, [
      { type: "job.started" },
      {
        type: "static_renditions.done",
        renditions: [
          {
            name: "HIGHEST",
            status: "READY",
            key: `videos/${videoId}/mp4/highest.mp4`,
            width: 640,
            height: 360,
            bitrate: 1,
            sizeBytes: 9,
          },
          { name: "LOW", status: "FAILED", error: "ffmpeg exited with code 1: broken" },
        ],
      },
    ]);
    await ingestor.ingest(done);
    await ingestor.ingest(done);
    expect(await renditions(videoId)).toEqual([
      { name: "HIGHEST", status: "READY", videoRung: "360p", audioRung: "audio", error: null },
      { name: "LOW", status: "FAILED", videoRung: "360p", audioRung: "audio", error: expect.stringMatching(/broken/) },
      // Not reported by the worker: failed rather than PREPARING for ever.
      {
        name: "AUDIO",
        status: "FAILED",
        videoRung: null,
        audioRung: "audio",
        error: "The worker did not make this rendition",
      },
    ]);
    expect(await db.video.findUniqueOrThrow({ where: { id: videoId } })).toMatchObject({
      status: "READY",
      playable: true,
    });
    expect((await db.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("SUCCEEDED");
  });

  it("a job that fails for good fails its renditions; the video stays READY and playable", async () => {
    const { videoId, jobId } = await readyVideoWithJob(1);
    await ingestor.ingest(
      events(jobId, [{ type: "job.started" }, { type: "job.failed", error: "storage is gone", retryable: true }]),
    );
    expect((await renditions(videoId)).map((r) => [r.name, r.status])).toEqual([
      ["HIGHEST", "FAILED"],
      ["LOW", "FAILED"],
      ["AUDIO", "FAILED"],
    ]);
    expect(await db.video.findUniqueOrThrow({ where: { id: videoId } })).toMatchObject({
      status: "READY",
      playable: true,
      error: null,
    });
    expect((await db.variant.findMany({ where: { videoId } })).every((v) => v.status === "READY")).toBe(true);
  });

  it("a video without video rungs (audio only) gets only the M4A; LOW is the lowest rung at least 270 high", async () => {
    const audioOnly = await db.video.create({ data: { tenantId: DEFAULT_TENANT_ID, title: "a", status: "READY" } });
    await db.variant.create({
      data: { videoId: audioOnly.id, name: "audio", kind: "AUDIO", bandwidth: 1, codecs: "", status: "READY" },
    });
    const ladder = await db.video.create({ data: { tenantId: DEFAULT_TENANT_ID, title: "l", status: "READY" } });
    await db.variant.createMany({
      data: [
        [1280, 720, "READY"],
        [854, 480, "READY"],
        [640, 360, "READY"],
        [426, 240, "READY"],
        [256, 144, "READY"],
      ].map(([width, height]) => ({
        videoId: ladder.id,
        name: `${height}p`,
        kind: "VIDEO" as const,
        width: width as number,
        height: height as number,
        bandwidth: 1,
        codecs: "",
        status: "READY" as const,
      })),
    });
    for (const id of [audioOnly.id, ladder.id]) {
      await db.$transaction(async (tx) => {
        await requestStaticRenditions(tx, id, ["HIGHEST", "LOW", "AUDIO"]);
        await queueStaticRenditions(tx, id, { maxAttempts: 1, costs: DEFAULT_COST_SETTINGS });
      });
    }
    expect(await renditions(audioOnly.id)).toEqual([
      { name: "HIGHEST", status: "SKIPPED", videoRung: null, audioRung: null, error: "The video has no video rung" },
      { name: "LOW", status: "SKIPPED", videoRung: null, audioRung: null, error: "The video has no video rung" },
      { name: "AUDIO", status: "PREPARING", videoRung: null, audioRung: "audio", error: null },
    ]);
    expect(await renditions(ladder.id)).toEqual([
      { name: "HIGHEST", status: "PREPARING", videoRung: "720p", audioRung: null, error: null },
      { name: "LOW", status: "PREPARING", videoRung: "360p", audioRung: null, error: null },
      { name: "AUDIO", status: "SKIPPED", videoRung: null, audioRung: null, error: "The video has no audio" },
    ]);
  });
});
