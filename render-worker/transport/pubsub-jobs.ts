import { Duration, type Message, type PubSub, SubscriptionCloseBehaviors } from "@google-cloud/pubsub";
import type { Capability } from "../../src/protocol/worker-messages.ts";
import { log } from "../log.ts";
import type { JobHandler } from "./types.ts";

/** Leases are renewed this long at most; a render running longer loses its job to another worker. */
const MAX_LEASE_EXTENSION = Duration.from({ hours: 6 });
const REOPEN_DELAY_MS = 5000;
const STOP_GRACE_MS = 5000;

export interface JobConsumer {
  capability: Capability;
  /** Closes the stream and hands back jobs received but not started; running jobs go on. */
  stopTaking(): void;
  /** Resolves once every running job is acked or nacked. */
  stopped(): Promise<void>;
}

/**
 * Takes jobs from one capability's subscription, `concurrency` at a time, renewing each job's lease
 * (`lease`) while its handler runs; acks it when the handler resolves, nacks it when it throws.
 */
export function consumeJobSubscription(
  pubsub: PubSub,
  lease: Duration,
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
