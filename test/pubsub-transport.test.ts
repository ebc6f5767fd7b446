import { randomUUID } from "node:crypto";
import { PubSub, type Message } from "@google-cloud/pubsub";
import { afterEach, describe, expect, test } from "vitest";
import { createPubSubWorkerTransport, type PubSubWorkerTransportOptions } from "../render-worker/transport/pubsub.ts";
import type { JobHandler, WorkerTransport } from "../render-worker/transport/types.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import type { Capability, WorkerEvent } from "../src/protocol/worker-messages.ts";
import type { JobDelivery } from "../src/protocol/job-events.ts";
import type { JobMessage } from "../src/protocol/job-message.ts";
import { pubSubResourceNames } from "../src/protocol/queues.ts";
import { createPubSubApiTransport, type PubSubApiTransport } from "../src/transport/pubsub.ts";
import { pubSubEmulatorUnavailableReason, startPubSubEmulator } from "./support/pubsub-emulator.ts";
import { transcodeJobMessage } from "./support/job-events.ts";

const emulator = await startPubSubEmulator();
if (emulator) process.env.PUBSUB_EMULATOR_HOST = emulator.host;
else console.warn(`[test] Pub/Sub transport tests SKIPPED: ${pubSubEmulatorUnavailableReason}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A project of its own per test, so no test sees another's topics or messages. */
const newProjectId = () => `videograph-test-${randomUUID().slice(0, 8)}`;

const jobIdOf = (message: unknown) => (message as JobMessage).jobId;

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const transport of running.splice(0).reverse()) await transport.stop();
});

async function startApi(projectId: string): Promise<PubSubApiTransport> {
  const api = createPubSubApiTransport({ projectId });
  running.push(api);
  await api.start();
  return api;
}

async function startWorker(
  projectId: string,
  capabilities: Capability[],
  concurrency: number,
  handler: JobHandler,
  options: Partial<PubSubWorkerTransportOptions> = {},
): Promise<WorkerTransport> {
  const worker = createPubSubWorkerTransport({ projectId, ...options });
  running.push(worker);
  await worker.start();
  await worker.consumeJobs(capabilities, concurrency, handler);
  return worker;
}

/** A handler that records what it got and finishes when the test says so (or is aborted). */
function blockingHandler() {
  const started: string[] = [];
  const finished: string[] = [];
  const releases = new Map<string, () => void>();
  return {
    started,
    finished,
    release: (jobId: string) => releases.get(jobId)?.(),
    handler: async (message: unknown, signal: AbortSignal) => {
      const jobId = jobIdOf(message);
      started.push(jobId);
      await new Promise<void>((resolve, reject) => {
        releases.set(jobId, resolve);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
      finished.push(jobId);
    },
  };
}

describe.skipIf(!emulator)("Pub/Sub transport (emulator)", () => {
  test("setup creates every topic and subscription once, also when run twice or concurrently", async () => {
    const names = pubSubResourceNames("videograph");
    const expectedSubscriptions = [
      names.jobsSubscription("cpu"),
      names.jobsSubscription("nvenc"),
      names.jobsSubscription("manim"),
      names.jobsSubscription("local"),
      names.jobsSubscription("live"),
      names.jobsSubscription("asr"),
      names.eventsSubscription,
      names.deadLetterSubscription,
    ].sort();
    const expected = [
      names.jobsTopic("cpu"),
      names.jobsTopic("nvenc"),
      names.jobsTopic("manim"),
      names.jobsTopic("local"),
      names.jobsTopic("live"),
      names.jobsTopic("asr"),
      names.eventsTopic,
      names.deadLetterTopic,
      names.controlTopic,
      ...expectedSubscriptions,
    ].sort();

    const projectId = newProjectId();
    const api = createPubSubApiTransport({ projectId });
    const workerSide = createPubSubWorkerTransport({ projectId });
    running.push(api, workerSide);
    // Readiness: neither side is reachable while the events topic does not exist.
    await expect(api.checkReachable()).rejects.toThrow(/does not exist/);
    await expect(workerSide.checkReachable()).rejects.toThrow(/does not exist/);
    const first = await api.setup();
    await api.checkReachable();
    await workerSide.checkReachable();
    expect(first.map((r) => r.name).sort()).toEqual(expected);
    expect(first.every((r) => r.created)).toBe(true);
    const second = await api.setup();
    expect(second.every((r) => !r.created)).toBe(true);

    // Two API instances starting at once: both must succeed. (The emulator lets both creates of
    // a name succeed, so which one reports `created` is not checked.)
    const racedProjectId = newProjectId();
    const racers = [
      createPubSubApiTransport({ projectId: racedProjectId }),
      createPubSubApiTransport({ projectId: racedProjectId }),
    ];
    running.push(...racers);
    const raced = await Promise.all(racers.map((t) => t.setup()));
    for (const result of raced) expect(result.map((r) => r.name).sort()).toEqual(expected);
    const racedClient = new PubSub({ projectId: racedProjectId });
    try {
      const [subscriptions] = await racedClient.getSubscriptions();
      expect(subscriptions.map((s) => s.name.split("/").pop()).sort()).toEqual(expectedSubscriptions);
    } finally {
      await racedClient.close();
    }

    const client = new PubSub({ projectId });
    try {
      const [jobs] = await client.subscription(names.jobsSubscription("cpu")).getMetadata();
      expect(jobs.topic).toBe(`projects/${projectId}/topics/${names.jobsTopic("cpu")}`);
      expect(jobs.ackDeadlineSeconds).toBe(60);
      expect(jobs.deadLetterPolicy).toMatchObject({
        deadLetterTopic: `projects/${projectId}/topics/${names.deadLetterTopic}`,
        maxDeliveryAttempts: 10,
      });
      expect(Number(jobs.retryPolicy?.minimumBackoff?.seconds)).toBe(10);
      expect(Number(jobs.retryPolicy?.maximumBackoff?.seconds)).toBe(600);
      const [events] = await client.subscription(names.eventsSubscription).getMetadata();
      expect(events.topic).toBe(`projects/${projectId}/topics/${names.eventsTopic}`);
    } finally {
      await client.close();
    }
  });

  test("a job reaches the workers of its capability only", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const cpuJobs: unknown[] = [];
    const nvencJobs: unknown[] = [];
    await startWorker(projectId, ["cpu"], 1, async (m) => void cpuJobs.push(m));
    await startWorker(projectId, ["nvenc"], 1, async (m) => void nvencJobs.push(m));

    const cpuJob = transcodeJobMessage();
    await api.publishJob("cpu", cpuJob);
    await waitFor("the cpu job", () => cpuJobs.length === 1);
    expect(cpuJobs[0]).toEqual(cpuJob);

    const nvencJob = transcodeJobMessage();
    await api.publishJob("nvenc", nvencJob);
    await waitFor("the nvenc job", () => nvencJobs.length === 1);
    expect(nvencJobs[0]).toEqual(nvencJob);

    await sleep(1500);
    expect(cpuJobs).toEqual([cpuJob]);
    expect(nvencJobs).toEqual([nvencJob]);
  });

  test("a worker started before the API waits for its subscription instead of creating it", async () => {
    const projectId = newProjectId();
    const got: unknown[] = [];
    const worker = createPubSubWorkerTransport({ projectId });
    running.push(worker);
    let consuming = false;
    const consumeJobs = worker.consumeJobs(["cpu"], 1, async (m) => void got.push(m)).then(() => (consuming = true));
    await sleep(1500);
    expect(consuming).toBe(false);
    const client = new PubSub({ projectId });
    try {
      const [topics] = await client.getTopics();
      expect(topics).toEqual([]);
    } finally {
      await client.close();
    }

    const api = await startApi(projectId);
    await consumeJobs;
    const job = transcodeJobMessage();
    await api.publishJob("cpu", job);
    await waitFor("the job", () => got.length === 1);
    expect(got[0]).toEqual(job);
  });

  test(`worker events reach consumeEvents parsed and batched; a failed batch comes again; \
non-JSON is dropped`, async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const batches: unknown[][] = [];
    let failNextBatch = true;
    await api.consumeEvents(async (events) => {
      batches.push(events);
      if (failNextBatch) {
        failNextBatch = false;
        throw new Error("database down");
      }
    });
    const client = new PubSub({ projectId });
    try {
      await client
        .topic(pubSubResourceNames("videograph").eventsTopic)
        .publishMessage({ data: Buffer.from("not json {") });
    } finally {
      await client.close();
    }

    const worker = createPubSubWorkerTransport({ projectId });
    running.push(worker);
    const jobId = randomUUID();
    const at = new Date().toISOString();
    const sent: WorkerEvent[] = [
      {
        v: PROTOCOL_VERSION,
        type: "worker.heartbeat",
        workerId: "w1",
        capabilities: ["cpu"],
        activeJobs: [{ jobId, attempt: 1 }],
        at,
      },
      { v: PROTOCOL_VERSION, type: "job.started", jobId, attempt: 1, seq: 1, workerId: "w1", at },
      {
        v: PROTOCOL_VERSION,
        type: "job.progress",
        jobId,
        attempt: 1,
        seq: 2,
        workerId: "w1",
        at,
        progress: 0.5,
        fps: 30,
        speed: 1.5,
        etaSeconds: null,
        variants: [{ name: "720p", progress: 0.5, segmentCount: 3 }],
      },
      {
        v: PROTOCOL_VERSION,
        type: "job.succeeded",
        jobId,
        attempt: 1,
        seq: 3,
        workerId: "w1",
        at,
        masterKey: "videos/x/hls/master.m3u8",
        posterKey: null,
      },
    ];
    await Promise.all(sent.map((e) => worker.publishEvent(e)));

    const delivered = () => batches.slice(1).flat();
    await waitFor("every event after the failed batch", () =>
      sent.every((e) => delivered().some((d) => JSON.stringify(d) === JSON.stringify(e))),
    );
    const failed = batches[0]!;
    expect(failed.length).toBeGreaterThan(0);
    // The events of the failed batch came again.
    for (const event of failed) expect(delivered()).toContainEqual(event);
    expect(new Set(delivered().map((d) => JSON.stringify(d)))).toEqual(new Set(sent.map((e) => JSON.stringify(e))));
    expect(batches.some((b) => b.length > 1)).toBe(true);
  });

  test("a job whose handler throws is redelivered; an acked job is not", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const deliveries: string[] = [];
    const worker = await startWorker(projectId, ["cpu"], 1, async (m) => {
      deliveries.push(jobIdOf(m));
      if (deliveries.length === 1) throw new Error("handed back");
    });
    const job = transcodeJobMessage();
    await api.publishJob("cpu", job);
    await waitFor("the redelivery", () => deliveries.length === 2);
    expect(deliveries).toEqual([job.jobId, job.jobId]);
    await sleep(2000);
    expect(deliveries).toHaveLength(2);

    // Once the first worker is gone, an unacked job would go to the next one.
    await worker.stop();
    const later: unknown[] = [];
    await startWorker(projectId, ["cpu"], 1, async (m) => void later.push(m));
    await sleep(2500);
    expect(later).toEqual([]);
  });

  test(`each delivery carries the message's id and the delivery attempt the subscription counts (its dead-letter \
policy makes it count)`, async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const deliveries: (JobDelivery | undefined)[] = [];
    await startWorker(projectId, ["cpu"], 1, async (_message, _signal, _capability, delivery) => {
      deliveries.push(delivery);
      if (deliveries.length === 1) throw new Error("handed back");
    });
    await api.publishJob("cpu", transcodeJobMessage());
    await waitFor("the redelivery", () => deliveries.length === 2);
    const messageId = deliveries[0]?.messageId;
    expect(messageId).toEqual(expect.any(String));
    expect(deliveries).toEqual([
      { messageId, count: 1 },
      { messageId, count: 2 },
    ]);
  });

  test("flow control: never more handlers at once than the concurrency", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    let active = 0;
    let maxActive = 0;
    const done = new Set<string>();
    await startWorker(projectId, ["cpu"], 2, async (m) => {
      active++;
      maxActive = Math.max(maxActive, active);
      await sleep(300);
      active--;
      done.add(jobIdOf(m));
    });
    const jobs = Array.from({ length: 5 }, transcodeJobMessage);
    await Promise.all(jobs.map((j) => api.publishJob("cpu", j)));
    await waitFor("all five jobs", () => done.size === 5);
    expect(maxActive).toBe(2);
  });

  test("two workers on one subscription share the jobs: each runs once, never on both at once", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const runningNow = new Set<string>();
    const overlaps: string[] = [];
    const handled: { worker: string; jobId: string }[] = [];
    const handlerFor = (worker: string) => async (m: unknown) => {
      const jobId = jobIdOf(m);
      if (runningNow.has(jobId)) overlaps.push(jobId);
      runningNow.add(jobId);
      await sleep(200);
      runningNow.delete(jobId);
      handled.push({ worker, jobId });
    };
    await startWorker(projectId, ["cpu"], 1, handlerFor("a"));
    await startWorker(projectId, ["cpu"], 1, handlerFor("b"));
    const jobs = Array.from({ length: 6 }, transcodeJobMessage);
    for (const job of jobs) await api.publishJob("cpu", job);
    await waitFor("all six jobs", () => new Set(handled.map((h) => h.jobId)).size === 6);
    await sleep(1000);
    expect(overlaps).toEqual([]);
    // Competing consumers: a job goes to one of them, not to each. (How the emulator splits
    // them between the two is up to it: it ignores the flow control that spreads them in
    // production.)
    expect(handled.map((h) => h.jobId).sort()).toEqual(jobs.map((j) => j.jobId).sort());
  });

  test("stopConsuming takes no new jobs, lets the running one finish and ack, and hands back the rest", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const jobs = [transcodeJobMessage(), transcodeJobMessage(), transcodeJobMessage()];
    for (const job of jobs) await api.publishJob("cpu", job);
    // Subscribing after publishing: all three arrive together, one runs, two wait in the worker.
    const first = blockingHandler();
    const worker = await startWorker(projectId, ["cpu"], 1, first.handler);
    await waitFor("a job to start", () => first.started.length === 1);
    await sleep(500);
    const inFlight = first.started[0]!;

    await worker.stopConsuming();
    const publishedAfterStop = transcodeJobMessage();
    await api.publishJob("cpu", publishedAfterStop);
    first.release(inFlight);
    await waitFor("the running job to finish", () => first.finished.length === 1);
    await sleep(1000);
    expect(first.started).toEqual([inFlight]);
    await worker.stop();

    const second: string[] = [];
    await startWorker(projectId, ["cpu"], 3, async (m) => void second.push(jobIdOf(m)));
    const rest = [...jobs.map((j) => j.jobId).filter((id) => id !== inFlight), publishedAfterStop.jobId].sort();
    await waitFor("the other jobs on the next worker", () => second.length >= 3, 5000);
    await sleep(1500);
    expect(second.sort()).toEqual(rest);
  });

  test("publishJob sets the message's attributes", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const names = pubSubResourceNames("videograph");
    const client = new PubSub({ projectId });
    const [probe] = await client.topic(names.jobsTopic("manim")).createSubscription("attribute-probe");
    const seen: Message[] = [];
    probe.on("message", (m: Message) => {
      seen.push(m);
      m.ack();
    });
    try {
      const job = transcodeJobMessage();
      await api.publishJob("manim", job);
      await waitFor("the message on the probe", () => seen.length === 1);
      expect(seen[0]!.attributes).toEqual({
        v: String(PROTOCOL_VERSION),
        type: "transcode",
        jobId: job.jobId,
        attempt: "1",
      });
      expect(JSON.parse(seen[0]!.data.toString("utf8"))).toEqual(job);
    } finally {
      await probe.close();
      await client.close();
    }
  });

  test("the lease is renewed while a handler runs longer than the ack deadline", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const slow = blockingHandler();
    const other: string[] = [];
    await startWorker(projectId, ["cpu"], 1, slow.handler, { leaseSeconds: 10 });
    const job = transcodeJobMessage();
    await api.publishJob("cpu", job);
    await waitFor("the job to start", () => slow.started.length === 1);
    await startWorker(projectId, ["cpu"], 1, async (m) => void other.push(jobIdOf(m)), { leaseSeconds: 10 });
    // Unrenewed, the lease would lapse after 10 s and the job be delivered again.
    await sleep(12_000);
    slow.release(job.jobId);
    await waitFor("the job to finish", () => slow.finished.length === 1);
    expect(slow.started).toEqual([job.jobId]);
    expect(other).toEqual([]);
  });

  test(`a deleted jobs topic and its subscription are made again: the next job reaches the worker, and the \
dispatcher is told to publish the lost ones again`, async () => {
    const projectId = newProjectId();
    const recreated: Capability[] = [];
    const api = createPubSubApiTransport({ projectId, onJobQueueRecreated: (c) => void recreated.push(c) });
    running.push(api);
    await api.start();
    const got: unknown[] = [];
    await startWorker(projectId, ["cpu"], 1, async (m) => void got.push(m));
    const names = pubSubResourceNames("videograph");
    const client = new PubSub({ projectId });
    try {
      await client.subscription(names.jobsSubscription("cpu")).delete();
      await client.topic(names.jobsTopic("cpu")).delete();
      const job = transcodeJobMessage();
      await api.publishJob("cpu", job);
      await waitFor("the job", () => got.length === 1, 30_000);
      expect(got[0]).toEqual(job);
      const [metadata] = await client.subscription(names.jobsSubscription("cpu")).getMetadata();
      expect(metadata.topic).toBe(client.topic(names.jobsTopic("cpu")).name);
      expect(recreated).toEqual(["cpu"]);
    } finally {
      await client.close();
    }
  });

  test("a deleted events subscription is made again and events flow to the API again", async () => {
    const projectId = newProjectId();
    const api = await startApi(projectId);
    const received: unknown[] = [];
    await api.consumeEvents(async (events) => void received.push(...events));
    const worker = await startWorker(projectId, ["cpu"], 1, async () => {});
    const names = pubSubResourceNames("videograph");
    const client = new PubSub({ projectId });
    const heartbeat = (n: number): WorkerEvent => ({
      v: PROTOCOL_VERSION,
      type: "worker.heartbeat",
      workerId: `w${n}`,
      capabilities: ["cpu"],
      activeJobs: [],
      at: new Date().toISOString(),
    });
    try {
      await worker.publishEvent(heartbeat(1));
      await waitFor("the first event", () => received.length === 1);
      await client.subscription(names.eventsSubscription).delete();
      await sleep(1000);
      // Published until the new subscription exists: an event published while there is none is lost.
      for (let n = 2; !received.some((e) => (e as WorkerEvent & { workerId: string }).workerId !== "w1"); n++) {
        if (n > 60) throw new Error("no event reached the API within 60 s of deleting its subscription");
        await worker.publishEvent(heartbeat(n));
        await sleep(1000);
      }
      const [exists] = await client.subscription(names.eventsSubscription).exists();
      expect(exists).toBe(true);
    } finally {
      await client.close();
    }
  });
});
