import type { PubSub, CreateSubscriptionOptions, Topic } from "@google-cloud/pubsub";
import { Capability } from "../protocol/worker-messages.ts";
import type { pubSubResourceNames } from "../protocol/queues.ts";
import { log } from "../log.ts";

/** A topic or subscription that `setup()` made sure of. */
export interface PubSubResource {
  kind: "topic" | "subscription";
  name: string;
  /** False when it already existed. */
  created: boolean;
}

/** What the API's Pub/Sub transport shares between its resources, its publishes and its events. */
export interface PubSubContext {
  pubsub: PubSub;
  names: ReturnType<typeof pubSubResourceNames>;
  /** Each topic's client, made once. */
  topics: Map<string, Topic>;
  onJobQueueRecreated?: (capability: Capability) => void;
  /** Set by `stop()`: nothing is restored, published again or taken from the events subscription. */
  stopping: boolean;
  /** The restore in flight, which the next finding of something missing joins; null when none. */
  restored: Promise<void> | null;
  /** True while a restore runs `setup`: a topic it made again has lost its subscriptions. */
  restoring: boolean;
  lastRestoreAt: number;
}

const ALREADY_EXISTS = 6;
const NOT_FOUND = 5;
/** What a deleted topic's subscriptions are left pointing at: they never receive again. */
const DELETED_TOPIC = "_deleted-topic_";
/** Setup runs again at most this often when a resource is found missing, and at least this often anyway. */
const RESTORE_MIN_INTERVAL_MS = 5000;
export const RESTORE_INTERVAL_MS = 30_000;
const DEAD_LETTER_RETENTION_SECONDS = 7 * 24 * 3600;

export const notFound = (err: unknown) => (err as { code?: unknown }).code === NOT_FOUND;

/** The topic's client, made once. */
export function topicOf(ctx: PubSubContext, name: string): Topic {
  const known = ctx.topics.get(name);
  if (known) return known;
  const created = ctx.pubsub.topic(name);
  ctx.topics.set(name, created);
  return created;
}

async function ensureTopic(ctx: PubSubContext, name: string): Promise<PubSubResource> {
  try {
    await ctx.pubsub.createTopic(name);
    return { kind: "topic", name, created: true };
  } catch (err) {
    if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err;
    return { kind: "topic", name, created: false };
  }
}

async function ensureSubscription(
  { pubsub }: PubSubContext,
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

/** Creates every topic and subscription that is missing; safe to run concurrently. */
export async function setupResources(ctx: PubSubContext): Promise<PubSubResource[]> {
  const { names } = ctx;
  const topicNames = [
    ...Capability.options.map(names.jobsTopic),
    names.eventsTopic,
    names.deadLetterTopic,
    names.controlTopic,
  ];
  const topicResults = await Promise.all(topicNames.map((name) => ensureTopic(ctx, name)));
  const recreated = (topicName: string) => ctx.restoring && topicResults.some((r) => r.name === topicName && r.created);
  // Without an expiration policy a subscription with no subscriber for 31 days is deleted,
  // and messages then published to its topic are lost.
  const neverExpire = { expirationPolicy: {} };
  const jobsSubscription: CreateSubscriptionOptions = {
    ...neverExpire,
    ackDeadlineSeconds: 60,
    // In production the Pub/Sub service agent needs publish on the dead-letter topic and
    // subscribe on this subscription for dead-lettering to happen.
    deadLetterPolicy: { deadLetterTopic: topicOf(ctx, names.deadLetterTopic).name, maxDeliveryAttempts: 10 },
    retryPolicy: { minimumBackoff: { seconds: 10 }, maximumBackoff: { seconds: 600 } },
  };
  const subscriptionResults = await Promise.all([
    ...Capability.options.map((capability) =>
      ensureSubscription(
        ctx,
        names.jobsTopic(capability),
        names.jobsSubscription(capability),
        jobsSubscription,
        recreated(names.jobsTopic(capability)),
      ),
    ),
    // A batch fails only when the database does; no dead letters, so no event is ever dropped.
    ensureSubscription(
      ctx,
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
      ctx,
      names.deadLetterTopic,
      names.deadLetterSubscription,
      { ...neverExpire, messageRetentionDuration: DEAD_LETTER_RETENTION_SECONDS },
      recreated(names.deadLetterTopic),
    ),
  ]);
  return [...topicResults, ...subscriptionResults];
}

/**
 * Makes again what this service owns and someone deleted (or an emulator that restarted lost):
 * at once when a call finds something missing, at most every RESTORE_MIN_INTERVAL_MS, and every
 * RESTORE_INTERVAL_MS anyway, since a missing jobs subscription makes no publish fail. Each
 * resource made again is logged once.
 */
export function restoreResources(ctx: PubSubContext, why: string): Promise<void> {
  if (ctx.restored) return ctx.restored;
  const wait = Math.max(0, ctx.lastRestoreAt + RESTORE_MIN_INTERVAL_MS - Date.now());
  ctx.restored = (async () => {
    await new Promise((r) => setTimeout(r, wait));
    ctx.lastRestoreAt = Date.now();
    ctx.restoring = true;
    try {
      const made = (await setupResources(ctx)).filter((r) => r.created);
      for (const r of made) log.warn(`Pub/Sub ${r.kind} was missing; created it again`, { [r.kind]: r.name, why });
      for (const capability of Capability.options)
        if (made.some((r) => r.name === ctx.names.jobsSubscription(capability))) ctx.onJobQueueRecreated?.(capability);
    } catch (err) {
      log.error("Pub/Sub topics and subscriptions could not be made again; trying later", { err, why });
    } finally {
      ctx.restoring = false;
      ctx.restored = null;
    }
  })();
  return ctx.restored;
}

/** `publish`, and once more after restoring what was missing when it found its topic gone. */
export async function publishRestoring(ctx: PubSubContext, publish: () => Promise<unknown>): Promise<void> {
  try {
    await publish();
  } catch (err) {
    if (!notFound(err) || ctx.stopping) throw err;
    await restoreResources(ctx, "a publish found its topic missing");
    await publish();
  }
}
