import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { uploadUntilEncoding } from "./support/uploads.ts";
import { queryDatabase } from "./support/db.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { startWorkerProcess, stopAllProcesses } from "./support/processes.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status playable } } }`);
const STATUS = graphql(`query($id: ID!) { video(id: $id) { status } }`);
/** A dead run's job goes back to the queue by the backstop after 3 × this, the transport's redelivery after it. */
const STALL_SECONDS = 30;

/**
 * The transport's claim (refreshed by pg-boss every half heartbeat) and the run's liveness (the
 * worker's own heartbeats, every 2 s here) are refreshed apart, so a killed run's claim can lapse
 * while its last heartbeat is still within JOB_STALL_SECONDS. The redelivery pg-boss then makes
 * carries its retry count, and takes the job over at once instead of waiting for the backstop.
 */
describe("kill -9 while the run still looks alive: the transport's redelivery takes over (Postgres transport, real processes)", () => {
  let t: TestApp;
  const sql = (text: string, values: unknown[] = []) => queryDatabase(t.database.url, text, values);
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { JOB_STALL_SECONDS: String(STALL_SECONDS) } });
  });
  afterAll(async () => {
    await stopAllProcesses();
    await t.stop();
  });

  it("the next worker takes the job over within seconds; the killed run is ABANDONED, nothing is stopped as a duplicate", async () => {
    const workerEnv = {
      DATABASE_URL: t.database.url,
      DATA_DIR: t.dataDir,
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "2",
    };
    const first = await startWorkerProcess("worker-first", workerEnv);
    const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
    const { id } = await uploadUntilEncoding(t.url, t.wsClient(), clip, "taken-over", EVENTS);
    await first.stop("SIGKILL");
    const killedAt = Date.now();
    await startWorkerProcess("worker-second", workerEnv);
    // How late the claim lapses depends on where pg-boss's refresh fell (up to half a heartbeat, 15 s
    // here, before the kill). The test takes the latest such refresh: the claim lapses now, and
    // pg-boss's own monitor fails it and delivers the job again, with its retry count.
    const lapsed = await sql(
      `UPDATE pgboss.job SET heartbeat_on = now() - make_interval(secs => heartbeat_seconds + 1)
        WHERE name LIKE 'render-jobs-%' AND state = 'active'`,
    );
    expect(lapsed.rowCount).toBe(1);

    // Without the takeover the newcomer is stopped as a duplicate and the job waits for the backstop
    // (3 × 30 s after the last heartbeat).
    await expect
      .poll(async () => (await t.gql(STATUS, { id })).data.video!.status, { timeout: 75_000, interval: 250 })
      .toBe("READY");
    const readyAfterSeconds = (Date.now() - killedAt) / 1000;

    const runs = (
      await sql(
        `SELECT r."workerId", r.status, r."deliveryMessageId", r."deliveryCount", r."startedAt", r."finishedAt"
          FROM "JobRun" r JOIN "Job" j ON j.id = r."jobId" WHERE j."videoId" = $1 ORDER BY r."startedAt"`,
        [id],
      )
    ).rows;
    expect(runs.map((r) => [r.workerId, r.status, r.deliveryCount])).toEqual([
      ["worker-first", "ABANDONED", 1],
      ["worker-second", "SUCCEEDED", 2],
    ]);
    const [dead, taker] = runs;
    // The same pg-boss message, delivered again.
    expect(taker.deliveryMessageId).toBe(dead.deliveryMessageId);
    // The newcomer started while the killed run's last heartbeat was still fresh: the case the
    // heartbeat alone took for a duplicate.
    const aliveFor = (taker.startedAt.getTime() - dead.finishedAt.getTime()) / 1000;
    expect(aliveFor).toBeGreaterThanOrEqual(0);
    expect(aliveFor).toBeLessThan(STALL_SECONDS);
    expect(readyAfterSeconds).toBeLessThan(3 * STALL_SECONDS);
  }, 150_000);
});
