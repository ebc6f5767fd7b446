/**
 * Where messages travel between the API and workers. Both programs take every queue, topic,
 * subscription and channel name from here (scripts/setup-pubsub.ts through the API's transport), so
 * each is written down once. The embedded transport uses the queue names as they are and a NOTIFY
 * channel for control; Pub/Sub puts a prefix before each name (`pubSubResourceNames`).
 */
import type { Capability } from "./worker-messages.ts";

/** Queue (embedded transport) or topic (Pub/Sub) that carries jobs for one capability. */
export const jobQueueName = (capability: Capability): string => `render-jobs-${capability}`;
/** Queue/topic that carries worker events to the API. */
export const EVENTS_QUEUE = "render-events";
/** Topic (Pub/Sub) that carries control messages from the API to every worker. */
const CONTROL_CHANNEL = "render-control";
/** The same for the embedded transport: a Postgres NOTIFY channel every worker LISTENs on. */
export const CONTROL_NOTIFY_CHANNEL = "videograph_render_control";

/**
 * The embedded transport's channel for the fleet's `job.progress`: samples sent with `pg_notify`
 * rather than as rows of the events queue, taken by the one API instance holding
 * `PROGRESS_LOCK_KEY` (src/transport/progress-samples.ts).
 */
export const PROGRESS_NOTIFY_CHANNEL = "videograph_job_progress";
/** The session advisory lock (a single bigint key, like the migration's) of the instance taking progress samples. */
export const PROGRESS_LOCK_KEY = 4_245_001;
/**
 * A sample's text must fit a NOTIFY payload (Postgres: under 8,000 bytes); a longer one (a ladder
 * of very many rungs) goes through the events queue as every other event does.
 */
export const MAX_PROGRESS_SAMPLE_BYTES = 7900;

/** Prefix of every Pub/Sub topic and subscription name unless PUBSUB_TOPIC_PREFIX says otherwise. */
export const DEFAULT_TOPIC_PREFIX = "videograph";

/** Characters a Pub/Sub subscription name may not hold, replaced by `-`. */
const NOT_IN_SUBSCRIPTION_NAME = /[^A-Za-z0-9._~+%-]/g;
const MAX_SUBSCRIPTION_NAME_LENGTH = 255;

/**
 * Names of the Pub/Sub topics and subscriptions under `prefix`. The API creates all of them but
 * the per-worker control subscriptions, which each worker creates for itself.
 */
export function pubSubResourceNames(prefix: string) {
  return {
    jobsTopic: (capability: Capability) => `${prefix}-${jobQueueName(capability)}`,
    jobsSubscription: (capability: Capability) => `${prefix}-${jobQueueName(capability)}-workers`,
    eventsTopic: `${prefix}-${EVENTS_QUEUE}`,
    eventsSubscription: `${prefix}-${EVENTS_QUEUE}-api`,
    deadLetterTopic: `${prefix}-dead-letter`,
    deadLetterSubscription: `${prefix}-dead-letter-inspect`,
    /** Broadcast to workers: each worker subscribes with a subscription of its own. */
    controlTopic: `${prefix}-${CONTROL_CHANNEL}`,
    controlSubscription: (workerId: string) =>
      `${prefix}-${CONTROL_CHANNEL}-${workerId}`
        .replace(NOT_IN_SUBSCRIPTION_NAME, "-")
        .slice(0, MAX_SUBSCRIPTION_NAME_LENGTH),
  };
}
