// The control plane benchmark's simulated worker (bench/support/simulated-worker.ts) speaks the
// contract as the API's ingest takes it: one upload through it end to end, its first attempt failing
// on purpose, so the bench cannot drift from the worker it stands for without this failing.
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { epochMs, FRONT_END_VIDEO_EVENTS } from "../bench/support/fanout-load.ts";
import { startSimulatedWorker, type SimulatedWorker } from "../bench/support/simulated-worker.ts";
import { createPostgresWorkerTransport } from "../render-worker/transport/postgres.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { playable height variants { name status }
    jobs(first: 5) { edges { node { kind status attempt } } } } }`);

interface Event {
  videoEvents: { __typename: string; video: { id: string; status: string }; etaSeconds?: number | null };
}

let t: TestApp;
let worker: SimulatedWorker;
beforeAll(async () => {
  t = await startTestApp({ worker: false });
  worker = await startSimulatedWorker({
    transport: createPostgresWorkerTransport(t.database.url),
    workerId: "simulated-test",
    slots: 2,
    // Stands for two workers of one job each, as a fleet of the render worker's default.
    workerSlots: 1,
    source: { seconds: 2, height: 1080, speed: 4 },
    progressIntervalMs: 100,
    heartbeatIntervalSeconds: 2,
    failureRate: 1,
  });
});
afterAll(async () => {
  await worker?.stop();
  await t?.stop();
});

it("takes a real transcode job, fails its first attempt, and its retry makes the video READY with the 1080p ladder", async () => {
  const clip = await readFile(await makeClip({ width: 320, height: 240, seconds: 1, audio: false }));
  const { id, uploadUrl } = await createUpload(t, "simulated");
  const events = collectSubscription<Event>(t.wsClient(), FRONT_END_VIDEO_EVENTS, { id });
  const sentFrom = epochMs();
  expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: clip })).status).toBe(200);
  const received = await events.done;
  expect(received.at(-1)!.videoEvents.video.status).toBe("READY");
  // Its progress reaches subscribers with its send time in the ETA, which the benchmark's latency reads.
  const sentAt = received
    .filter((e) => e.videoEvents.__typename === "VariantProgressEvent")
    .map((e) => e.videoEvents.etaSeconds!);
  expect(sentAt.length).toBeGreaterThan(0);
  for (const at of sentAt) expect(at).toBeGreaterThanOrEqual(sentFrom);
  for (const at of sentAt) expect(at).toBeLessThanOrEqual(epochMs());
  const { data } = await t.gql(VIDEO, { id });
  expect(data.video!.playable).toBe(true);
  expect(data.video!.height).toBe(1080);
  expect(data.video!.variants.map((v) => v.name)).toEqual([
    "1080p",
    "720p",
    "540p",
    "480p",
    "360p",
    "240p",
    "144p",
    "audio",
  ]);
  expect(data.video!.variants.every((v) => v.status === "READY")).toBe(true);
  const transcode = data.video!.jobs.edges.map((e) => e.node).find((j) => j.kind === "TRANSCODE");
  expect(transcode).toMatchObject({ status: "SUCCEEDED", attempt: 2 });
  // Each run was a worker's of its own id, which heartbeats as the API records workers.
  const db = t.app.services.db;
  const runs = await db.jobRun.findMany({ where: { job: { videoId: id } }, orderBy: { attempt: "asc" } });
  expect(runs.map((r) => [r.attempt, r.status])).toEqual([
    [1, "FAILED"],
    [2, "SUCCEEDED"],
  ]);
  const heard = new Set((await db.worker.findMany()).map((w) => w.id));
  for (const r of runs) {
    expect(r.workerId).toMatch(/^simulated-test-\d+$/);
    expect(heard).toContain(r.workerId);
  }
}, 60_000);
