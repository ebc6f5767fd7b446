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
  /**
   * A capability's jobs subscription was found missing and made again: the job messages it held, or
   * that were published while it did not exist, are gone.
   */
  onJobQueueRecreated?: (capability: Capability) => void;
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
const NOT_FOUND = 5;
/** What a deleted topic's subscriptions are left pointing at: they never receive again. */
const DELETED_TOPIC = "_deleted-topic_";
/** Setup runs again at most this often when a resource is found missing, and at least this often anyway. */
const RESTORE_MIN_INTERVAL_MS = 5000;
const RESTORE_INTERVAL_MS = 30_000;
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
    topicRecreated = false,
  ): Promise<PubSubResource> {
    try {
      await pubsub.createSubscription(topicName, name, subscriptionOptions);
      return { kind: "subscription", name, created: true };
    } catch (err) {
      if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
      if (topicRecreated) {
        // A subscription outlives its deleted topic detached from it, and a new topic of the same
        // name does not take it back: it is made again.
        const [metadata] = await pubsub.subscription(name).getMetadata();
        if (metadata.topic === DELETED_TOPIC) {
          await pubsub.subscription(name).delete();
          await pubsub.createSubscription(topicName, name, subscriptionOptions);
          return { kind: "subscription", name, created: true };
        }
      }
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
    const recreated = (topicName: string) => restoring && topicResults.some((r) => r.name === topicName && r.created);
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
        ensureSubscription(
          names.jobsTopic(capability),
          names.jobsSubscription(capability),
          jobsSubscription,
          recreated(names.jobsTopic(capability)),
        ),
      ),
      // A batch fails only when the database does; no dead letters, so no event is ever dropped.
      ensureSubscription(
        names.eventsTopic,
        names.eventsSubscription,
        {
          ...neverExpire,
          ackDeadlineSeconds: 30,
          retryPolicy: { minimumBackoff: { seconds: 1 }, maximumBackoff: { seconds: 60 } },
        },
        recreated(names.eventsTopic),
      ),
      ensureSubscription(
        names.deadLetterTopic,
        names.deadLetterSubscription,
        { ...neverExpire, messageRetentionDuration: DEAD_LETTER_RETENTION_SECONDS },
        recreated(names.deadLetterTopic),
      ),
    ]);
    return [...topicResults, ...subscriptionResults];
  }

  let restoring = false;
  let restored: Promise<void> | null = null;
  let lastRestoreAt = 0;
  let restoreTimer: NodeJS.Timeout | undefined;
  /**
   * Makes again what this service owns and someone deleted (or an emulator that restarted lost):
   * at once when a call finds something missing, at most every RESTORE_MIN_INTERVAL_MS, and every
   * RESTORE_INTERVAL_MS anyway, since a missing jobs subscription makes no publish fail. Each
   * resource made again is logged once.
   */
  function restore(why: string): Promise<void> {
    if (restored) return restored;
    const wait = Math.max(0, lastRestoreAt + RESTORE_MIN_INTERVAL_MS - Date.now());
    restored = (async () => {
      await new Promise((r) => setTimeout(r, wait));
      lastRestoreAt = Date.now();
      restoring = true;
      try {
        const made = (await setup()).filter((r) => r.created);
        for (const r of made) log.warn(`Pub/Sub ${r.kind} was missing; created it again`, { [r.kind]: r.name, why });
        for (const capability of Capability.options)
          if (made.some((r) => r.name === names.jobsSubscription(capability)))
            options.onJobQueueRecreated?.(capability);
      } catch (err) {
        log.error("Pub/Sub topics and subscriptions could not be made again; trying later", { err, why });
      } finally {
        restoring = false;
        restored = null;
      }
    })();
    return restored;
  }
  const notFound = (err: unknown) => (err as { code?: unknown }).code === NOT_FOUND;
  /** `publish`, and once more after restoring what was missing when it found its topic gone. */
  async function publishRestoring(publish: () => Promise<unknown>): Promise<void> {
    try {
      await publish();
    } catch (err) {
      if (!notFound(err) || stopping) throw err;
      await restore("a publish found its topic missing");
      await publish();
    }
  }

  return {
    setup,
    async start() {
      await setup();
      restoreTimer = setInterval(() => void restore("periodic check"), RESTORE_INTERVAL_MS);
      restoreTimer.unref();
    },
    async checkReachable() {
      const [exists] = await topic(names.eventsTopic).exists();
      if (!exists) throw new Error(`topic ${names.eventsTopic} does not exist`);
    },

    async publishControl(message: ControlMessage) {
      const data = Buffer.from(JSON.stringify(message));
      await publishRestoring(() => topic(names.controlTopic).publishMessage({ data }));
    },

    async publishJob(capability: Capability, message: JobMessage) {
      const attributes: Record<string, string> = {
        v: String(message.v),
        type: message.type,
        jobId: message.jobId,
        attempt: String(message.attempt),
      };
      const data = Buffer.from(JSON.stringify(message));
      await publishRestoring(() => topic(names.jobsTopic(capability)).publishMessage({ data, attributes }));
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
      let missingLogged = false;
      subscription.on("error", (err) => {
        if (notFound(err)) {
          // Logged once until it is back; the subscription reopens once it exists again.
          if (!missingLogged)
            log.error("Pub/Sub events subscription is missing; creating it again", {
              subscription: names.eventsSubscription,
            });
          missingLogged = true;
          void restore("the events subscription is missing").then(() => {
            missingLogged = false;
            if (!stopping && !subscription.isOpen) subscription.open();
          });
          return;
        }
        log.error("Pub/Sub events subscription error", { subscription: names.eventsSubscription, err });
      });
      subscription.on("close", () => {
        if (stopping) return;
        const subscriptionName = names.eventsSubscription;
        log.error("Pub/Sub events subscription closed unexpectedly; reopening", { subscription: subscriptionName });
        setTimeout(() => stopping || subscription.isOpen || subscription.open(), REOPEN_DELAY_MS).unref();
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
      clearInterval(restoreTimer);
      await restored;
      await stopEvents?.();
      await Promise.all([...topics.values()].map((t) => t.flush()));
      await pubsub.close();
    },
  };
}
