import { randomUUID } from "node:crypto";
import { Duration, type Message, PubSub, type Subscription, type Topic } from "@google-cloud/pubsub";
import type { Capability, WorkerEvent } from "../../src/protocol/worker-messages.ts";
import { DEFAULT_TOPIC_PREFIX, pubSubResourceNames } from "../../src/protocol/queues.ts";
import { log } from "../log.ts";
import { consumeJobSubscription, type JobConsumer } from "./pubsub-jobs.ts";
import type { WorkerTransport } from "./types.ts";

export interface PubSubWorkerTransportOptions {
  projectId: string;
  /** Names this worker's own subscription to the control topic. Default: a random id. */
  workerId?: string;
  /** Must match the API's prefix. Default `DEFAULT_TOPIC_PREFIX`. */
  topicPrefix?: string;
  /**
   * Ack deadline (10..600 s) the client renews while a job runs; a job whose worker died is
   * redelivered about this long after. Default 60.
   */
  leaseSeconds?: number;
}

const ALREADY_EXISTS = 6;
const PERMISSION_DENIED = 7;
const SUBSCRIPTION_POLL_MS = 1000;
const SUBSCRIPTION_WAIT_LOG_MS = 5000;
/**
 * How long the client holds a worker event to batch it with others (its default: 10 ms). A run
 * awaits each event it sends (its start, its probe, `video.playable`: each on the way to the first
 * frame), and a worker sends a few a second, so there is little to batch and every event waited:
 * one awaited publish to the emulator took 15–16 ms at the default, 4–5 ms at 1 ms (2026-11-29).
 * What a run sends together (`publishEvents`) is published in one tick, so still in one batch.
 */
const EVENT_BATCH_MS = 1;

/**
 * The production transport: Google Cloud Pub/Sub. Takes jobs from the subscription of each of
 * the worker's capabilities, renewing each job's lease while its handler runs, and publishes
 * events to the events topic (names: `pubSubResourceNames`). The API creates the topics and
 * subscriptions; this side only waits for them. Set `PUBSUB_EMULATOR_HOST` to use the emulator.
 */
export function createPubSubWorkerTransport(options: PubSubWorkerTransportOptions): WorkerTransport {
  const leaseSeconds = options.leaseSeconds ?? 60;
  if (!(leaseSeconds >= 10 && leaseSeconds <= 600)) {
    throw new RangeError(`leaseSeconds must be 10..600, got ${leaseSeconds}`);
  }
  const lease = Duration.from({ seconds: leaseSeconds });
  const names = pubSubResourceNames(options.topicPrefix ?? DEFAULT_TOPIC_PREFIX);
  const pubsub = new PubSub({ projectId: options.projectId });
  const consumers: JobConsumer[] = [];
  let eventsTopic: Topic | null = null;
  let stopping = false;
  let controlSubscription: Subscription | null = null;

  async function waitForSubscription(name: string): Promise<boolean> {
    let loggedAt = 0;
    while (!stopping) {
      try {
        const [exists] = await pubsub.subscription(name).exists();
        if (exists) return !stopping;
      } catch (err) {
        // A worker allowed only to consume may not read subscription metadata: subscribe
        // anyway; a missing subscription then shows as a stream error and a reopen later.
        if ((err as { code?: unknown }).code === PERMISSION_DENIED) return !stopping;
        throw err;
      }
      if (Date.now() - loggedAt >= SUBSCRIPTION_WAIT_LOG_MS) {
        log.info("waiting for the API to create the Pub/Sub subscription", { subscription: name });
        loggedAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, SUBSCRIPTION_POLL_MS));
    }
    return false;
  }

  /** Publishes `events` together: the client sends what is published within its batching window in one request. */
  async function publishEvents(events: WorkerEvent[]): Promise<void> {
    eventsTopic ??= pubsub.topic(names.eventsTopic, { batching: { maxMilliseconds: EVENT_BATCH_MS } });
    const topic = eventsTopic;
    await Promise.all(
      events.map((event) =>
        topic.publishMessage({
          data: Buffer.from(JSON.stringify(event)),
          attributes: { v: String(event.v), type: event.type },
        }),
      ),
    );
  }

  function stopConsuming(capabilities?: Capability[]): void {
    if (!capabilities) stopping = true;
    for (const consumer of consumers)
      if (!capabilities || capabilities.includes(consumer.capability)) consumer.stopTaking();
  }

  return {
    async start() {},

    async consumeJobs(capabilities, concurrency, handler) {
      for (const capability of capabilities) {
        const name = names.jobsSubscription(capability);
        if (!(await waitForSubscription(name))) return;
        consumers.push(consumeJobSubscription(pubsub, lease, name, capability, concurrency, handler));
      }
    },

    async checkReachable() {
      const [exists] = await pubsub.topic(names.eventsTopic).exists();
      if (!exists) throw new Error(`topic ${names.eventsTopic} does not exist`);
    },

    publishEvent: (event: WorkerEvent) => publishEvents([event]),
    publishEvents,

    async onControl(handler) {
      // A broadcast needs a subscription per worker. It removes itself after a day without this
      // worker (a worker killed without stop leaves it behind until then).
      const name = names.controlSubscription(options.workerId ?? randomUUID());
      try {
        await pubsub.createSubscription(names.controlTopic, name, {
          expirationPolicy: { ttl: { seconds: 24 * 3600 } },
          messageRetentionDuration: 600,
          ackDeadlineSeconds: 10,
        });
      } catch (err) {
        if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
      }
      controlSubscription = pubsub.subscription(name);
      controlSubscription.on("message", (message: Message) => {
        message.ack();
        try {
          handler(JSON.parse(message.data.toString("utf8")));
        } catch (err) {
          log.error("control message is not JSON; ignored", { err });
        }
      });
      controlSubscription.on("error", (err) =>
        log.error("control subscription failed; cancels will reach this worker only through refused events", { err }),
      );
    },

    async stopConsuming(capabilities) {
      stopConsuming(capabilities);
    },

    async stop() {
      stopConsuming();
      await Promise.all(consumers.map((consumer) => consumer.stopped()));
      if (controlSubscription) {
        await controlSubscription.close();
        await controlSubscription
          .delete()
          .catch((err: unknown) => log.warn("control subscription not deleted; it expires after a day", { err }));
      }
      await eventsTopic?.flush();
      await pubsub.close();
    },
  };
}
