import {
  PubSub,
  SubscriptionCloseBehaviors,
  type CreateSubscriptionOptions,
  type Message,
  type Topic,
} from "@google-cloud/pubsub";
import { Capability, type ControlMessage, type JobMessage } from "../protocol/messages.ts";
import { DEFAULT_TOPIC_PREFIX, pubSubResourceNames } from "../protocol/queues.ts";
import { log } from "../log.ts";
import type { ApiTransport } from "./types.ts";

export interface PubSubApiTransportOptions {
  projectId: string;
  /** Prefix of every topic and subscription name; workers must use the same. Default `DEFAULT_TOPIC_PREFIX`. */
  topicPrefix?: string;
}

/** A topic or subscription that `setup()` made sure of. */
interface PubSubResource {
  kind: "topic" | "subscription";
  name: string;
  /** False when it already existed. */
  created: boolean;
}

export interface PubSubApiTransport extends ApiTransport {
  /** Creates every topic and subscription that is missing; safe to run concurrently. */
  setup(): Promise<PubSubResource[]>;
}

const ALREADY_EXISTS = 6;
const EVENT_BATCH_SIZE = 100;
const EVENT_BATCH_WINDOW_MS = 50;
const REOPEN_DELAY_MS = 5000;
const DEAD_LETTER_RETENTION_SECONDS = 7 * 24 * 3600;

/**
 * The production transport: Google Cloud Pub/Sub. Jobs go to one topic per capability, each
 * with a subscription shared by that capability's workers (dead letters after 10 deliveries,
 * retried with 10 s..600 s backoff). Worker events come back on one topic whose subscription
 * all API instances share, so each event is applied once. Set `PUBSUB_EMULATOR_HOST` to use the
 * emulator.
 */
