import { randomUUID } from "node:crypto";
import {
  Duration,
  PubSub,
  SubscriptionCloseBehaviors,
  type Message,
  type Subscription,
  type Topic,
} from "@google-cloud/pubsub";
import type { Capability, WorkerEvent } from "../../src/protocol/worker-messages.ts";
import { DEFAULT_TOPIC_PREFIX, pubSubResourceNames } from "../../src/protocol/queues.ts";
import { log } from "../log.ts";
import type { JobHandler, WorkerTransport } from "./types.ts";

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
/** Leases are renewed this long at most; a render running longer loses its job to another worker. */
const MAX_LEASE_EXTENSION = Duration.from({ hours: 6 });
const SUBSCRIPTION_POLL_MS = 1000;
const SUBSCRIPTION_WAIT_LOG_MS = 5000;
const REOPEN_DELAY_MS = 5000;
const STOP_GRACE_MS = 5000;

interface JobConsumer {
  capability: Capability;
  /** Closes the stream and hands back jobs received but not started; running jobs go on. */
  stopTaking(): void;
  /** Resolves once every running job is acked or nacked. */
  stopped(): Promise<void>;
}

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

  function consumeSubscription(
    name: string,
    capability: Capability,
    concurrency: number,
    handler: JobHandler,
  ): JobConsumer {
    const subscription = pubsub.subscription(name, {
      // Jobs beyond `concurrency` wait in `queued` below, not inside the client: the client's
      // own held-back messages are out of reach, and a WaitForProcessing close keeps leasing
      // them for hours instead of handing them back.
      flowControl: { maxMessages: concurrency, allowExcessMessages: true },
      // The server's flow control counts per stream; with one stream it holds back everything
      // beyond `concurrency` (the emulator ignores it, real Pub/Sub applies it).
      streamingOptions: { maxStreams: 1 },
      minAckDeadline: lease,
      maxAckDeadline: lease,
      maxExtensionTime: MAX_LEASE_EXTENSION,
      // close() stops the stream but keeps renewing leases and sending acks until every
      // received message is acked or nacked; the default nacks running jobs at once.
      closeOptions: { behavior: SubscriptionCloseBehaviors.WaitForProcessing },
    });
    const queued: { message: Message; job: unknown }[] = [];
    const running = new Map<Message, AbortController>();
    let taking = true;
    let closed: Promise<void> = Promise.resolve();

    function startQueued(): void {
      while (taking && running.size < concurrency && queued.length) {
        const next = queued.shift()!;
        void runJob(next.message, next.job);
      }
    }

    async function runJob(message: Message, job: unknown): Promise<void> {
      const controller = new AbortController();
      running.set(message, controller);
      // The client has no lease-lost event (ackFailed is for exactly-once delivery only). It
      // stops renewing MAX_LEASE_EXTENSION after receipt, silently; the job then belongs to
      // whoever gets the redelivery, so the signal aborts then (and on a close, below).
      const leaseExpiry = setTimeout(
        () => controller.abort(new Error("Pub/Sub lease expired")),
        message.received + MAX_LEASE_EXTENSION.totalOf("millisecond") - Date.now(),
      );
      // Pub/Sub counts deliveries only on a subscription with a dead-letter policy (0 otherwise).
      const delivery =
        message.deliveryAttempt > 0 ? { messageId: message.id, count: message.deliveryAttempt } : undefined;
      try {
        await handler(job, controller.signal, capability, delivery);
        message.ack();
      } catch (err) {
        log.warn("job handed back to Pub/Sub for redelivery", { subscription: name, messageId: message.id, err });
        message.nack();
      } finally {
        clearTimeout(leaseExpiry);
        running.delete(message);
        startQueued();
      }
    }

    subscription.on("message", (message: Message) => {
      if (!taking) {
        message.nack();
        return;
      }
      let job: unknown;
      try {
        job = JSON.parse(message.data.toString("utf8"));
      } catch {
        // It can never become valid: redelivering it would only fail again.
        const data = message.data.subarray(0, 200).toString("utf8");
        log.error("job message is not JSON; dropped", { subscription: name, messageId: message.id, data });
        message.ack();
        return;
      }
      queued.push({ message, job });
      startQueued();
    });
    subscription.on("error", (err) => log.error("Pub/Sub jobs subscription error", { subscription: name, err }));
    subscription.on("close", () => {
      // Only a close that timed out leaves jobs running, and their leases are gone.
      const leaseGone = new Error("Pub/Sub subscription closed; the job's lease is gone");
      for (const controller of running.values()) controller.abort(leaseGone);
      if (!taking) return;
      log.error("Pub/Sub jobs subscription closed unexpectedly; reopening", { subscription: name });
      setTimeout(() => taking && subscription.open(), REOPEN_DELAY_MS).unref();
    });

    return {
      capability,
      stopTaking() {
        if (!taking) return;
        taking = false;
        closed = subscription.close();
        for (const { message } of queued.splice(0)) message.nack();
      },
      async stopped() {
        const grace = setTimeout(() => {
          for (const controller of running.values()) controller.abort(new Error("Pub/Sub worker transport stopped"));
        }, STOP_GRACE_MS);
        try {
          await closed;
        } finally {
          clearTimeout(grace);
        }
      },
    };
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
        consumers.push(consumeSubscription(name, capability, concurrency, handler));
      }
    },

    async checkReachable() {
      const [exists] = await pubsub.topic(names.eventsTopic).exists();
      if (!exists) throw new Error(`topic ${names.eventsTopic} does not exist`);
    },

    async publishEvent(event: WorkerEvent) {
      eventsTopic ??= pubsub.topic(names.eventsTopic);
      const attributes = { v: String(event.v), type: event.type };
      await eventsTopic.publishMessage({ data: Buffer.from(JSON.stringify(event)), attributes });
    },

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
