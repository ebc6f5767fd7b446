import { ContentKeys } from "../src/content-protection/content-keys.ts";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { ValidationError } from "../src/errors.ts";
import { createVideoPubSub } from "../src/events/video-events.ts";
import { cancelVideo, tellWorkersToCancel } from "../src/jobs/cancel.ts";
import { createDispatcher, type Dispatcher } from "../src/jobs/dispatcher.ts";
import type { EventIngestor } from "../src/jobs/ingest-events.ts";
import { createTestEventIngestor } from "./support/event-ingestor.ts";
import { LADDER_360P, PROBE_640X360 } from "./support/job-events.ts";
import { retryVariant } from "../src/jobs/retry-variant.ts";
import { queueUploadedVideo } from "../src/uploads/complete-upload.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import type { JobEvent, JobEventBody } from "../src/protocol/job-events.ts";
import type { Rung } from "../src/protocol/media-facts.ts";
import { CONTROL_NOTIFY_CHANNEL } from "../src/protocol/queues.ts";
import { createPostgresTransport } from "../src/transport/postgres.ts";
import type { ApiTransport } from "../src/transport/types.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { jobDeps } from "./support/job-deps.ts";

const LADDER = LADDER_360P;
const T0 = Date.parse("2026-11-22T10:00:00Z");

function events(jobId: string, bodies: JobEventBody[], workerId = "worker-1", firstSeq = 1, firstAt = T0): JobEvent[] {
  return bodies.map(
    (b, i) =>
      ({
        ...b,
        v: PROTOCOL_VERSION,
        jobId,
        attempt: 1,
        seq: firstSeq + i,
        workerId,
        at: new Date(firstAt + i * 1000).toISOString(),
      }) as JobEvent,
  );
}

/** A transcode one worker has taken as far as its last rung: everything but `audio` READY, playable. */
function runUntilLastRung(
  jobId: string,
  videoId: string,
  failed?: string,
): { applied: JobEvent[]; rest: JobEventBody[] } {
  const prefix = `videos/${videoId}/hls`;
  const ready = (rung: Rung): JobEventBody =>
    rung.name === failed
      ? { type: "variant.failed", name: rung.name, rung, error: `Publishing the ${rung.name} rung failed` }
      : {
          type: "variant.ready",
          name: rung.name,
          rung,
          playlistKey: `${prefix}/${rung.name}/index.m3u8`,
          segmentCount: 3,
        };
  const applied: JobEventBody[] = [
    { type: "job.started" },
    {
      type: "job.probed",
      probe: PROBE_640X360,
      ladder: LADDER,
    },
    { type: "video.playable", masterKey: `${prefix}/master.m3u8` },
    ...LADDER.slice(0, 2).map(ready),
  ];
  return {
    applied: events(jobId, applied),
    rest: [
      ready(LADDER[2]!),
      {
        type: "job.succeeded",
        masterKey: `${prefix}/master.m3u8`,
        posterKey: `videos/${videoId}/thumbnails/poster.jpg`,
      },
    ],
  };
}

/**
 * The points where a test stops a change while a competing one arrives: triggers created in this test's
 * database alone (`createHolds`) make the change wait there for an advisory lock the test holds (`holdAt`).
 */
const HOLDS = {
  /** A job's final transition (SUCCEEDED or FAILED), at its commit: inside its transaction, under its video's lock. */
  finalTransition: { lock: 68_009 },
  /** The first statement that updates jobs: cancelVideo's writes, after its read, under the video's lock. */
  jobWrites: { lock: 68_010, first: 68_011, table: "Job" },
  /** The first statement that updates videos: retryVariant's compare-and-set, after its read. */
  videoWrites: { lock: 68_012, first: 68_013, table: "Video" },
} as const;

