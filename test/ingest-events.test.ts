import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../src/db/client.ts";
import type { EventIngestor } from "../src/jobs/ingest-events.ts";
import { actualJobCost, DEFAULT_COST_SETTINGS } from "../src/costs/cost-model.ts";
import { recordActualCost } from "../src/costs/job-cost.ts";
import { queueOf } from "../src/jobs/queue-position.ts";
import { createTestEventIngestor, queuedWebhookTypes } from "./support/event-ingestor.ts";
import { LADDER_360P, PROBE_640X360, shuffle } from "./support/job-events.ts";
import { parseWorkerEvent } from "../src/protocol/worker-messages.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import type { JobDelivery, JobEvent, JobEventBody } from "../src/protocol/job-events.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

const LADDER = LADDER_360P;

/** The events one clean run of a transcode job sends, in order. */
function cleanRun(jobId: string, videoId: string, attempt = 1, workerId = "worker-1"): JobEvent[] {
  const prefix = `videos/${videoId}/hls`;
  const bodies: JobEventBody[] = [
    { type: "job.started" },
    {
      type: "job.probed",
      probe: PROBE_640X360,
      ladder: LADDER,
    },
    {
      type: "job.progress",
      progress: 0.3,
      fps: 100,
      speed: 4,
      etaSeconds: 1,
      variants: LADDER.map((r) => ({ name: r.name, progress: 0.33, segmentCount: 1 })),
    },
    { type: "video.playable", masterKey: `${prefix}/master.m3u8` },
    {
      type: "job.progress",
      progress: 0.7,
      fps: 100,
      speed: 4,
      etaSeconds: 1,
      variants: LADDER.map((r) => ({ name: r.name, progress: 0.67, segmentCount: 2 })),
    },
    ...LADDER.map(
      (rung): JobEventBody => ({
        type: "variant.ready",
        name: rung.name,
        rung,
        playlistKey: `${prefix}/${rung.name}/index.m3u8`,
        segmentCount: 3,
        // What a worker measured of the published segments: below the ladder's bound.
        bitRates: { peak: Math.round(rung.bandwidth * 0.8), average: Math.round(rung.bandwidth * 0.4) },
      }),
    ),
    {
      type: "job.succeeded",
      masterKey: `${prefix}/master.m3u8`,
      posterKey: `videos/${videoId}/thumbnails/poster.jpg`,
      usage: { cpuSeconds: 12.5, wallSeconds: 4.25 },
    },
  ];
  const t0 = Date.parse("2026-11-22T10:00:00Z");
  return bodies.map(
    (b, i) =>
      ({
        ...b,
        v: PROTOCOL_VERSION,
        jobId,
        attempt,
        seq: i + 1,
        workerId,
        at: new Date(t0 + i * 1000).toISOString(),
      }) as JobEvent,
  );
}

/** One run's events: `events` with its run id, moved `shiftSeconds` later, its start carrying `delivery`. */
function asRun(events: JobEvent[], runId: string, shiftSeconds: number, delivery?: JobDelivery): JobEvent[] {
  return events.map((e) => ({
    ...e,
    runId,
    at: new Date(Date.parse(e.at) + shiftSeconds * 1000).toISOString(),
    ...(e.type === "job.started" && delivery ? { delivery } : {}),
  })) as JobEvent[];
}

/** A worker's heartbeat listing `jobIds` (attempt 1) as running. */
function heartbeatOf(workerId: string, jobIds: string[], at: string) {
  const activeJobs = jobIds.map((jobId) => ({ jobId, attempt: 1 }));
  return { v: PROTOCOL_VERSION, type: "worker.heartbeat", workerId, capabilities: ["cpu"], activeJobs, at };
}

