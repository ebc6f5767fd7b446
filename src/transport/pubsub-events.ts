import { SubscriptionCloseBehaviors, type Message, type Subscription } from "@google-cloud/pubsub";
import { log } from "../log.ts";
import { notFound, type PubSubContext, restoreResources } from "./pubsub-resources.ts";

const EVENT_BATCH_SIZE = 100;
const REOPEN_DELAY_MS = 5000;

type EventHandler = (events: unknown[]) => Promise<void>;

/** What the buffer takes of a Pub/Sub message (a test hands it its own). */
export type EventMessage = Pick<Message, "id" | "data" | "ack" | "nack">;

/** Worker events taken from the subscription and not yet handed to the handler, one batch at a time. */
export interface EventBuffer {
  ctx: Pick<PubSubContext, "stopping">;
  handler: EventHandler;
  buffered: EventMessage[];
  /** The hand-over of what came in this turn of the event loop, while none is under way. */
  handOver: NodeJS.Immediate | undefined;
  handling: Promise<void> | null;
}

/**
 * Hands the events subscription's messages to `handler` in batches, acked when it resolves; the
 * subscription is made again when someone deleted it and reopened when it closes. Resolves with
 * what stops it. An event that finds no batch under way goes at once (with what the same pull
 * brought), so a quiet API applies a `video.playable` as soon as it arrives; what comes while a
 * batch is applied waits for the next, up to EVENT_BATCH_SIZE: a busy API takes large batches.
 * Until 2026-11-29 every batch waited 50 ms for more (docs/performance.md, "Events at once").
 */
export function consumePubSubEvents(ctx: PubSubContext, handler: EventHandler): () => Promise<void> {
  const subscription = ctx.pubsub.subscription(ctx.names.eventsSubscription, {
    flowControl: { maxMessages: 2 * EVENT_BATCH_SIZE },
    // close() keeps leasing until the batch being handled is acked instead of nacking it.
    closeOptions: { behavior: SubscriptionCloseBehaviors.WaitForProcessing },
  });
  const buffer: EventBuffer = { ctx, handler, buffered: [], handOver: undefined, handling: null };
  subscription.on("message", (message: Message) => bufferEvent(buffer, message));
  keepSubscriptionOpen(ctx, subscription);
  return async () => {
    const closed = subscription.close();
    if (buffer.handOver) clearImmediate(buffer.handOver);
    for (const message of buffer.buffered.splice(0)) message.nack();
    await buffer.handling;
    await closed;
  };
}

/** Takes one message of the subscription (exported for its test). */
export function bufferEvent(buffer: EventBuffer, message: EventMessage): void {
  if (buffer.ctx.stopping) {
    message.nack();
    return;
  }
  buffer.buffered.push(message);
  if (buffer.handling) return;
  // The messages of one pull arrive in one turn of the event loop: they go together.
  buffer.handOver ??= setImmediate(() => handleBuffered(buffer));
}

/** One batch at a time, so the handler sees events roughly in arrival order. */
function handleBuffered(buffer: EventBuffer): void {
  if (buffer.handOver) clearImmediate(buffer.handOver);
  buffer.handOver = undefined;
  if (buffer.handling) return;
  const { ctx } = buffer;
  buffer.handling = (async () => {
    while (buffer.buffered.length && !ctx.stopping)
      await handleBatch(buffer.handler, buffer.buffered.splice(0, EVENT_BATCH_SIZE));
  })().finally(() => {
    buffer.handling = null;
    if (buffer.buffered.length && !ctx.stopping) handleBuffered(buffer);
  });
}

async function handleBatch(handler: EventHandler, batch: EventMessage[]): Promise<void> {
  const events: unknown[] = [];
  const parsed: EventMessage[] = [];
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

/** A deleted events subscription is made again and reopened; one closed unexpectedly is reopened. */
function keepSubscriptionOpen(ctx: PubSubContext, subscription: Subscription): void {
  const subscriptionName = ctx.names.eventsSubscription;
  let missingLogged = false;
  subscription.on("error", (err) => {
    if (notFound(err)) {
      // Logged once until it is back; the subscription reopens once it exists again.
      if (!missingLogged)
        log.error("Pub/Sub events subscription is missing; creating it again", { subscription: subscriptionName });
      missingLogged = true;
      void restoreResources(ctx, "the events subscription is missing").then(() => {
        missingLogged = false;
        if (!ctx.stopping && !subscription.isOpen) subscription.open();
      });
      return;
    }
    log.error("Pub/Sub events subscription error", { subscription: subscriptionName, err });
  });
  subscription.on("close", () => {
    if (ctx.stopping) return;
    log.error("Pub/Sub events subscription closed unexpectedly; reopening", { subscription: subscriptionName });
    setTimeout(() => ctx.stopping || subscription.isOpen || subscription.open(), REOPEN_DELAY_MS).unref();
  });
}
