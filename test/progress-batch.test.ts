import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../src/db/client.ts";
import { PostgresEventTarget } from "../src/events/postgres-event-target.ts";
import { listenToEventFanOut } from "./support/db.ts";
import { createVideoPubSub } from "../src/events/video-events.ts";
import type { EventIngestor } from "../src/jobs/ingest-events.ts";
import { variantOfRung } from "../src/jobs/ingest/transcode-outcomes.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { createTestEventIngestor } from "./support/event-ingestor.ts";
import { LADDER_360P } from "./support/job-events.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const PROGRESS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) {
  __typename ... on VariantProgressEvent { variant { name status progress segmentCount } fps speed etaSeconds } } }`);

/** A worker's `job.progress` of attempt `attempt`: every rung of LADDER_360P at `progress`. */
function progressOf(jobId: string, attempt: number, seq: number, progress: number, segmentCount: number) {
  return {
    v: PROTOCOL_VERSION,
    type: "job.progress",
    jobId,
    attempt,
    seq,
    workerId: "worker-1",
    at: new Date().toISOString(),
    progress,
    fps: 50,
    speed: 2,
    etaSeconds: 3,
    variants: LADDER_360P.map((r) => ({ name: r.name, progress, segmentCount })),
  };
}

describe("a batch of progress events for many jobs is applied together", () => {
  let t: TestApp;
  let db: Db;
  /** Another API instance's fan-out, which the ingestor below publishes through (real NOTIFYs). */
  let otherInstance: PostgresEventTarget<never>;
  let ingestor: EventIngestor;
  /** Database operations the ingestor made (Prisma's, raw statements included). */
  let operations = 0;
  /** Every NOTIFY of the fan-out's channel, as a listener of it received them. */
  let notifications: string[] = [];
  let listener: Awaited<ReturnType<typeof listenToEventFanOut>>;

  beforeAll(async () => {
    t = await startTestApp({ worker: false });
    db = t.app.services.db;
    otherInstance = new PostgresEventTarget<never>(t.database.url);
    await otherInstance.start();
    const counted = db.$extends({
      query: {
        async $allOperations({ args, query }) {
          operations++;
          return query(args);
        },
      },
    }) as unknown as Db;
    ingestor = createTestEventIngestor(counted, { pubSub: createVideoPubSub(otherInstance) });
    listener = await listenToEventFanOut(t.database.url);
    notifications = listener.payloads;
  });
  afterAll(async () => {
    await listener?.end();
    await otherInstance?.close();
    await t?.stop();
  });

  /** `count` videos of the upload's tenant, each with a RUNNING transcode of `attempt` and LADDER_360P's rungs. */
  async function runningJobs(count: number, attempt = 1) {
    const { tenantId } = await db.video.findUniqueOrThrow({ where: { id: (await createUpload(t, "tenant")).id } });
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const video = await db.video.create({ data: { tenantId, title: `v${i}`, status: "PROCESSING" } });
        return jobOf(video.id, attempt);
      }),
    );
  }

  async function jobOf(videoId: string, attempt = 1) {
    await db.variant.createMany({ data: LADDER_360P.map((r) => variantOfRung(videoId, r.name, r)) });
    const job = await db.job.create({ data: { videoId, kind: "TRANSCODE", status: "RUNNING", attempt } });
    return { videoId, jobId: job.id };
  }

  const rowsOf = async (videoId: string) => {
    const v = await db.video.findUniqueOrThrow({
      where: { id: videoId },
      include: { variants: { orderBy: { name: "asc" } }, jobs: true },
    });
    return {
      job: v.jobs.map((j) => j.progress),
      variants: v.variants.map((r) => [r.name, r.status, r.progress, r.segmentCount]),
    };
  };
  const rungsAt = (status: string, progress: number, segments: number) =>
    ["144p", "360p", "audio"].map((name) => [name, status, progress, segments]);
  const progressEvents = (progress: number, segmentCount: number) =>
    LADDER_360P.map((r) => ({
      videoEvents: {
        __typename: "VariantProgressEvent",
        variant: { name: r.name, status: "ENCODING", progress, segmentCount },
        fps: 50,
        speed: 2,
        etaSeconds: 3,
      },
    }));

  it(`moves every job and rung forward, ignores a superseded attempt's progress and a report older than what \
is kept, and a subscriber gets every rung's VariantProgressEvent, one NOTIFY per progress event`, async () => {
    const jobs = await runningJobs(8);
    // Its job was retried: attempt 2 runs, and attempt 1's run still reports.
    const superseded = (await runningJobs(1, 2))[0]!;
    const followed = jobs[0]!;
    const subscription = collectSubscription(t.wsClient(), PROGRESS, { id: followed.videoId });
    await expect.poll(() => subscription.events.length, { timeout: 10_000 }).toBe(1);

    notifications.length = 0;
    await ingestor.ingest([
      ...jobs.map((j) => progressOf(j.jobId, 1, 3, 0.5, 2)),
      progressOf(superseded.jobId, 1, 9, 0.9, 5),
    ]);
    for (const j of jobs)
      expect(await rowsOf(j.videoId)).toEqual({ job: [0.5], variants: rungsAt("ENCODING", 0.5, 2) });
    expect(await rowsOf(superseded.videoId)).toEqual({ job: [0], variants: rungsAt("PENDING", 0, 0) });
    await expect.poll(() => subscription.events.length, { timeout: 10_000 }).toBe(1 + LADDER_360P.length);
    // One NOTIFY per progress event applied, carrying all its rungs (not one per rung).
    await expect.poll(() => notifications.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(jobs.length);
    await new Promise((r) => setTimeout(r, 300));
    expect(notifications.length).toBe(jobs.length);
    // Each carries its video's own columns and the rungs it moved, not the rungs the batch's read of the
    // video included besides: the ladder once, not twice.
    for (const payload of notifications) {
      const message = JSON.parse(payload).d;
      expect(message.kind).toBe("variantsProgress");
      expect(message.video).not.toHaveProperty("variants");
      expect(message.video.id).toBeTypeOf("string");
      expect(message.variants).toHaveLength(LADDER_360P.length);
    }

    // Older reports (an earlier sequence, delivered late) in a batch of their own change nothing; in one
    // batch with a newer one, the lower report after it changes nothing either.
    await ingestor.ingest(jobs.map((j) => progressOf(j.jobId, 1, 2, 0.25, 1)));
    await ingestor.ingest([progressOf(followed.jobId, 1, 4, 0.9, 4), progressOf(followed.jobId, 1, 5, 0.8, 3)]);
    for (const j of jobs.slice(1))
      expect(await rowsOf(j.videoId)).toEqual({ job: [0.5], variants: rungsAt("ENCODING", 0.5, 2) });
    expect(await rowsOf(followed.videoId)).toEqual({ job: [0.9], variants: rungsAt("ENCODING", 0.9, 4) });
    await expect.poll(() => subscription.events.length, { timeout: 10_000 }).toBe(1 + 2 * LADDER_360P.length);
    await new Promise((r) => setTimeout(r, 300));
    expect(subscription.events.slice(1)).toEqual([...progressEvents(0.5, 2), ...progressEvents(0.9, 4)]);
  });

  it("takes as many database operations for twelve jobs' progress as for three", async () => {
    const operationsFor = async (count: number) => {
      const jobs = await runningJobs(count);
      operations = 0;
      await ingestor.ingest(jobs.map((j) => progressOf(j.jobId, 1, 3, 0.5, 2)));
      for (const j of jobs)
        expect(await rowsOf(j.videoId)).toEqual({ job: [0.5], variants: rungsAt("ENCODING", 0.5, 2) });
      return operations;
    };
    const forThree = await operationsFor(3);
    expect(await operationsFor(12)).toBe(forThree);
    // Two reads (the jobs; the videos with their rungs) and one statement writing jobs and rungs.
    expect(forThree).toBeLessThanOrEqual(3);
  });
});