async function createHolds(sql: pg.Client): Promise<void> {
  await sql.query(`CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_advisory_xact_lock(TG_ARGV[0]::bigint); RETURN NULL; END $$`);
  await sql.query(
    `CREATE CONSTRAINT TRIGGER test_hold_final_transition AFTER UPDATE OF status ON "Job" DEFERRABLE INITIALLY ` +
      `DEFERRED FOR EACH ROW WHEN (NEW.status IN ('SUCCEEDED', 'FAILED') AND OLD.status IS DISTINCT FROM NEW.status) ` +
      `EXECUTE FUNCTION test_hold('${HOLDS.finalTransition.lock}')`,
  );
  // Only the first transaction to run such a statement waits: its competitors' statements pass.
  await sql.query(`CREATE FUNCTION test_hold_first() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF pg_try_advisory_xact_lock(TG_ARGV[1]::bigint) THEN PERFORM pg_advisory_xact_lock(TG_ARGV[0]::bigint); END IF;
      RETURN NULL;
    END $$`);
  for (const { table, lock, first } of [HOLDS.jobWrites, HOLDS.videoWrites]) {
    await sql.query(
      `CREATE TRIGGER test_hold_first BEFORE UPDATE ON "${table}" FOR EACH STATEMENT ` +
        `EXECUTE FUNCTION test_hold_first('${lock}', '${first}')`,
    );
  }
}

/** `p` as a value: what it resolved to, or the error it rejected with. */
const outcomeOf = <T>(p: Promise<T>): Promise<T | Error> => p.catch((err: Error) => err);

