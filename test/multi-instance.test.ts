import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, gqlAt, wsClientAt } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { graphql } from "./support/graphql.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { createUpload, uploadUntilEncoding } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) {
  videoEvents(videoId: $id) {
    __typename video { status playable }
    ... on VariantProgressEvent { variant { name progress } }
  } }`);
const RUNS = graphql(`query($id: ID!) {
  video(id: $id) {
    status
    variants { name status segmentCount }
    jobs(first: 5) { edges { node { status attempt runs { workerId status startedAt heartbeatAt finishedAt } } } }
  } }`);

/**
 * Many API instances and many workers on one database, each its own process, as deployed:
 * events ingested by one API instance reach subscribers of another through LISTEN/NOTIFY, two
 * workers share the queue, and a worker killed mid-encode loses its job to the other.
 */
describe("two API processes and two workers on one database (Postgres transport)", () => {
  let db: TestDatabase;
  let dataDir: string;
  let apiA: ServiceProcess & { url: string };
  let apiB: ServiceProcess & { url: string };
  const workers = new Map<string, ServiceProcess>();
  const clients: Client[] = [];
  const wsClient = (url: string) => {
    const c = wsClientAt(url);
    clients.push(c);
    return c;
  };
  const upload = async (api: { url: string }, clip: string) => {
    const { uploadUrl, id } = await createUpload(api.url, path.basename(clip));
    const res = await fetch(`${api.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(res.status).toBe(200);
    return id;
  };

  let common: Record<string, string>;
  // A grace of 1 s for the SIGTERM test: the other tests send none.
  let workerEnv: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-multi-"));
    common = {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      SIGNING_SECRET: "a-shared-secret-for-both-instances-000",
      HLS_SEGMENT_SECONDS: "2",
      JOB_STALL_SECONDS: "10",
      PROGRESS_WRITE_INTERVAL_MS: "500",
    };
    workerEnv = {
      ...common,
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "2",
      SHUTDOWN_GRACE_SECONDS: "1",
    };
    // A only serves; B applies worker events. A's subscribers hear of them through Postgres.
    apiA = await startApiProcess("api-a", { ...common, INGEST_EVENTS: "false" });
    apiB = await startApiProcess("api-b", { ...common, INGEST_EVENTS: "true" });
    for (const id of ["worker-1", "worker-2"]) workers.set(id, await startWorkerProcess(id, workerEnv));
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await stopAllProcesses();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("a subscriber on instance A sees every variant's progress ingested by instance B", async () => {
    // 320x180 (two rungs): what is checked is every rung's progress, whatever the ladder's size.
    const clip = await makeClip({ width: 320, height: 180, seconds: 8, audio: true });
    const { uploadUrl, id } = await createUpload(apiB.url, "fan-out");
    const sub = collectSubscription(wsClient(apiA.url), EVENTS, { id });
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(`${apiB.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    const events = (await sub.done).map((e) => e.videoEvents);
    expect(events.at(-1)!.video.status).toBe("READY");
    const progressed = new Set(
      events.filter((e) => e.__typename === "VariantProgressEvent").map((e) => e.variant.name),
    );
    const { variants } = (await gqlAt(apiA.url, RUNS, { id })).video!;
    expect([...progressed].sort()).toEqual(variants.map((v: { name: string }) => v.name).sort());
    // Only B ingests: A's log never shows it applying an event, yet A's subscriber heard them all.
    expect(apiA.log()).not.toContain("job attempt failed");
  });

  it("two workers share the queue and no job runs on both", async () => {
    // One clip, four uploads: each is a video and a job of its own.
    const clip = await makeClip({ width: 320, height: 180, seconds: 4, audio: false });
    const ids = await Promise.all([0, 1, 2, 3].map((i) => upload(i % 2 ? apiA : apiB, clip)));
    const finals = await Promise.all(ids.map((id) => collectSubscription(wsClient(apiA.url), EVENTS, { id }).done));
    for (const events of finals) expect(events.at(-1)!.videoEvents.video.status).toBe("READY");
    const usedWorkers = new Set<string>();
    for (const id of ids) {
      const { jobs } = (await gqlAt(apiA.url, RUNS, { id })).video!;
      expect(jobs.edges).toHaveLength(1);
      const runs = jobs.edges[0]!.node.runs;
      expect(runs).toHaveLength(1);
      expect(runs[0]!.status).toBe("SUCCEEDED");
      usedWorkers.add(runs[0]!.workerId);
    }
    expect([...usedWorkers].sort()).toEqual(["worker-1", "worker-2"]);
  });

  it("kill -9 a worker mid-encode: the other worker takes the job over and the video reaches READY once", async () => {
    const clip = await makeClip({ width: 960, height: 540, seconds: 12, audio: true });
    const { id, final } = await uploadUntilEncoding(apiA.url, wsClient(apiA.url), clip, "killed", EVENTS);

    const running = (await gqlAt(apiA.url, RUNS, { id })).video!.jobs.edges[0]!.node.runs;
    expect(running).toHaveLength(1);
    const victim = running[0]!.workerId;
    const survivor = [...workers.keys()].find((w) => w !== victim)!;
    await workers.get(victim)!.stop("SIGKILL");

    const events = await final.done;
    expect(events.at(-1)!.videoEvents.video).toEqual({ status: "READY", playable: true });
    const result = (await gqlAt(apiA.url, RUNS, { id })).video!;
    const job = result.jobs.edges[0]!.node;
    expect(job.status).toBe("SUCCEEDED");
    expect(job.runs.map((r) => [r.workerId, r.status])).toEqual([
      [victim, "ABANDONED"],
      [survivor, "SUCCEEDED"],
    ]);
    // Never on both at once: the dead run's last sign of life precedes the new run.
    expect(new Date(job.runs[0]!.finishedAt!).getTime()).toBeLessThanOrEqual(
      new Date(job.runs[1]!.startedAt).getTime(),
    );
    for (const v of result.variants) {
      expect(v.status).toBe("READY");
      expect(v.segmentCount).toBeGreaterThanOrEqual(6);
    }
  });

  it(`SIGTERM: an idle worker exits 0 at once; a busy one hands its job back within the grace period, and the \
job completes`, async () => {
    // The kill test's survivor (both workers where it did not run) and one more: the job goes to one
    // of them, and another takes it over.
    workers.set("worker-3", await startWorkerProcess("worker-3", workerEnv));
    for (const [id, w] of workers) if (w.child.exitCode !== null || w.child.signalCode !== null) workers.delete(id);
    const clip = await makeClip({ width: 960, height: 540, seconds: 12, audio: true });
    const { id, final } = await uploadUntilEncoding(apiA.url, wsClient(apiA.url), clip, "sigterm", EVENTS);
    const running = (await gqlAt(apiA.url, RUNS, { id })).video!.jobs.edges[0]!.node.runs;
    expect(running).toHaveLength(1);
    const busyId = running[0]!.workerId;
    const busy = workers.get(busyId)!;
    workers.delete(busyId);

    const stopping = Date.now();
    expect(await busy.stop("SIGTERM")).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(6000);
    expect(busy.log()).toContain("handing jobs back");

    const events = await final.done;
    expect(events.at(-1)!.videoEvents.video.status).toBe("READY");
    const runs = (await gqlAt(apiA.url, RUNS, { id })).video!.jobs.edges[0]!.node.runs;
    expect(runs.map((r) => r.status)).toEqual(["ABANDONED", "SUCCEEDED"]);
    expect(runs[0]!.workerId).toBe(busyId);
    expect([...workers.keys()]).toContain(runs[1]!.workerId);

    // Every worker left is idle now, the one that completed the job too.
    for (const [workerId, w] of workers) {
      const started = Date.now();
      expect(await w.stop("SIGTERM"), workerId).toBe(0);
      expect(Date.now() - started, workerId).toBeLessThan(5000);
      workers.delete(workerId);
    }
  });
});
