import { PubSub } from "@google-cloud/pubsub";
import type { Capability, ControlMessage } from "../protocol/worker-messages.ts";
import type { JobMessage } from "../protocol/job-message.ts";
import { DEFAULT_TOPIC_PREFIX, pubSubResourceNames } from "../protocol/queues.ts";
import { consumePubSubEvents } from "./pubsub-events.ts";
import {
  type PubSubContext,
  type PubSubResource,
  publishRestoring,
  RESTORE_INTERVAL_MS,
  restoreResources,
  setupResources,
  topicOf,
} from "./pubsub-resources.ts";
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

export interface PubSubApiTransport extends ApiTransport {
  /** Creates every topic and subscription that is missing; safe to run concurrently. */
  setup(): Promise<PubSubResource[]>;
}

/**
 * The production transport: Google Cloud Pub/Sub. Jobs go to one topic per capability, each
 * with a subscription shared by that capability's workers (dead letters after 10 deliveries,
 * retried with 10 s..600 s backoff). Worker events come back on one topic whose subscription
 * all API instances share, so each event is applied once. Set `PUBSUB_EMULATOR_HOST` to use the
 * emulator. Its topics and subscriptions, made and made again, are `pubsub-resources.ts`; the
 * events subscription's batches `pubsub-events.ts`.
 */
export function createPubSubApiTransport(options: PubSubApiTransportOptions): PubSubApiTransport {
  const ctx: PubSubContext = {
    pubsub: new PubSub({ projectId: options.projectId }),
    names: pubSubResourceNames(options.topicPrefix ?? DEFAULT_TOPIC_PREFIX),
    topics: new Map(),
    onJobQueueRecreated: options.onJobQueueRecreated,
    stopping: false,
    restored: null,
    restoring: false,
    lastRestoreAt: 0,
  };
  const { names } = ctx;
  let stopEvents: (() => Promise<void>) | null = null;
  let restoreTimer: NodeJS.Timeout | undefined;

  return {
    setup: () => setupResources(ctx),
    async start() {
      await setupResources(ctx);
      restoreTimer = setInterval(() => void restoreResources(ctx, "periodic check"), RESTORE_INTERVAL_MS);
      restoreTimer.unref();
    },
    async checkReachable() {
      const [exists] = await topicOf(ctx, names.eventsTopic).exists();
      if (!exists) throw new Error(`topic ${names.eventsTopic} does not exist`);
    },

    async publishControl(message: ControlMessage) {
      const data = Buffer.from(JSON.stringify(message));
      await publishRestoring(ctx, () => topicOf(ctx, names.controlTopic).publishMessage({ data }));
    },

    async publishJob(capability: Capability, message: JobMessage) {
      const attributes: Record<string, string> = {
        v: String(message.v),
        type: message.type,
        jobId: message.jobId,
        attempt: String(message.attempt),
      };
      const data = Buffer.from(JSON.stringify(message));
      await publishRestoring(ctx, () => topicOf(ctx, names.jobsTopic(capability)).publishMessage({ data, attributes }));
    },

    async consumeEvents(handler) {
      stopEvents = consumePubSubEvents(ctx, handler);
    },

    async stop() {
      ctx.stopping = true;
      clearInterval(restoreTimer);
      await ctx.restored;
      await stopEvents?.();
      await Promise.all([...ctx.topics.values()].map((t) => t.flush()));
      await ctx.pubsub.close();
    },
  };
}