describe("worker events are applied idempotently and in any order", () => {
  let database: TestDatabase;
  let db: Db;
  let ingestor: EventIngestor;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    // An endpoint for every event type, so that the webhooks each event queues are part of the outcome.
    await db.webhookEndpoint.create({
      data: { tenantId: DEFAULT_TENANT_ID, url: "http://127.0.0.1:9/hook", secret: "s", events: [] },
    });
    ingestor = createTestEventIngestor(db);
  });
  afterAll(async () => {
    await db.$disconnect();
    await database.drop();
  });

  async function newJob() {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", sourceKey: "x" },
    });
    const job = await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE", dispatchedAt: new Date() } });
    return { videoId: video.id, jobId: job.id };
  }

  /** Everything the events decide, without ids and row timestamps. */
  async function outcome(videoId: string) {
    const video = await db.video.findUniqueOrThrow({
      where: { id: videoId },
      include: { variants: { orderBy: { name: "asc" } }, jobs: { include: { runs: true } } },
    });
    const { id, createdAt, updatedAt, variants, jobs, posterKey, masterKey, ...videoFacts } = video;
    return {
      video: {
        ...videoFacts,
        posterKey: posterKey?.replace(videoId, "V"),
        masterKey: masterKey?.replace(videoId, "V"),
      },
      variants: variants.map(({ id, videoId: _v, createdAt, updatedAt, playlistKey, ...v }) => ({
        ...v,
        playlistKey: playlistKey?.replace(videoId, "V"),
      })),
      jobs: jobs.map(({ id, videoId: _v, createdAt, updatedAt, dispatchedAt, runs, ...j }) => ({
        ...j,
        runs: runs.map(({ id, jobId, ...r }) => r),
      })),
      webhooks: await queuedWebhookTypes(db, videoId),
    };
  }

  it("a clean run ends READY with every variant READY", async () => {
    const { videoId, jobId } = await newJob();
    await ingestor.ingest(cleanRun(jobId, videoId));
    const result = await outcome(videoId);
    expect(result.webhooks).toEqual([
      "variant.ready",
      "variant.ready",
      "variant.ready",
      "video.playable",
      "video.ready",
    ]);
    expect(result.video).toMatchObject({ status: "READY", playable: true, duration: 6, width: 640, error: null });
    expect(result.variants.map((v) => [v.name, v.status, v.progress, v.segmentCount])).toEqual([
      ["144p", "READY", 1, 3],
      ["360p", "READY", 1, 3],
      ["audio", "READY", 1, 3],
    ]);
    expect(result.jobs[0]).toMatchObject({
      status: "SUCCEEDED",
      progress: 1,
      runs: [expect.objectContaining({ workerId: "worker-1", status: "SUCCEEDED" })],
    });
  });

  it(`applies a run's variant.ready events of one batch together: as many database operations for three \
rungs as for one, and the outcome of applying them one by one`, async () => {
    /** A job's clean run with its variant.ready events (the first `rungs`) ingested as `delivered`. */
    const runWithReady = async (rungs: number, delivered: "one batch" | "one by one") => {
      const { videoId, jobId } = await newJob();
      const run = cleanRun(jobId, videoId);
      const ready = run.filter((e) => e.type === "variant.ready").slice(0, rungs);
      await ingestor.ingest(run.filter((e) => e.type !== "variant.ready" && e.type !== "job.succeeded"));
      let operations = 0;
      const counted = db.$extends({
        query: {
          async $allOperations({ args, query }) {
            operations++;
            return query(args);
          },
        },
      }) as unknown as Db;
      const countedIngestor = createTestEventIngestor(counted);
      if (delivered === "one batch") await countedIngestor.ingest(ready);
      else for (const e of ready) await countedIngestor.ingest([e]);
      await ingestor.ingest(run.filter((e) => e.type === "job.succeeded"));
      return { operations, outcome: await outcome(videoId) };
    };
    const one = await runWithReady(1, "one batch");
    const together = await runWithReady(3, "one batch");
    const apart = await runWithReady(3, "one by one");
    expect(together.operations).toBe(one.operations);
    expect(apart.operations).toBe(3 * one.operations);
    expect(together.outcome).toEqual(apart.outcome);
    expect(together.outcome.variants.map((v) => v.status)).toEqual(["READY", "READY", "READY"]);
    expect(together.outcome.webhooks.filter((type) => type === "variant.ready")).toHaveLength(3);
  });

  it(`one job's event waiting on a lock does not hold up the other jobs' events of its batch (each job's \
events in order, jobs side by side)`, async () => {
    const [blocked, free] = [await newJob(), await newJob()].sort((a, b) => (a.jobId < b.jobId ? -1 : 1));
    const blockedRun = cleanRun(blocked!.jobId, blocked!.videoId);
    await ingestor.ingest(blockedRun.slice(0, -1));
    // Another session holds the blocked job's video, as a long transaction of another API instance would.
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query(`SELECT 1 FROM "Video" WHERE id = $1 FOR UPDATE`, [blocked!.videoId]);
    // The blocked job's end sorts first in the batch.
    const batch = ingestor.ingest([blockedRun.at(-1)!, ...cleanRun(free!.jobId, free!.videoId)]);
    try {
      const deadline = Date.now() + 10_000;
      let status = "";
      while (Date.now() < deadline && status !== "READY") {
        status = (await db.video.findUniqueOrThrow({ where: { id: free!.videoId } })).status;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe("READY");
    } finally {
      await holder.query("COMMIT");
      await holder.end();
    }
    await batch;
    expect((await db.video.findUniqueOrThrow({ where: { id: blocked!.videoId } })).status).toBe("READY");
  });

  it("every event twice, in shuffled order and in separate batches, gives the same final state", async () => {
    const reference = await newJob();
    await ingestor.ingest(cleanRun(reference.jobId, reference.videoId));
    const expected = await outcome(reference.videoId);

    for (const seed of [1, 2, 3, 7, 11, 42, 77, 1234, 4321, 99_999]) {
      const { videoId, jobId } = await newJob();
      const events = shuffle([...cleanRun(jobId, videoId), ...cleanRun(jobId, videoId)], seed);
      // Separate deliveries, as a queue redelivering and reordering would make them.
      for (let i = 0; i < events.length; i += 3) await ingestor.ingest(events.slice(i, i + 3));
      const actual = await outcome(videoId);
      expect(actual, `seed ${seed}`).toEqual(expected);
    }
  });

  it(`a job's actual cost comes out the same whether its run's end arrives before or after the probe \
and the rungs' measured rates`, async () => {
    const reference = await newJob();
    await ingestor.ingest(cleanRun(reference.jobId, reference.videoId));
    const expected = (await outcome(reference.videoId)).jobs;
    // The reference stores each rung at the average its worker measured, not at its bound.
    const [job] = await db.job.findMany({ where: { id: reference.jobId } });
    const atAverages = actualJobCost(DEFAULT_COST_SETTINGS, {
      cpuSeconds: 12.5,
      wallSeconds: 4.25,
      queue: queueOf(job!),
      ladder: {
        source: { seconds: PROBE_640X360.duration, width: 640, height: 360, fps: PROBE_640X360.fps },
        rungs: LADDER.map((r) => ({ ...r, averageBitRate: Math.round(r.bandwidth * 0.4) })),
        estimated: [],
      },
    });
    expect(job!.actualCostUsd).toBeCloseTo(atAverages.usd, 12);
    expect((job!.rungCosts as { name: string; actualUsd: number }[]).map((r) => [r.name, r.actualUsd])).toEqual(
      atAverages.rungs!.map((r) => [r.name, r.actualUsd]),
    );

    const orders: [string, (events: JobEvent[]) => JobEvent[]][] = [
      ["the end first", (events) => [events.at(-1)!, ...events.slice(0, -1)]],
      [
        "the end before the rungs",
        (events) => [
          ...events.filter((e) => e.type !== "variant.ready"),
          ...events.filter((e) => e.type === "variant.ready"),
        ],
      ],
      ["backwards", (events) => [...events].reverse()],
    ];
    for (const [name, order] of orders) {
      const { videoId, jobId } = await newJob();
      // One event a delivery, as a queue that reorders them would hand them over.
      for (const event of order(cleanRun(jobId, videoId))) await ingestor.ingest([event]);
      expect((await outcome(videoId)).jobs, name).toEqual(expected);
    }
  });

  it(`two computations of one job's cost side by side (two API instances): the one that read older rows \
does not write over the newer one`, async () => {
    const { videoId, jobId } = await newJob();
    await ingestor.ingest(cleanRun(jobId, videoId));
    const costs = DEFAULT_COST_SETTINGS;
    const storedCost = () =>
      db.job.findUniqueOrThrow({ where: { id: jobId }, select: { actualCostUsd: true, rungCosts: true } });
    // The first UPDATE of a job from here on waits a second before it writes (a statement trigger:
    // it runs before the row is locked), so the first computation has read the rows and not yet
    // written when the rows change and the second computation runs.
    await db.$executeRawUnsafe("CREATE SEQUENCE slow_job_update");
    await db.$executeRawUnsafe(`CREATE FUNCTION slow_job_update() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF nextval('slow_job_update') = 1 THEN PERFORM pg_sleep(1); END IF; RETURN NULL; END $$`);
    await db.$executeRawUnsafe(
      `CREATE TRIGGER slow_job_update BEFORE UPDATE ON "Job" FOR EACH STATEMENT EXECUTE FUNCTION slow_job_update()`,
    );
    try {
      const first = recordActualCost(db, costs, jobId);
      // Until the first computation sleeps in its UPDATE.
      for (let i = 0; ; i++) {
        const [row] = await db.$queryRaw<{ sleeping: number }[]>`
          SELECT count(*)::int AS sleeping FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event = 'PgSleep'`;
        if (row!.sleeping > 0) break;
        if (i > 200) throw new Error("the first computation never reached its UPDATE");
        await new Promise((r) => setTimeout(r, 10));
      }
      // Another instance applies a rung's newer figures, and computes the cost from them.
      await db.variant.updateMany({
        where: { videoId, name: "360p" },
        data: { averageBitRate: { multiply: 2 } },
      });
      await recordActualCost(db, costs, jobId);
      await first;
    } finally {
      await db.$executeRawUnsafe(`DROP TRIGGER slow_job_update ON "Job"`);
      await db.$executeRawUnsafe("DROP FUNCTION slow_job_update()");
      await db.$executeRawUnsafe("DROP SEQUENCE slow_job_update");
    }
    // What is stored is the cost of the rows as they are now: computing it once more changes nothing.
    const stored = await storedCost();
    await recordActualCost(db, costs, jobId);
    expect(await storedCost()).toEqual(stored);
  });

  it("ignores events of a superseded attempt and events that are not worker events", async () => {
    const { videoId, jobId } = await newJob();
    await db.job.update({ where: { id: jobId }, data: { attempt: 2 } });
    const stale = cleanRun(jobId, videoId, 1, "worker-old");
    await ingestor.ingest([...stale, { v: 99, type: "job.started" }, "garbage", null]);
    const result = await outcome(videoId);
    expect(result.video.status).toBe("QUEUED");
    expect(result.variants).toEqual([]);
    expect(result.jobs[0]).toMatchObject({ status: "QUEUED", attempt: 2, runs: [] });

    await ingestor.ingest(cleanRun(jobId, videoId, 2, "worker-new"));
    expect((await outcome(videoId)).video.status).toBe("READY");
  });

  it(`a run that resumes after its worker died records where it resumed and never makes a READY \
variant worse`, async () => {
    const { videoId, jobId } = await newJob();
    // The first worker got as far as its variant.ready events, then died before job.succeeded.
    const dead = cleanRun(jobId, videoId, 1, "worker-1").filter((e) => e.type !== "job.succeeded");
    await ingestor.ingest(dead);
    const resumed = cleanRun(jobId, videoId, 1, "worker-2").map(
      (e) => ({ ...e, at: new Date(Date.parse(e.at) + 60_000).toISOString() }) as JobEvent,
    );
    const probed = resumed[1] as Extract<JobEvent, { type: "job.probed" }>;
    resumed[1] = { ...probed, resumed: { segments: 2, fromSeconds: 4 } };
    // Its progress starts below 1 (it counts the kept segments, not the finished rungs).
    await ingestor.ingest(resumed.slice(0, 3));
    const during = await outcome(videoId);
    expect(during.variants.map((v) => [v.name, v.status, v.progress])).toEqual([
      ["144p", "READY", 1],
      ["360p", "READY", 1],
      ["audio", "READY", 1],
    ]);
    await ingestor.ingest(resumed.slice(3));
    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.jobs[0]!.runs.map((r) => [r.workerId, r.status, r.resumedSegments, r.resumedFromSeconds])).toEqual([
      ["worker-1", "ABANDONED", null, null],
      ["worker-2", "SUCCEEDED", 2, 4],
    ]);
  });

  it("a rung that failed alone is FAILED while the video is READY", async () => {
    const { videoId, jobId } = await newJob();
    const events = cleanRun(jobId, videoId);
    const i = events.findIndex((e) => e.type === "variant.ready" && e.name === "144p");
    events[i] = {
      ...events[i]!,
      type: "variant.failed",
      name: "144p",
      rung: LADDER[1]!,
      error: "Publishing the 144p rung failed: 403",
    } as JobEvent;
    await ingestor.ingest(events);
    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.variants.map((v) => [v.name, v.status, v.error])).toEqual([
      ["144p", "FAILED", "Publishing the 144p rung failed: 403"],
      ["360p", "READY", null],
      ["audio", "READY", null],
    ]);
  });

  it(`a rung retried alone is stored by the job that made it, once: the run it failed in pays its share of \
the compute only`, async () => {
    const { videoId, jobId } = await newJob();
    const failed = cleanRun(jobId, videoId).map((e) =>
      e.type === "variant.ready" && e.name === "144p"
        ? ({ ...e, type: "variant.failed", error: "Publishing the 144p rung failed: 403" } as JobEvent)
        : e,
    );
    await ingestor.ingest(failed);
    // What retryVariant leaves: the rung PENDING, the video PROCESSING, a transcode of that rung alone.
    await db.variant.updateMany({ where: { videoId, name: "144p" }, data: { status: "PENDING", error: null } });
    await db.video.update({ where: { id: videoId }, data: { status: "PROCESSING" } });
    const retry = await db.job.create({
      data: {
        videoId,
        kind: "TRANSCODE",
        rungs: ["144p"],
        dispatchedAt: new Date(),
        createdAt: new Date(Date.now() + 1000),
      },
    });
    const retryRun = cleanRun(retry.id, videoId).filter((e) => e.type !== "variant.ready" || e.name === "144p");
    await ingestor.ingest(retryRun);
    // The transport delivers the first run's events again after the retry: its cost is computed again.
    await ingestor.ingest(failed);
    expect((await outcome(videoId)).variants.map((v) => [v.name, v.status])).toEqual([
      ["144p", "READY"],
      ["360p", "READY"],
      ["audio", "READY"],
    ]);

    const measured = LADDER.map((r) => ({ ...r, averageBitRate: Math.round(r.bandwidth * 0.4) }));
    const costOf = (rungs: typeof measured) =>
      actualJobCost(DEFAULT_COST_SETTINGS, {
        cpuSeconds: 12.5,
        wallSeconds: 4.25,
        queue: "cpu",
        ladder: {
          source: { seconds: PROBE_640X360.duration, width: 640, height: 360, fps: PROBE_640X360.fps },
          rungs,
          estimated: [],
        },
      });
    const stored = async (id: string) => {
      const job = await db.job.findUniqueOrThrow({ where: { id } });
      expect(queueOf(job)).toBe("cpu");
      const rungs = (job.rungCosts as { name: string; actualUsd: number }[]).map((r) => [r.name, r.actualUsd]);
      return { usd: job.actualCostUsd, rungs };
    };
    const first = costOf(measured.map((r) => ({ ...r, stored: r.name !== "144p" })));
    expect(await stored(jobId)).toEqual({ usd: first.usd, rungs: first.rungs!.map((r) => [r.name, r.actualUsd]) });
    const second = costOf(measured.filter((r) => r.name === "144p"));
    expect(await stored(retry.id)).toEqual({
      usd: second.usd,
      rungs: second.rungs!.map((r) => [r.name, r.actualUsd]),
    });
  });

  it("a retryable failure queues the next attempt after a back-off; the last one fails the video", async () => {
    const { videoId, jobId } = await newJob();
    const requeued: Date[] = [];
    const withRetries = createTestEventIngestor(db, {
      onJobRequeued: (at) => void requeued.push(at),
    });
    const failure = (attempt: number): JobEvent[] => [
      cleanRun(jobId, videoId, attempt)[0]!,
      {
        v: PROTOCOL_VERSION,
        jobId,
        attempt,
        seq: 2,
        workerId: "worker-1",
        at: new Date().toISOString(),
        type: "job.failed",
        error: "ffmpeg exited with code 1: boom",
        retryable: true,
        command: "ffmpeg -i x",
        stderrTail: "boom",
        exitCode: 1,
      },
    ];
    const before = Date.now();
    await withRetries.ingest(failure(1));
    let job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({
      status: "QUEUED",
      attempt: 2,
      dispatchedAt: null,
      error: "ffmpeg exited with code 1: boom",
    });
    expect(job.runAfter!.getTime()).toBeGreaterThanOrEqual(before + 2000);
    expect(requeued).toHaveLength(1);

    await withRetries.ingest(failure(2));
    await withRetries.ingest(failure(3));
    const withRuns = await db.job.findUniqueOrThrow({
      where: { id: jobId },
      include: { runs: { orderBy: { attempt: "asc" } } },
    });
    job = withRuns;
    expect(job.status).toBe("FAILED");
    expect(job.attempt).toBe(3);
    expect(withRuns.runs.map((r) => [r.attempt, r.status, r.command, r.stderrTail, r.exitCode])).toEqual([
      [1, "FAILED", "ffmpeg -i x", "boom", 1],
      [2, "FAILED", "ffmpeg -i x", "boom", 1],
      [3, "FAILED", "ffmpeg -i x", "boom", 1],
    ]);
    const video = await db.video.findUniqueOrThrow({ where: { id: videoId } });
    expect(video).toMatchObject({ status: "FAILED", error: "ffmpeg exited with code 1: boom" });
  });

  it(`a video that fails after it became playable is no longer playable, and its error names no \
internal path`, async () => {
    const { videoId, jobId } = await newJob();
    const run = cleanRun(jobId, videoId);
    const playable = run.findIndex((e) => e.type === "video.playable");
    const error =
      "Storage is full: ENOSPC: no space left on device, copyfile '/tmp/videograph-j1-Ab12Cd/720p/seg_00003.ts' -> " +
      "'/var/lib/videograph/data/videos/v1/hls/720p/seg_00003.ts.9f8e.tmp'";
    await ingestor.ingest([
      ...run.slice(0, playable + 1),
      {
        v: PROTOCOL_VERSION,
        jobId,
        attempt: 1,
        seq: playable + 2,
        workerId: "worker-1",
        at: new Date().toISOString(),
        type: "job.failed",
        error,
        retryable: false,
      },
    ]);
    const video = await db.video.findUniqueOrThrow({
      where: { id: videoId },
      include: { variants: true, jobs: { include: { runs: true } } },
    });
    expect(video.status).toBe("FAILED");
    expect(video.playable).toBe(false);
    const userFacing =
      "Storage is full: ENOSPC: no space left on device, copyfile '720p/seg_00003.ts' -> " +
      "'videos/v1/hls/720p/seg_00003.ts.9f8e.tmp'";
    expect(video.error).toBe(userFacing);
    expect(video.jobs[0]!.error).toBe(userFacing);
    expect(video.variants.map((v) => v.error)).toEqual(video.variants.map(() => userFacing));
    // Operators keep the whole text on the run.
    expect(video.jobs[0]!.runs[0]!.error).toBe(error);
  });

  it("a finished job delivered again is stopped where it starts; its own late start is not", async () => {
    const { videoId, jobId } = await newJob();
    const stopped: string[] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (_job, _attempt, workerId) => void stopped.push(workerId ?? "all"),
    });
    const run = cleanRun(jobId, videoId);
    // The finished run's own start, arriving after its end, only says when it started.
    await ingest.ingest([...run.slice(1), run[0]!]);
    expect(stopped).toEqual([]);
    const later = new Date(Date.parse(run.at(-1)!.at) + 60_000).toISOString();
    const again = (workerId: string): JobEvent => ({ ...run[0]!, workerId, seq: 1, at: later });
    await ingest.ingest([again("worker-2"), again("worker-1")]);
    expect(stopped).toEqual(["worker-2", "worker-1"]);
    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.jobs[0]!.status).toBe("SUCCEEDED");
    expect(result.jobs[0]!.runs.map((r) => [r.workerId, r.status])).toEqual([["worker-1", "SUCCEEDED"]]);
  });

  it(`a broadcast's recording keeps its length when a later delivery's probe arrives after its end (a live \
probe has no length: the recording's comes with its end)`, async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "t", status: "QUEUED", source: "LIVE" },
    });
    const job = await db.job.create({ data: { videoId: video.id, kind: "LIVE", dispatchedAt: new Date() } });
    const stopped: string[] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (_job, _attempt, workerId) => void stopped.push(workerId ?? "all"),
    });
    // What render-worker/handlers/live.ts sends: a probe of length 0 first, the recording's length at its end.
    const liveProbe = { ...PROBE_640X360, duration: 0 };
    const run = cleanRun(job.id, video.id).map((e): JobEvent => {
      if (e.type === "job.probed") return { ...e, probe: liveProbe };
      if (e.type === "job.succeeded") return { ...e, duration: 58.4 };
      return e;
    });
    await ingest.ingest(asRun(run, randomUUID(), 0));
    expect(await db.video.findUniqueOrThrow({ where: { id: video.id } })).toMatchObject({
      status: "READY",
      duration: 58.4,
    });

    // A delivery the transport made again after the broadcast ended (the killed run's claim lapsed,
    // chaos worker-kill): its run starts and probes before it is told to stop.
    const later = new Date(Date.parse(run.at(-1)!.at) + 20_000).toISOString();
    const [started, probed] = asRun(run.slice(0, 2), randomUUID(), 0).map((e) => ({
      ...e,
      workerId: "worker-2",
      at: later,
    }));
    await ingest.ingest([started!, probed!]);
    expect(stopped).toEqual(["worker-2"]);
    expect(await db.video.findUniqueOrThrow({ where: { id: video.id } })).toMatchObject({
      status: "READY",
      duration: 58.4,
    });
  });

  it("job events carry a run id or, from workers older than run ids, none; a malformed one is refused", () => {
    const [started] = cleanRun(randomUUID(), randomUUID());
    expect(parseWorkerEvent(started)).not.toHaveProperty("runId");
    const runId = randomUUID();
    expect(parseWorkerEvent({ ...started, runId })).toMatchObject({ runId });
    expect(() => parseWorkerEvent({ ...started, runId: "run-1" })).toThrow(/runId/);
  });

  it(`a second delivery to the same worker is its own run: it is stopped by its run id and the original's \
record stays`, async () => {
    const { videoId, jobId } = await newJob();
    const stopped: [string | undefined, string | undefined][] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (_job, _attempt, workerId, runId) => void stopped.push([workerId, runId]),
    });
    const original = randomUUID();
    const duplicate = randomUUID();
    const run = cleanRun(jobId, videoId).map((e) => ({ ...e, runId: original }));
    const t = (i: number) => run[i]!.at;
    // The duplicate starts mid-run on the same worker, is told to stop, and reports it stopped.
    const second: JobEvent[] = [
      {
        v: PROTOCOL_VERSION,
        type: "job.started",
        jobId,
        attempt: 1,
        seq: 1,
        workerId: "worker-1",
        runId: duplicate,
        at: t(2),
      },
      {
        v: PROTOCOL_VERSION,
        type: "job.canceled",
        jobId,
        attempt: 1,
        seq: 2,
        workerId: "worker-1",
        runId: duplicate,
        at: t(3),
      },
    ];
    await ingest.ingest(run.slice(0, 2));
    await ingest.ingest(second.slice(0, 1));
    expect(stopped).toEqual([["worker-1", duplicate]]);
    await ingest.ingest([...second.slice(1), ...run.slice(2)]);

    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.jobs[0]!.status).toBe("SUCCEEDED");
    const runs = result.jobs[0]!.runs.map((r) => [r.runId, r.status]);
    expect(runs).toHaveLength(2);
    expect(runs).toEqual(
      expect.arrayContaining([
        [original, "SUCCEEDED"],
        [duplicate, "CANCELED"],
      ]),
    );
  });

  it(`a delivery of a finished job that did no work is recorded as a run of its own and changes \
nothing else`, async () => {
    const { videoId, jobId } = await newJob();
    const ingest = createTestEventIngestor(db);
    const original = randomUUID();
    const run = cleanRun(jobId, videoId).map((e) => ({ ...e, runId: original }));
    await ingest.ingest(run);
    const before = await outcome(videoId);

    const stale = randomUUID();
    const later = new Date(Date.parse(run.at(-1)!.at) + 60_000).toISOString();
    const succeeded = run.at(-1) as Extract<JobEvent, { type: "job.succeeded" }>;
    const readies = run.filter((e) => e.type === "variant.ready");
    await ingest.ingest([
      ...readies.map((e, i) => ({ ...e, runId: stale, seq: i + 1, at: later })),
      { ...succeeded, alreadyDone: true, runId: stale, seq: readies.length + 1, at: later },
    ]);

    const after = await outcome(videoId);
    const { jobs: jobsAfter, ...restAfter } = after;
    const { jobs: jobsBefore, ...restBefore } = before;
    expect(restAfter).toEqual(restBefore);
    expect(jobsAfter[0]!.finishedAt).toEqual(jobsBefore[0]!.finishedAt);
    expect(jobsAfter[0]!.runs.find((r) => r.runId === original)).toEqual(jobsBefore[0]!.runs[0]);
    expect(jobsAfter[0]!.runs.find((r) => r.runId === stale)).toMatchObject({
      workerId: "worker-1",
      status: "SUCCEEDED",
      alreadyDone: true,
    });
  });

  it(`a heartbeat that lists a canceled attempt is answered with a cancel for that worker (how a worker learns of \
cancels it missed)`, async () => {
    const canceled = await newJob();
    const running = await newJob();
    const told: [string, number, string | undefined][] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (jobId, attempt, workerId) => void told.push([jobId, attempt, workerId]),
    });
    await ingest.ingest([cleanRun(canceled.jobId, canceled.videoId)[0]!, cleanRun(running.jobId, running.videoId)[0]!]);
    await db.job.update({ where: { id: canceled.jobId }, data: { status: "CANCELED" } });
    const heartbeat = (activeJobs: { jobId: string; attempt: number }[], at: string) => ({
      v: PROTOCOL_VERSION,
      type: "worker.heartbeat",
      workerId: "worker-1",
      capabilities: ["cpu"],
      activeJobs,
      at,
    });
    await ingest.ingest([
      heartbeat(
        [
          { jobId: running.jobId, attempt: 1 },
          { jobId: canceled.jobId, attempt: 1 },
        ],
        "2026-11-22T10:05:00.000Z",
      ),
    ]);
    expect(told).toEqual([[canceled.jobId, 1, "worker-1"]]);
    // Another attempt of the job, or a worker that lists none, is not told.
    await ingest.ingest([
      heartbeat([{ jobId: canceled.jobId, attempt: 2 }], "2026-11-22T10:05:01.000Z"),
      heartbeat([], "2026-11-22T10:05:02.000Z"),
    ]);
    expect(told).toHaveLength(1);
  });

  it("a start carries the transport's delivery or, from older workers, none; a malformed one is refused", () => {
    const [started, probed] = cleanRun(randomUUID(), randomUUID());
    expect(parseWorkerEvent(started)).not.toHaveProperty("delivery");
    const delivery = { messageId: randomUUID(), count: 2 };
    expect(parseWorkerEvent({ ...started, delivery })).toMatchObject({ delivery });
    expect(() => parseWorkerEvent({ ...started, delivery: { messageId: "m", count: 0 } })).toThrow(/count/);
    expect(() => parseWorkerEvent({ ...started, delivery: { count: 1 } })).toThrow(/Invalid worker event/);
    // Only a start says which delivery it is.
    expect(parseWorkerEvent({ ...probed, delivery })).not.toHaveProperty("delivery");
  });

  it(`a redelivery the transport made after the claim lapsed takes the job over from a killed run whose last \
heartbeat is still fresh`, async () => {
    const { videoId, jobId } = await newJob();
    const stopped: [string | undefined, string | undefined][] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (_job, _attempt, workerId, runId) => void stopped.push([workerId, runId]),
    });
    // pg-boss's job id; the first delivery is its first, the redelivery its second (retry count 1).
    const messageId = randomUUID();
    const killed = randomUUID();
    const taker = randomUUID();
    // The first run got as far as playable and heartbeated at 10:00:05, then its worker was killed.
    const first = asRun(cleanRun(jobId, videoId, 1, "worker-1").slice(0, 4), killed, 0, { messageId, count: 1 });
    const lastHeartbeat = "2026-11-22T10:00:05.000Z";
    await ingest.ingest([...first, heartbeatOf("worker-1", [jobId], lastHeartbeat)]);
    // The claim was refreshed before that heartbeat and lapsed first: the redelivery starts 8 s after
    // the last heartbeat, well within the 30 s stall.
    const second = asRun(cleanRun(jobId, videoId, 1, "worker-2"), taker, 13, { messageId, count: 2 });
    await ingest.ingest(second.slice(0, 1));
    // The newcomer goes on; the earlier run, which may be alive and cut off, is told to stop.
    expect(stopped).toEqual([["worker-1", killed]]);
    const during = await outcome(videoId);
    expect(during.jobs[0]!.runs.map((r) => [r.workerId, r.status, r.finishedAt?.toISOString()])).toEqual([
      ["worker-1", "ABANDONED", lastHeartbeat],
      ["worker-2", "RUNNING", undefined],
    ]);
    expect(during.jobs[0]).toMatchObject({ status: "RUNNING", workerId: "worker-2" });

    await ingest.ingest(second.slice(1));
    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.jobs[0]!.status).toBe("SUCCEEDED");
    expect(result.jobs[0]!.runs.map((r) => [r.runId, r.status, r.deliveryMessageId, r.deliveryCount])).toEqual([
      [killed, "ABANDONED", messageId, 1],
      [taker, "SUCCEEDED", messageId, 2],
    ]);
    expect(stopped).toHaveLength(1);
  });

  it("one heartbeat refreshes every run it lists, and only those of its worker and attempt", async () => {
    const jobs = await Promise.all([newJob(), newJob(), newJob()]);
    // Two runs of worker-1 and one of worker-2, each started at 10:00:00 (cleanRun's first event).
    await ingestor.ingest([
      cleanRun(jobs[0]!.jobId, jobs[0]!.videoId, 1, "worker-1")[0]!,
      cleanRun(jobs[1]!.jobId, jobs[1]!.videoId, 1, "worker-1")[0]!,
      cleanRun(jobs[2]!.jobId, jobs[2]!.videoId, 1, "worker-2")[0]!,
    ]);
    const at = "2026-11-22T10:00:07.000Z";
    await ingestor.ingest([
      {
        ...heartbeatOf("worker-1", [], at),
        // Job 0 and 1 as running; job 2 is worker-2's (not refreshed); job 0 again at a later attempt (none).
        activeJobs: [
          { jobId: jobs[0]!.jobId, attempt: 1 },
          { jobId: jobs[1]!.jobId, attempt: 1 },
          { jobId: jobs[2]!.jobId, attempt: 1 },
          { jobId: jobs[0]!.jobId, attempt: 2 },
        ],
      },
    ]);
    const heard = await Promise.all(
      jobs.map(async ({ jobId }) => {
        const job = await db.job.findUniqueOrThrow({ where: { id: jobId }, include: { runs: true } });
        return [job.heartbeatAt?.toISOString(), job.runs.map((r) => [r.workerId, r.heartbeatAt?.toISOString()])];
      }),
    );
    expect(heard).toEqual([
      [at, [["worker-1", at]]],
      [at, [["worker-1", at]]],
      // The job's heartbeat is the attempt's, whoever runs it; the run is worker-2's and keeps its own.
      [at, [["worker-2", "2026-11-22T10:00:00.000Z"]]],
    ]);
    // An older heartbeat applied late (the queue redelivers it; a newer one went as a sample, which
    // overtakes the queue) moves no heartbeat back, and ends none of the runs it lists.
    await ingestor.ingest([
      { ...heartbeatOf("worker-1", [jobs[0]!.jobId, jobs[1]!.jobId], "2026-11-22T10:00:03.000Z") },
    ]);
    const late = await db.jobRun.findMany({
      where: { workerId: "worker-1", jobId: { in: [jobs[0]!.jobId, jobs[1]!.jobId] } },
      include: { job: true },
    });
    expect(late.map((r) => [r.status, r.heartbeatAt?.toISOString(), r.job.heartbeatAt?.toISOString()])).toEqual([
      ["RUNNING", at, at],
      ["RUNNING", at, at],
    ]);
  });

  it("a heartbeat finds its worker's running runs by an index, not a scan of every run ever recorded", async () => {
    // The planner scans a small table whatever its indexes; told not to, it still must without one.
    const plan = await db.$transaction(async (tx) => {
      await tx.$executeRawUnsafe("SET LOCAL enable_seqscan = off");
      return tx.$queryRawUnsafe<{ "QUERY PLAN": string }[]>(
        `EXPLAIN SELECT id FROM "JobRun" WHERE "workerId" = 'worker-1' AND status = 'RUNNING' ORDER BY id FOR NO KEY UPDATE`,
      );
    });
    const text = plan.map((row) => row["QUERY PLAN"]).join("\n");
    expect(text).toMatch(
      /Index (Only )?Scan using "JobRun_workerId_status_idx"|Bitmap Index Scan on "JobRun_workerId_status_idx"/,
    );
  });

  it("a run whose delivery was taken over fails alone: the attempt goes on with the redelivery", async () => {
    const { videoId, jobId } = await newJob();
    const requeued: Date[] = [];
    const ingest = createTestEventIngestor(db, { onJobRequeued: (at) => void requeued.push(at) });
    const messageId = randomUUID();
    const lapsed = randomUUID();
    const first = asRun(cleanRun(jobId, videoId, 1, "worker-1").slice(0, 4), lapsed, 0, { messageId, count: 1 });
    const second = asRun(cleanRun(jobId, videoId, 1, "worker-2"), randomUUID(), 13, { messageId, count: 2 });
    await ingest.ingest([...first, heartbeatOf("worker-1", [jobId], "2026-11-22T10:00:05.000Z")]);
    await ingest.ingest(second.slice(0, 3));
    // The earlier run's worker was alive: it found its claim gone and reports its run failed.
    const failed: JobEvent = {
      v: PROTOCOL_VERSION,
      type: "job.failed",
      jobId,
      attempt: 1,
      seq: 5,
      workerId: "worker-1",
      runId: lapsed,
      at: "2026-11-22T10:00:16.000Z",
      error: "job is no longer active under this worker's claim",
      retryable: true,
    };
    await ingest.ingest([failed]);
    const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({ status: "RUNNING", attempt: 1, error: null });
    expect(requeued).toEqual([]);

    await ingest.ingest(second.slice(3));
    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.jobs[0]!.runs.map((r) => [r.workerId, r.status])).toEqual([
      ["worker-1", "FAILED"],
      ["worker-2", "SUCCEEDED"],
    ]);
  });

  it(`a newcomer is still stopped while another run heartbeats and holds its delivery: the same delivery \
twice, an older one, another message of the job, or a worker that does not say`, async () => {
    const { videoId, jobId } = await newJob();
    const stopped: [string | undefined, string | undefined][] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (_job, _attempt, workerId, runId) => void stopped.push([workerId, runId]),
    });
    const messageId = randomUUID();
    const original = randomUUID();
    // The running run took on the message's second delivery.
    const run = asRun(cleanRun(jobId, videoId), original, 0, { messageId, count: 2 });
    await ingest.ingest([...run.slice(0, 3), heartbeatOf("worker-1", [jobId], "2026-11-22T10:00:05.000Z")]);
    const newcomers: [string, JobDelivery | undefined][] = [
      ["same delivery twice", { messageId, count: 2 }],
      ["an older delivery arriving late", { messageId, count: 1 }],
      ["the job's message published twice", { messageId: randomUUID(), count: 3 }],
      ["an older worker", undefined],
    ];
    const started = cleanRun(jobId, videoId, 1, "worker-2")[0]!;
    const runIds = newcomers.map(() => randomUUID());
    for (const [i, [, delivery]] of newcomers.entries()) {
      const [start] = asRun([started], runIds[i]!, 6 + i, delivery);
      await ingest.ingest([start]);
    }
    expect(stopped, newcomers.map(([why]) => why).join(", ")).toEqual(runIds.map((r) => ["worker-2", r]));
    // The job still names the run that holds it, for the figures and progress counted as its own.
    expect(await db.job.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({
      workerId: "worker-1",
      runId: original,
      startedAt: new Date(run[0]!.at),
    });
    await ingest.ingest(run.slice(3));
    const result = await outcome(videoId);
    expect(result.video.status).toBe("READY");
    expect(result.jobs[0]!.runs.find((r) => r.runId === original)).toMatchObject({ status: "SUCCEEDED" });
  });

  it("a run from a worker that does not say its delivery keeps the job against any newcomer while it heartbeats", async () => {
    const { jobId, videoId } = await newJob();
    const stopped: (string | undefined)[] = [];
    const ingest = createTestEventIngestor(db, {
      onCanceledJobReported: async (_job, _attempt, _workerId, runId) => void stopped.push(runId),
    });
    await ingest.ingest([
      ...cleanRun(jobId, videoId).slice(0, 3),
      heartbeatOf("worker-1", [jobId], "2026-11-22T10:00:05.000Z"),
    ]);
    const newcomer = randomUUID();
    const started = cleanRun(jobId, videoId, 1, "worker-2")[0]!;
    await ingest.ingest(asRun([started], newcomer, 8, { messageId: randomUUID(), count: 5 }));
    expect(stopped).toEqual([newcomer]);
  });
});
