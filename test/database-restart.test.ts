import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../src/db/embedded.ts";
import { collectSubscription, gqlAt, wsClientAt } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { createUploadOnceAnswered, uploadUntilEncoding } from "./support/uploads.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { processesWorkingUnder } from "./support/process-scan.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { pacedFfmpeg } from "./support/paced-ffmpeg.ts";

const CANCEL = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename ... on Error { message } } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status } } }`);

/**
 * A real restart, not a simulation: the API and a worker (separate processes) run on an embedded
 * Postgres of this test's own, which is stopped mid-encode and started again on the same port.
 */
describe("a Postgres restart under a running API and worker (Postgres transport)", () => {
  let root: string;
  let workerTmp: string;
  let postgres: EmbeddedDatabase;
  let port: number;
  let api: ServiceProcess & { url: string };
  let worker: ServiceProcess;
  const clients: Client[] = [];
  const wsClient = () => {
    const c = wsClientAt(api.url);
    clients.push(c);
    return c;
  };
  const ffmpegRunning = () => processesWorkingUnder(workerTmp).length;
  const alive = (p: ServiceProcess) => p.child.exitCode === null && p.child.signalCode === null;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "videograph-restart-"));
    // As root, Postgres runs as the "postgres" user, which must reach its data dir.
    await chmod(root, 0o755);
    workerTmp = await mkdtemp(path.join(tmpdir(), "videograph-restart-worker-"));
    postgres = await startEmbeddedPostgres(path.join(root, "db"));
    port = Number(new URL(postgres.url).port);
    const common = {
      DATABASE_URL: postgres.url,
      DATA_DIR: path.join(root, "data"),
      SIGNING_SECRET: "a-shared-secret-for-the-restart-test-000",
      HLS_SEGMENT_SECONDS: "2",
    };
    api = await startApiProcess("api", { ...common, JOB_STALL_SECONDS: "30", PROGRESS_WRITE_INTERVAL_MS: "500" });
    worker = await startWorkerProcess("worker", {
      ...common,
      // Encodes read their source at its own rate (test/support/paced-ffmpeg.ts): an 8 s clip is still
      // encoding when the database comes back, a minute's when it is canceled, on any machine.
      FFMPEG_PATH: await pacedFfmpeg(),
      WORKER_TMP_DIR: workerTmp,
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "300",
    });
  }, 120_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await stopAllProcesses();
    await postgres?.stop();
    for (const dir of [root, workerTmp]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`both processes ride through it: the video encoding meanwhile reaches READY, a new upload too, and a cancel still \
stops ffmpeg within 5 s`, async () => {
    const during = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
    const { final: duringFinal } = await uploadUntilEncoding(
      api.url,
      wsClient(),
      during,
      "encoding through the restart",
      EVENTS,
    );

    await postgres.stop();
    await new Promise((r) => setTimeout(r, 2000));
    postgres = await startEmbeddedPostgres(path.join(root, "db"), port);

    const created = await createUploadOnceAnswered(api.url, "after the restart", 15_000);
    // The subscription from before the restart was served by the fan-out that reconnected.
    expect((await duringFinal.done).at(-1)!.videoEvents.video.status).toBe("READY");

    const after = await makeClip({ width: 640, height: 360, seconds: 4, audio: true });
    const afterFinal = collectSubscription(wsClient(), EVENTS, { id: created.id });
    expect((await fetch(`${api.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(after) })).status).toBe(
      200,
    );
    expect((await afterFinal.done).at(-1)!.videoEvents.video.status).toBe("READY");

    const canceled = await makeClip({ width: 640, height: 360, seconds: 60, audio: true });
    const { id } = await uploadUntilEncoding(api.url, wsClient(), canceled, "canceled after the restart", EVENTS);
    expect(ffmpegRunning()).toBeGreaterThan(0);
    const canceledAt = Date.now();
    expect((await gqlAt(api.url, CANCEL, { id })).cancelVideo.__typename).toBe("CancelVideoSuccess");
    await expect.poll(ffmpegRunning, { timeout: 5000, interval: 100 }).toBe(0);
    expect(Date.now() - canceledAt).toBeLessThan(5000);

    expect(alive(api)).toBe(true);
    expect(alive(worker)).toBe(true);
    expect(api.log() + worker.log()).not.toMatch(/Unhandled 'error' event/);
  }, 180_000);
});