export function createPubSubApiTransport(options: PubSubApiTransportOptions): PubSubApiTransport {
  const pubsub = new PubSub({ projectId: options.projectId });
  const names = pubSubResourceNames(options.topicPrefix ?? DEFAULT_TOPIC_PREFIX);
  const topics = new Map<string, Topic>();
  const topic = (name: string): Topic => {
    const known = topics.get(name);
    if (known) return known;
    const created = pubsub.topic(name);
    topics.set(name, created);
    return created;
  };
  let stopping = false;
  let stopEvents: (() => Promise<void>) | null = null;

  async function ensureTopic(name: string): Promise<PubSubResource> {
    try {
      await pubsub.createTopic(name);
      return { kind: "topic", name, created: true };
    } catch (err) {
      if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
      return { kind: "topic", name, created: false };
    }
  }

  async function ensureSubscription(
    topicName: string,
    name: string,
    subscriptionOptions: CreateSubscriptionOptions,
  ): Promise<PubSubResource> {
    try {
      await pubsub.createSubscription(topicName, name, subscriptionOptions);
      return { kind: "subscription", name, created: true };
    } catch (err) {
      if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
      return { kind: "subscription", name, created: false };
    }
  }

  async function setup(): Promise<PubSubResource[]> {
    const topicNames = [
      ...Capability.options.map(names.jobsTopic),
      names.eventsTopic,
      names.deadLetterTopic,
      names.controlTopic,
    ];
    const topicResults = await Promise.all(topicNames.map(ensureTopic));
    // Without an expiration policy a subscription with no subscriber for 31 days is deleted,
    // and messages then published to its topic are lost.
    const neverExpire = { expirationPolicy: {} };
    const jobsSubscription: CreateSubscriptionOptions = {
      ...neverExpire,
      ackDeadlineSeconds: 60,
      // In production the Pub/Sub service agent needs publish on the dead-letter topic and
      // subscribe on this subscription for dead-lettering to happen.
      deadLetterPolicy: { deadLetterTopic: topic(names.deadLetterTopic).name, maxDeliveryAttempts: 10 },
      retryPolicy: { minimumBackoff: { seconds: 10 }, maximumBackoff: { seconds: 600 } },
    };
    const subscriptionResults = await Promise.all([
      ...Capability.options.map((capability) =>
        ensureSubscription(names.jobsTopic(capability), names.jobsSubscription(capability), jobsSubscription),
      ),
      // A batch fails only when the database does; no dead letters, so no event is ever dropped.
      ensureSubscription(names.eventsTopic, names.eventsSubscription, {
        ...neverExpire,
        ackDeadlineSeconds: 30,
        retryPolicy: { minimumBackoff: { seconds: 1 }, maximumBackoff: { seconds: 60 } },
      }),
      ensureSubscription(names.deadLetterTopic, names.deadLetterSubscription, {
        ...neverExpire,
        messageRetentionDuration: DEAD_LETTER_RETENTION_SECONDS,
      }),
    ]);
    return [...topicResults, ...subscriptionResults];
  }

  return {
    setup,
    async start() {
      await setup();
    },
    async checkReachable() {
      const [exists] = await topic(names.eventsTopic).exists();
      if (!exists) throw new Error(`topic ${names.eventsTopic} does not exist`);
    },

    async publishControl(message: ControlMessage) {
      await topic(names.controlTopic).publishMessage({ data: Buffer.from(JSON.stringify(message)) });
    },

    async publishJob(capability: Capability, message: JobMessage) {
      const attributes: Record<string, string> = {
        v: String(message.v),
        type: message.type,
        jobId: message.jobId,
        attempt: String(message.attempt),
      };
      const data = Buffer.from(JSON.stringify(message));
      await topic(names.jobsTopic(capability)).publishMessage({ data, attributes });
    },

    async consumeEvents(handler) {
      const subscription = pubsub.subscription(names.eventsSubscription, {
        flowControl: { maxMessages: 2 * EVENT_BATCH_SIZE },
        // close() keeps leasing until the batch being handled is acked instead of nacking it.
        closeOptions: { behavior: SubscriptionCloseBehaviors.WaitForProcessing },
      });
      const buffered: Message[] = [];
      let batchTimer: NodeJS.Timeout | undefined;
      let handling: Promise<void> | null = null;

      async function handleBatch(batch: Message[]): Promise<void> {
        const events: unknown[] = [];
        const parsed: Message[] = [];
        for (const message of batch) {
          try {
            events.push(JSON.parse(message.data.toString("utf8")));
            parsed.push(message);
          } catch {
            // It can never become valid: redelivering it would only fail again.
            const data = message.data.subarray(0, 200).toString("utf8");
            log.error("worker event is not JSON; dropped", { messageId: message.id, data });
            message.ack();
          }
        }
        if (!events.length) return;
        try {
          await handler(events);
          for (const message of parsed) message.ack();
        } catch (err) {
          log.error("worker events failed; they will be redelivered", { err, count: events.length });
          for (const message of parsed) message.nack();
        }
      }

      // One batch at a time, so the handler sees events roughly in arrival order.
      function handleBuffered(): void {
        clearTimeout(batchTimer);
        batchTimer = undefined;
        if (handling) return;
        handling = (async () => {
          while (buffered.length && !stopping) await handleBatch(buffered.splice(0, EVENT_BATCH_SIZE));
        })().finally(() => {
          handling = null;
          if (buffered.length && !stopping) handleBuffered();
        });
      }

      subscription.on("message", (message: Message) => {
        if (stopping) {
          message.nack();
          return;
        }
        buffered.push(message);
        if (handling) return;
        if (buffered.length >= EVENT_BATCH_SIZE) handleBuffered();
        else batchTimer ??= setTimeout(handleBuffered, EVENT_BATCH_WINDOW_MS);
      });
      subscription.on("error", (err) =>
        log.error("Pub/Sub events subscription error", { subscription: names.eventsSubscription, err }),
      );
      subscription.on("close", () => {
        if (stopping) return;
        const subscriptionName = names.eventsSubscription;
        log.error("Pub/Sub events subscription closed unexpectedly; reopening", { subscription: subscriptionName });
        setTimeout(() => stopping || subscription.open(), REOPEN_DELAY_MS).unref();
      });

      stopEvents = async () => {
        const closed = subscription.close();
        clearTimeout(batchTimer);
        for (const message of buffered.splice(0)) message.nack();
        await handling;
        await closed;
      };
    },

    async stop() {
      stopping = true;
      await stopEvents?.();
      await Promise.all([...topics.values()].map((t) => t.flush()));
      await pubsub.close();
    },
  };
}