describe("state changes are compare-and-set; races with the interleaving injected", () => {
  let database: TestDatabase;
  let db: Db;
  let sql: pg.Client;
  let listener: pg.Client;
  let transport: ApiTransport;
  let dispatcher: Dispatcher;
  let ingestor: EventIngestor;
  const control: { type?: string; jobId?: string; marker?: number }[] = [];
  const pubSub = createVideoPubSub(undefined);
  const deps = () => jobDeps({ db, pubSub, transport, dispatcher });

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    await createHolds(sql);
    listener = new pg.Client({ connectionString: database.url });
    await listener.connect();
    listener.on("notification", (n) => control.push(JSON.parse(n.payload!)));
    await listener.query(`LISTEN "${CONTROL_NOTIFY_CHANNEL}"`);
    transport = createPostgresTransport({ connectionString: database.url, stallSeconds: 30 });
    await transport.start();
    dispatcher = createDispatcher({
      db,
      transport,
      segmentSeconds: 2,
      maxDurationSeconds: 3600,
      contentKeys: new ContentKeys("a state races test's signing secret, 32+ bytes"),
      urlImport: { maxBytes: 1e6, allowPrivateAddresses: false },
      vanishedAfterSeconds: 90,
    });
    await db.webhookEndpoint.create({
      data: { tenantId: DEFAULT_TENANT_ID, url: "http://127.0.0.1:9/hook", secret: "s", events: [] },
    });
    ingestor = createTestEventIngestor(db, {
      pubSub,
      onCanceledJobReported: (jobId, attempt, workerId) => tellWorkersToCancel(transport, jobId, attempt, workerId),
    });
  }, 60_000);
  afterAll(async () => {
    await dispatcher.stop();
    await transport.stop();
    await listener.end();
    await sql.end();
    await db.$disconnect();
    await database.drop();
  });

  /**
   * Waits until `p` has settled or a session of the test database waits for a row lock: the competing change went as
   * far as it can.
   */
  async function settledOrBlocked(p: Promise<unknown>): Promise<void> {
    let settled = false;
    void p.finally(() => (settled = true));
    const lockWaits = async () =>
      (
        await sql.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = ` +
            `'Lock' AND wait_event IN ('transactionid', 'tuple')`,
        )
      ).rows[0].n;
    await expect.poll(async () => settled || (await lockWaits()) > 0, { timeout: 10_000, interval: 20 }).toBe(true);
  }

  /**
   * Holds the next change that reaches `point` (`HOLDS`) there: `reached` once its transaction waits there (seen
   * in `pg_locks`), `release` lets it go on.
   */
  async function holdAt(point: { lock: number }) {
    await sql.query("SELECT pg_advisory_lock($1)", [point.lock]);
    const waiters = async () =>
      (
        await sql.query(
          `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1 ` +
            `AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [point.lock],
        )
      ).rows[0].n;
    return {
      reached: expect.poll(waiters, { timeout: 10_000, interval: 20 }).toBe(1),
      release: async () => {
        await sql.query("SELECT pg_advisory_unlock($1)", [point.lock]);
      },
    };
  }

  /** The cancels broadcast to workers for `jobId` so far (a marker notified after them arrives after them). */
  async function cancelsSent(jobId: string): Promise<number> {
    const marker = Math.random();
    await sql.query("SELECT pg_notify($1, $2)", [CONTROL_NOTIFY_CHANNEL, JSON.stringify({ marker })]);
    await expect.poll(() => control.some((m) => m.marker === marker), { timeout: 5000, interval: 10 }).toBe(true);
    return control.filter((m) => m.type === "job.cancel" && m.jobId === jobId).length;
  }

  async function processingVideo(failed?: string) {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "race", status: "QUEUED", sourceKey: "x" },
    });
    const job = await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE", dispatchedAt: new Date() } });
    const { applied, rest } = runUntilLastRung(job.id, video.id, failed);
    await ingestor.ingest(applied);
    const finish = (body: JobEventBody) =>
      events(job.id, [...rest.slice(0, 1), body], "worker-1", applied.length + 1, T0 + 60_000);
    return {
      videoId: video.id,
      jobId: job.id,
      succeeded: events(job.id, rest, "worker-1", applied.length + 1, T0 + 60_000),
      failed: finish({ type: "job.failed", error: "ffmpeg exited with code 1", retryable: false }),
    };
  }

  async function stateOf(videoId: string) {
    const video = await db.video.findUniqueOrThrow({
      where: { id: videoId },
      include: { variants: true, jobs: { include: { runs: true } } },
    });
    const deliveries = await db.webhookDelivery.findMany();
    const webhookTypes = deliveries
      .filter((d) => JSON.stringify(d.payload).includes(videoId))
      .map((d) => d.eventType)
      .sort();
    return {
      video,
      job: video.jobs[0]!,
      variants: Object.fromEntries(video.variants.map((v) => [v.name, v.status])),
      webhookTypes,
    };
  }

  it(`a cancel holding after its read wins over a completion arriving then: CANCELED, no master, \
no video.ready`, async () => {
    const { videoId, jobId, succeeded } = await processingVideo();
    const g = await holdAt(HOLDS.jobWrites);
    const cancel = outcomeOf(cancelVideo(deps(), videoId));
    await g.reached;
    const completion = ingestor.ingest(succeeded);
    await settledOrBlocked(completion);
    await g.release();
    expect(await cancel).not.toBeInstanceOf(Error);
    await completion;

    const s = await stateOf(videoId);
    expect(s.video).toMatchObject({
      status: "CANCELED",
      playable: false,
      masterKey: null,
      error: "Canceled on request",
    });
    expect(s.job.status).toBe("CANCELED");
    expect(s.webhookTypes).not.toContain("video.ready");
    expect(Object.values(s.variants).every((v) => v === "READY" || v === "SKIPPED")).toBe(true);
    expect(await cancelsSent(jobId)).toBeGreaterThanOrEqual(1);
  });

  it(`a completion holding before its commit wins over a cancel arriving then: the cancel is refused and \
changes nothing`, async () => {
    const { videoId, jobId, succeeded } = await processingVideo();
    const g = await holdAt(HOLDS.finalTransition);
    const completion = ingestor.ingest(succeeded);
    await g.reached;
    const cancel = outcomeOf(cancelVideo(deps(), videoId));
    await settledOrBlocked(cancel);
    await g.release();
    await completion;

    const refused = await cancel;
    expect(refused).toBeInstanceOf(ValidationError);
    expect((refused as Error).message).toMatch(/READY.*already finished/);
    const s = await stateOf(videoId);
    expect(s.video).toMatchObject({ status: "READY", playable: true, error: null });
    expect(s.job.status).toBe("SUCCEEDED");
    expect(s.variants).toEqual({ "360p": "READY", "144p": "READY", audio: "READY" });
    expect(s.webhookTypes).toContain("video.ready");
    expect(await cancelsSent(jobId)).toBe(0);
  });

  it(`a video.playable arriving while a cancel holds after its read does not make the canceled \
video playable`, async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "race", status: "QUEUED", sourceKey: "x" },
    });
    const job = await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE", dispatchedAt: new Date() } });
    const [started, probed, playable] = runUntilLastRung(job.id, video.id).applied;
    await ingestor.ingest([started!, probed!]);
    const g = await holdAt(HOLDS.jobWrites);
    const cancel = outcomeOf(cancelVideo(deps(), video.id));
    await g.reached;
    const late = ingestor.ingest([playable!]);
    await settledOrBlocked(late);
    await g.release();
    expect(await cancel).not.toBeInstanceOf(Error);
    await late;

    const s = await stateOf(video.id);
    expect(s.video).toMatchObject({ status: "CANCELED", playable: false, masterKey: null });
    expect(s.webhookTypes).not.toContain("video.playable");
  });

  it(`after a committed cancel, a run still reporting is told again to stop, and its end is recorded without \
changing the job`, async () => {
    const { videoId, jobId, succeeded } = await processingVideo();
    await cancelVideo(deps(), videoId);
    const told = await cancelsSent(jobId);
    await ingestor.ingest(succeeded.slice(0, 1));
    expect(await cancelsSent(jobId)).toBe(told + 1);
    await ingestor.ingest(succeeded.slice(1));

    const s = await stateOf(videoId);
    expect(s.video.status).toBe("CANCELED");
    expect(s.job.status).toBe("CANCELED");
    expect(s.variants.audio).toBe("SKIPPED");
    expect(s.webhookTypes).not.toContain("video.ready");
    expect(s.job.runs.map((r) => [r.workerId, r.status])).toEqual([["worker-1", "SUCCEEDED"]]);
  });

  it("of two concurrent cancels one succeeds, the other is refused, and workers are told once", async () => {
    const { videoId, jobId } = await processingVideo();
    const g = await holdAt(HOLDS.jobWrites);
    const first = outcomeOf(cancelVideo(deps(), videoId));
    await g.reached;
    const second = outcomeOf(cancelVideo(deps(), videoId));
    await settledOrBlocked(second);
    await g.release();

    const results = [await first, await second];
    expect(results.filter((r) => r instanceof ValidationError)).toHaveLength(1);
    expect(results.filter((r) => !(r instanceof Error))).toHaveLength(1);
    expect((results.find((r) => r instanceof Error) as Error).message).toMatch(/CANCELED/);
    expect((await stateOf(videoId)).video.status).toBe("CANCELED");
    expect(await cancelsSent(jobId)).toBe(1);
  });

  it(`a cancel holding after its read wins over a final failure arriving then: CANCELED, no failure webhooks, the \
run's failure recorded`, async () => {
    const { videoId, failed } = await processingVideo();
    const g = await holdAt(HOLDS.jobWrites);
    const cancel = outcomeOf(cancelVideo(deps(), videoId));
    await g.reached;
    const failure = ingestor.ingest(failed);
    await settledOrBlocked(failure);
    await g.release();
    expect(await cancel).not.toBeInstanceOf(Error);
    await failure;

    const s = await stateOf(videoId);
    expect(s.video).toMatchObject({ status: "CANCELED", error: "Canceled on request" });
    expect(s.job).toMatchObject({ status: "CANCELED", error: "Canceled on request" });
    expect(s.webhookTypes).not.toContain("video.failed");
    expect(s.webhookTypes).not.toContain("job.failed");
    expect(s.job.runs.map((r) => [r.workerId, r.status])).toEqual([["worker-1", "FAILED"]]);
  });

  it("a final failure holding before its commit wins over a cancel arriving then: the cancel is refused", async () => {
    const { videoId, jobId, failed } = await processingVideo();
    const g = await holdAt(HOLDS.finalTransition);
    const failure = ingestor.ingest(failed);
    await g.reached;
    const cancel = outcomeOf(cancelVideo(deps(), videoId));
    await settledOrBlocked(cancel);
    await g.release();
    await failure;

    expect(await cancel).toBeInstanceOf(ValidationError);
    const s = await stateOf(videoId);
    expect(s.video.status).toBe("FAILED");
    expect(s.job.status).toBe("FAILED");
    expect(Object.values(s.variants)).not.toContain("SKIPPED");
    expect(await cancelsSent(jobId)).toBe(0);
  });

  it(`an upload completing while a cancel holds after its read queues nothing: the video stays \
CANCELED with no job`, async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "race", status: "WAITING_FOR_UPLOAD" },
    });
    const g = await holdAt(HOLDS.jobWrites);
    const cancel = outcomeOf(cancelVideo(deps(), video.id));
    await g.reached;
    const queued = queueUploadedVideo(deps(), video.id, {
      key: `videos/${video.id}/source/upload`,
      name: "upload",
      size: 10,
    });
    await settledOrBlocked(queued);
    await g.release();

    expect(await cancel).not.toBeInstanceOf(Error);
    expect(await queued).toBeNull();
    expect((await stateOf(video.id)).video.status).toBe("CANCELED");
    expect(await db.job.count({ where: { videoId: video.id } })).toBe(0);
  });

  it("of two concurrent retryVariants the loser is told a retry is already queued", async () => {
    const { videoId, succeeded } = await processingVideo("144p");
    await ingestor.ingest(succeeded);
    expect((await stateOf(videoId)).variants["144p"]).toBe("FAILED");
    const variantId = (await db.variant.findFirstOrThrow({ where: { videoId, name: "144p" } })).id;

    const g = await holdAt(HOLDS.videoWrites);
    const first = outcomeOf(retryVariant(deps(), variantId, DEFAULT_TENANT_ID));
    await g.reached;
    const second = await outcomeOf(retryVariant(deps(), variantId, DEFAULT_TENANT_ID));
    expect(second).not.toBeInstanceOf(Error);
    await g.release();

    const lost = await first;
    expect(lost).toBeInstanceOf(ValidationError);
    expect((lost as Error).message).toMatch(/^A retry of this variant is already (queued|running)$/);
    const jobs = await db.job.findMany({ where: { videoId, rungs: { has: "144p" } } });
    expect(jobs).toHaveLength(1);
  });

  it("a run that finishes while another worker's start presumes it dead stays finished, never ABANDONED", async () => {
    const { jobId } = await processingVideo();
    // worker-1's run finishes (its own transaction, not yet committed) while worker-2's start is applied.
    await sql.query("BEGIN");
    await sql.query(
      `UPDATE "JobRun" SET status = 'SUCCEEDED', "finishedAt" = $2 WHERE "jobId" = $1 AND "workerId" = 'worker-1'`,
      [jobId, new Date(T0 + 60_000)],
    );
    const start = ingestor.ingest(events(jobId, [{ type: "job.started" }], "worker-2", 1, T0 + 120_000));
    await settledOrBlocked(start);
    await sql.query("COMMIT");
    await start;

    const runs = await db.jobRun.findMany({ where: { jobId }, orderBy: { workerId: "asc" } });
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([
      ["worker-1", "SUCCEEDED"],
      ["worker-2", "RUNNING"],
    ]);
  });
});
