import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { createPostgresWorkerTransport } from "../../render-worker/transport/postgres.ts";
import { createPubSubWorkerTransport } from "../../render-worker/transport/pubsub.ts";
import type { WorkerTransport } from "../../render-worker/transport/types.ts";
import type { Capability } from "../../src/protocol/worker-messages.ts";
import type { JobMessage } from "../../src/protocol/job-message.ts";
import { createPostgresTransport } from "../../src/transport/postgres.ts";
import { createPubSubApiTransport } from "../../src/transport/pubsub.ts";
import type { ApiTransport } from "../../src/transport/types.ts";
import { createTestDatabase } from "../support/db.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "../support/pubsub-emulator.ts";
import { transcodeJobMessage } from "../support/job-events.ts";

const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] Pub/Sub half of the capability-queue tests SKIPPED: ${pubSubEmulatorUnavailableReason}`);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Publishes one job per capability and checks the handler is told which queue each came from. */
async function expectCapabilityPassedThrough(api: ApiTransport, worker: WorkerTransport): Promise<void> {
  const received = new Map<string, Capability>();
  await worker.start();
  await worker.consumeJobs(["cpu", "nvenc"], 2, async (message, _signal, capability) => {
    received.set((message as JobMessage).jobId, capability);
  });
  const cpuJob = transcodeJobMessage();
  const nvencJob = transcodeJobMessage();
  await api.publishJob("nvenc", nvencJob);
  await api.publishJob("cpu", cpuJob);
  const deadline = Date.now() + 20_000;
  while (received.size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(Object.fromEntries(received)).toEqual({ [cpuJob.jobId]: "cpu", [nvencJob.jobId]: "nvenc" });
}

describe("the worker transports tell the handler which capability queue a job came from", () => {
  it("Postgres (pg-boss)", async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const api = createPostgresTransport({ connectionString: db.url, stallSeconds: 30 });
    await api.start();
    cleanups.push(() => api.stop());
    const worker = createPostgresWorkerTransport(db.url);
    cleanups.push(() => worker.stop());
    await expectCapabilityPassedThrough(api, worker);
  });

  it.skipIf(!emulator)("Pub/Sub (emulator)", async () => {
    const projectId = `videograph-test-${randomUUID().slice(0, 8)}`;
    const api = createPubSubApiTransport({ projectId });
    await api.start();
    cleanups.push(() => api.stop());
    const worker = createPubSubWorkerTransport({ projectId });
    cleanups.push(() => worker.stop());
    await expectCapabilityPassedThrough(api, worker);
  });
});
