import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createPostgresWorkerTransport } from "../render-worker/transport/postgres.ts";
import { createPubSubWorkerTransport } from "../render-worker/transport/pubsub.ts";
import type { WorkerTransport } from "../render-worker/transport/types.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import type { Capability } from "../src/protocol/worker-messages.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { graphql, type ResultOf } from "./support/graphql.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const STAND_IN_ID = "stand-in-nvenc";
const JOBS = graphql(`
  query($id: ID!) { video(id: $id) { jobs(first: 5) { edges { node {
    kind status capability dispatchedTo routingReason runs { workerId } } } } } }`);

type JobView = NonNullable<ResultOf<typeof JOBS>["video"]>["jobs"]["edges"][number]["node"];

const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] Pub/Sub GPU routing test SKIPPED: ${pubSubEmulatorUnavailableReason}`);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let clip: Buffer;
beforeAll(async () => {
  clip = await readFile(await makeClip({ width: 320, height: 240, seconds: 2, audio: false }));
});

async function app(options: Parameters<typeof startTestApp>[0]): Promise<TestApp> {
  const t = await startTestApp(options);
  cleanups.push(() => t.stop());
  return t;
}

/**
 * A stand-in for an nvenc worker (this machine has no GPU, and a real worker that advertises nvenc
 * probes NVENC first): it heartbeats `nvenc` through the real transport, at `at`, and the API records it.
 */
async function standInNvencWorker(
  t: TestApp,
  { at = new Date(), pubSubProject }: { at?: Date; pubSubProject?: string } = {},
): Promise<WorkerTransport> {
  const transport = pubSubProject
    ? createPubSubWorkerTransport({ projectId: pubSubProject })
    : createPostgresWorkerTransport(t.database.url);
  await transport.start();
  cleanups.push(() => transport.stop());
  await transport.publishEvent({
    v: PROTOCOL_VERSION,
    type: "worker.heartbeat",
    workerId: STAND_IN_ID,
    capabilities: ["nvenc"],
    activeJobs: [],
    at: at.toISOString(),
  });
  const deadline = Date.now() + 15_000;
  while (!(await t.app.services.db.worker.findUnique({ where: { id: STAND_IN_ID } }))) {
    if (Date.now() > deadline) throw new Error("the stand-in's heartbeat never reached the API");
    await new Promise((r) => setTimeout(r, 50));
  }
  return transport;
}

async function transcodeJob(t: TestApp, id: string): Promise<JobView> {
  const res = await t.gql(JOBS, { id });
  if (res.errors) throw new Error(JSON.stringify(res.errors));
  const jobs: JobView[] = res.data.video!.jobs.edges.map((e) => e.node);
  return jobs.find((j) => j.kind === "TRANSCODE")!;
}

/** Uploads the clip and waits until its transcode job was sent to a queue. */
async function uploadUntilDispatched(t: TestApp): Promise<{ id: string; job: JobView }> {
  const { id, uploadUrl } = await createUpload(t, "routing");
  const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(clip) });
  expect(res.status).toBe(200);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const job = await transcodeJob(t, id);
    if (job?.dispatchedTo) return { id, job };
    if (Date.now() > deadline) throw new Error("the transcode was never dispatched");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** With a stand-in nvenc worker alive, an upload's transcode is sent to nvenc, says why, and reaches the stand-in. */
async function expectNvencRouting(t: TestApp, pubSubProject?: string): Promise<void> {
  const standIn = await standInNvencWorker(t, { pubSubProject });
  const delivered = new Map<string, Capability>();
  await standIn.consumeJobs(["nvenc"], 1, async (message, _signal, capability) => {
    delivered.set((message as { videoId: string }).videoId, capability);
  });
  const { id, job } = await uploadUntilDispatched(t);
  expect(job).toMatchObject({ capability: "cpu", dispatchedTo: "nvenc", routingReason: "GPU_WORKER_ALIVE" });
  const deadline = Date.now() + 20_000;
  while (!delivered.has(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(delivered.get(id)).toBe("nvenc");
}

describe("GPU routing of transcodes (public API, Postgres transport unless named)", () => {
  it(`sends a new upload's transcode to the nvenc queue while a stand-in nvenc worker heartbeats, and \
says why`, async () => {
    await expectNvencRouting(await app({ worker: false, env: { GPU_FALLBACK_AFTER_SECONDS: "600" } }));
  });

  it.skipIf(!emulator)("does the same over Pub/Sub (emulator): the stand-in gets it from the nvenc topic", async () => {
    const project = `videograph-gpu-${randomUUID().slice(0, 8)}`;
    const env = { TRANSPORT: "pubsub", GOOGLE_CLOUD_PROJECT: project, GPU_FALLBACK_AFTER_SECONDS: "600" };
    await expectNvencRouting(await app({ worker: false, env }), project);
  });

  it("sends it to cpu at once when no nvenc worker is alive (the stand-in's last heartbeat is old)", async () => {
    const t = await app({ worker: false, env: { GPU_FALLBACK_AFTER_SECONDS: "600" } });
    await standInNvencWorker(t, { at: new Date(Date.now() - 3600_000) });
    const { job } = await uploadUntilDispatched(t);
    expect(job).toMatchObject({ dispatchedTo: "cpu", routingReason: "NO_GPU_WORKER" });
  });

  it("keeps it on cpu with GPU_ROUTING=off, although a stand-in nvenc worker heartbeats", async () => {
    const t = await app({ worker: false, env: { GPU_ROUTING: "off" } });
    await standInNvencWorker(t);
    const { job } = await uploadUntilDispatched(t);
    expect(job).toMatchObject({ dispatchedTo: "cpu", routingReason: "GPU_ROUTING_OFF" });
  });

  it(`moves a transcode no stand-in nvenc worker takes to cpu after GPU_FALLBACK_AFTER_SECONDS, where a real \
worker takes it to READY`, async () => {
    const t = await app({ env: { GPU_FALLBACK_AFTER_SECONDS: "2" }, workerEnv: { WORKER_CAPABILITIES: "cpu" } });
    await standInNvencWorker(t);
    const { id, job } = await uploadUntilDispatched(t);
    expect(job).toMatchObject({ dispatchedTo: "nvenc", routingReason: "GPU_WORKER_ALIVE" });
    expect((await finalState(t, id)).status).toBe("READY");
    const done = await transcodeJob(t, id);
    expect(done).toMatchObject({ status: "SUCCEEDED", dispatchedTo: "cpu", routingReason: "GPU_WAIT_EXPIRED" });
    expect(done.runs.map((r) => r.workerId)).not.toContain(STAND_IN_ID);
    expect(done.runs).toHaveLength(1);
  });
});
