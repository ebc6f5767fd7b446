import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Client } from "graphql-ws";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, gqlAt, wsClientAt } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload, createUploadOnceAnswered, uploadUntilEncoding } from "./support/uploads.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { processesWorkingUnder } from "./support/process-scan.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { pacedFfmpeg } from "./support/paced-ffmpeg.ts";

const CANCEL = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename ... on Error { message } } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status } } }`);
const STATUS = graphql(
  `query($id: ID!) { video(id: $id) { status jobs(first: 1) { edges { node { status runs { status } } } } } }`,
);

/**
 * What a database restart or failover does to the clients of both programs, simulated without
 * restarting the shared server: every connection to this test's database is terminated by the
 * server (`pg_terminate_backend`), as a restart or a failover ends them.
 */
describe("database connections lost under a running API and worker (Postgres transport)", () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let dataDir: string;
  let workerTmp: string;
  let api: ServiceProcess & { url: string };
  let worker: ServiceProcess;
  // The worker logs in as a role of its own, so the test can keep it out of the database alone.
  const workerRole = `videograph_worker_${randomBytes(4).toString("hex")}`;
  const clients: Client[] = [];
  const wsClient = () => {
    const c = wsClientAt(api.url);
    clients.push(c);
    return c;
  };

  /** Terminates the backends of this database (all but the test's own, or only the worker's). */
  const terminate = async (only?: string): Promise<number> => {
    const { rowCount } = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND ($1::text IS NULL OR usename = $1)`,
      [only ?? null],
    );
    return rowCount ?? 0;
  };
  const ffmpegRunning = () => processesWorkingUnder(workerTmp).length;
  const alive = (p: ServiceProcess) => p.child.exitCode === null && p.child.signalCode === null;

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`CREATE ROLE "${workerRole}" LOGIN SUPERUSER`);
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-failover-"));
    workerTmp = await mkdtemp(path.join(tmpdir(), "videograph-failover-worker-"));
    const common = {
      DATA_DIR: dataDir,
      SIGNING_SECRET: "a-shared-secret-for-the-failover-test-0",
      HLS_SEGMENT_SECONDS: "2",
    };
    api = await startApiProcess("api", {
      ...common,
      DATABASE_URL: db.url,
      JOB_STALL_SECONDS: "30",
      PROGRESS_WRITE_INTERVAL_MS: "500",
    });
    const workerUrl = new URL(db.url);
    workerUrl.username = workerRole;
    // Heartbeats on their timer would hide a missing resync; only the one sent on reconnecting counts.
    worker = await startWorkerProcess("worker", {
      ...common,
      DATABASE_URL: workerUrl.toString(),
      // Encodes read their source at its own rate (test/support/paced-ffmpeg.ts): a minute's clip is
      // still encoding whenever a test cancels it, on any machine, for the CPU of what it encoded.
      FFMPEG_PATH: await pacedFfmpeg(),
      WORKER_TMP_DIR: workerTmp,
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "300",
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await stopAllProcesses();
    if (admin) {
      await admin.query(`DROP OWNED BY "${workerRole}"`);
      await admin.query(`DROP ROLE "${workerRole}"`);
      await admin.end();
    }
    await db?.drop();
    for (const dir of [dataDir, workerTmp]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`the API survives losing every connection right after mutations, and answers queries and mutations \
within seconds`, async () => {
    // A cancel leaves an idle connection in the transport's control pool, a mutation one in the
    // rate limiter's pool: the idle clients whose 'error' event once took the process down.
    const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: false });
    const { id } = await uploadUntilEncoding(api.url, wsClient(), clip, "canceled before the kill", EVENTS);
    expect((await gqlAt(api.url, CANCEL, { id })).cancelVideo.__typename).toBe("CancelVideoSuccess");
    await createUpload(api.url, "leaves an idle rate-limiter connection");

    expect(await terminate()).toBeGreaterThanOrEqual(5);
    const killedAt = Date.now();
    await expect
      .poll(
        async () => {
          const created = await createUpload(api.url, "after the kill").catch(() => null);
          const read = await gqlAt(api.url, STATUS, { id }).catch(() => null);
          return { created: Boolean(created?.id), status: read?.video?.status ?? null };
        },
        { timeout: 10_000, interval: 250 },
      )
      .toEqual({ created: true, status: "CANCELED" });
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(alive(api)).toBe(true);
    expect(alive(worker)).toBe(true);
    expect(api.log()).not.toMatch(/Unhandled 'error' event/);
  });

  it(`a cancel sent right after every connection was lost reaches the worker, which stops \
ffmpeg within 5 s`, async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 60, audio: true });
    const { id, final } = await uploadUntilEncoding(api.url, wsClient(), clip, "canceled after the kill", EVENTS);
    expect(ffmpegRunning()).toBeGreaterThan(0);

    expect(await terminate()).toBeGreaterThanOrEqual(5);
    const canceledAt = Date.now();
    await expect
      .poll(async () => (await gqlAt(api.url, CANCEL, { id }).catch(() => null))?.cancelVideo.__typename, {
        timeout: 4000,
        interval: 100,
      })
      .toBe("CancelVideoSuccess");
    await expect.poll(ffmpegRunning, { timeout: 5000 - (Date.now() - canceledAt), interval: 100 }).toBe(0);
    expect((await final.done).at(-1)!.videoEvents.video.status).toBe("CANCELED");
    await expect
      .poll(async () => (await gqlAt(api.url, STATUS, { id })).video!.jobs.edges[0]!.node.runs[0]?.status, {
        timeout: 10_000,
      })
      .toBe("CANCELED");
    expect(alive(worker)).toBe(true);
  });

  it(`a cancel sent while the worker cannot reach the database reaches it when it can again, and ffmpeg stops \
within 5 s of that`, async () => {
    // A minute, read at its own rate: the encode outlasts the outage; it is canceled anyway.
    const clip = await makeClip({ width: 640, height: 360, seconds: 60, audio: true });
    const { id } = await uploadUntilEncoding(api.url, wsClient(), clip, "canceled during the outage", EVENTS);
    const outageLogged = worker.log().split("control channel still down").length;

    await admin.query(`ALTER ROLE "${workerRole}" NOLOGIN`);
    try {
      expect(await terminate(workerRole)).toBeGreaterThanOrEqual(2);
      await expect
        .poll(() => worker.log().split("control channel still down").length, { timeout: 5000 })
        .toBeGreaterThan(outageLogged);
      expect((await gqlAt(api.url, CANCEL, { id })).cancelVideo.__typename).toBe("CancelVideoSuccess");
      // The broadcast found no listener: the worker encodes on, unaware.
      await new Promise((r) => setTimeout(r, 1000));
      expect(ffmpegRunning()).toBeGreaterThan(0);
    } finally {
      await admin.query(`ALTER ROLE "${workerRole}" LOGIN`);
    }
    const backAt = Date.now();
    await expect.poll(ffmpegRunning, { timeout: 5000, interval: 100 }).toBe(0);
    expect(Date.now() - backAt).toBeLessThan(5000);
    expect(worker.log()).toContain("control channel reconnected");
    await expect
      .poll(async () => (await gqlAt(api.url, STATUS, { id })).video!.jobs.edges[0]!.node.runs[0]?.status, {
        timeout: 10_000,
      })
      .toBe("CANCELED");
  });

  it(`jobs and events flow again after every connection was lost: a video uploaded afterwards \
reaches READY`, async () => {
    expect(await terminate()).toBeGreaterThanOrEqual(5);
    const clip = await makeClip({ width: 640, height: 360, seconds: 4, audio: true });
    const { uploadUrl, id } = await createUploadOnceAnswered(api.url, "after the kill", 10_000);
    const final = collectSubscription(wsClient(), EVENTS, { id });
    expect((await fetch(`${api.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    expect((await final.done).at(-1)!.videoEvents.video.status).toBe("READY");
    expect(alive(api) && alive(worker)).toBe(true);
  });
});
