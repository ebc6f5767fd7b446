import { SubscriptionCloseBehaviors, type Message, type Subscription } from "@google-cloud/pubsub";
import { log } from "../log.ts";
import { notFound, type PubSubContext, restoreResources } from "./pubsub-resources.ts";

const EVENT_BATCH_SIZE = 100;
const EVENT_BATCH_WINDOW_MS = 50;
const REOPEN_DELAY_MS = 5000;

type EventHandler = (events: unknown[]) => Promise<void>;

/** Worker events taken from the subscription and not yet handed to the handler, one batch at a time. */
interface EventBuffer {
  ctx: PubSubContext;
  handler: EventHandler;
  buffered: Message[];
  batchTimer: NodeJS.Timeout | undefined;
  handling: Promise<void> | null;
}

/**
 * Hands the events subscription's messages to `handler` in batches (up to EVENT_BATCH_SIZE, or what
 * came within EVENT_BATCH_WINDOW_MS), acked when it resolves; the subscription is made again when
 * someone deleted it and reopened when it closes. Resolves with what stops it.
 */
export function consumePubSubEvents(ctx: PubSubContext, handler: EventHandler): () => Promise<void> {
  const subscription = ctx.pubsub.subscription(ctx.names.eventsSubscription, {
    flowControl: { maxMessages: 2 * EVENT_BATCH_SIZE },
    // close() keeps leasing until the batch being handled is acked instead of nacking it.
    closeOptions: { behavior: SubscriptionCloseBehaviors.WaitForProcessing },
  });
  const buffer: EventBuffer = { ctx, handler, buffered: [], batchTimer: undefined, handling: null };
  subscription.on("message", (message: Message) => bufferEvent(buffer, message));
  keepSubscriptionOpen(ctx, subscription);
  return async () => {
    const closed = subscription.close();
    clearTimeout(buffer.batchTimer);
    for (const message of buffer.buffered.splice(0)) message.nack();
    await buffer.handling;
    await closed;
  };
}

function bufferEvent(buffer: EventBuffer, message: Message): void {
  if (buffer.ctx.stopping) {
    message.nack();
    return;
  }
  buffer.buffered.push(message);
  if (buffer.handling) return;
  if (buffer.buffered.length >= EVENT_BATCH_SIZE) handleBuffered(buffer);
  else buffer.batchTimer ??= setTimeout(() => handleBuffered(buffer), EVENT_BATCH_WINDOW_MS);
}

/** One batch at a time, so the handler sees events roughly in arrival order. */
function handleBuffered(buffer: EventBuffer): void {
  clearTimeout(buffer.batchTimer);
  buffer.batchTimer = undefined;
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

async function handleBatch(handler: EventHandler, batch: Message[]): Promise<void> {
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
