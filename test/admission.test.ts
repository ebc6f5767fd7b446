import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const JOB_ATTEMPT = graphql(
  `query($id: ID!) { video(id: $id) { jobs(first: 1) { edges { node { status attempt } } } } }`,
);
const JOB_RUNS = graphql(`
  query($id: ID!) { video(id: $id) { jobs(first: 1) { edges { node { status attempt runs { status
    startedAt finishedAt } } } } } }`);

// 400 MiB for jobs, minus the worker's own 150 MiB: a 320x180 source (estimated 240 MiB) fits,
// a 640x360 one (284 MiB) never can.
describe("a worker never starts an encode its memory cannot hold (public API, real worker)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ workerEnv: { WORKER_MEMORY_LIMIT_BYTES: String(400 * 1024 * 1024) } });
  });
  afterAll(() => t.stop());

  it("encodes a source that fits and fails one that never can, with the reason", async () => {
    const small = await uploadAndWait(
      t,
      new Uint8Array(await readFile(await makeClip({ width: 320, height: 180, seconds: 2, audio: false }))),
    );
    expect(small.status).toBe("READY");
    const big = await uploadAndWait(
      t,
      new Uint8Array(await readFile(await makeClip({ width: 640, height: 360, seconds: 2, audio: false }))),
    );
    expect(big.status).toBe("FAILED");
    expect(big.error).toMatch(/needs about 284 MiB to encode; workers have 250 MiB/);
    const jobs = (await t.gql(JOB_ATTEMPT, { id: big.id })).data.video!.jobs.edges;
    expect(jobs[0]!.node).toEqual({ status: "FAILED", attempt: 1 });
  });
});

// 640 MiB, minus the worker's 150 MiB: one 640x360 encode (284 MiB) fits, two (568 MiB) do not.
describe(`a worker running two jobs at once hands back the one its memory cannot hold beside the other (public API, \
real worker process)`, () => {
  let t: TestApp;
  let worker: ServiceProcess;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
    worker = await startWorkerProcess("worker-two-slots", {
      DATABASE_URL: t.database.url,
      DATA_DIR: t.dataDir,
      WORKER_CONCURRENCY: "2",
      WORKER_MEMORY_LIMIT_BYTES: String(640 * 1024 * 1024),
      HEARTBEAT_INTERVAL_SECONDS: "2",
    });
  });
  afterAll(async () => {
    await stopAllProcesses();
    await t.stop();
  });

  it(`two jobs that each fit but not together: the second waits for the first, both READY, the runs \
never overlap`, async () => {
    expect(worker.log()).toMatch(/"concurrency":2.*"message":"worker ready"/);
    const clips = await Promise.all(
      [0, 1].map((i) => makeClip({ width: 640, height: 360, seconds: 6 + i, audio: true })),
    );
    const finals = await Promise.all(
      clips.map(async (clip, i) => uploadAndWait(t, new Uint8Array(await readFile(clip)), `slot ${i}`)),
    );
    expect(finals.map((f) => f.status)).toEqual(["READY", "READY"]);

    // The worker took the second job beside the first (it has two slots) and gave it back.
    expect(worker.log()).toContain("job handed back: not enough memory now");
    const runs = [];
    for (const { id } of finals) {
      const job = (await t.gql(JOB_RUNS, { id })).data.video!.jobs.edges[0]!.node;
      expect(job).toMatchObject({ status: "SUCCEEDED", attempt: 1 });
      expect(job.runs).toHaveLength(1);
      expect(job.runs[0]!.status).toBe("SUCCEEDED");
      runs.push({ start: Date.parse(job.runs[0]!.startedAt), end: Date.parse(job.runs[0]!.finishedAt!) });
    }
    const [first, second] = runs.sort((a, b) => a.start - b.start);
    expect(second!.start).toBeGreaterThanOrEqual(first!.end);
  });
});
