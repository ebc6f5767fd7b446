import type { Capability, ControlMessage } from "../protocol/worker-messages.ts";
import type { JobMessage } from "../protocol/job-message.ts";

/**
 * The API's side of the transport port: it hands job messages to workers of a capability and
 * receives worker events. Delivery is at least once; handlers must be idempotent.
 */
export interface ApiTransport {
  start(): Promise<void>;
  /**
   * Publishes a job message for immediate delivery; resolves once the transport has it durably.
   * Retry back-off is not the transport's business: the dispatcher publishes a retry when it is due.
   */
  publishJob(capability: Capability, message: JobMessage): Promise<void>;
  /**
   * Calls `handler` with batches of raw worker events (still `unknown`); a batch is acknowledged
   * when the handler resolves and redelivered when it throws.
   */
  consumeEvents(handler: (events: unknown[]) => Promise<void>): Promise<void>;
  /**
   * Withdraws a message published to `capability`'s queue, whatever became of it (waiting, handed
   * back, or claimed by a worker that died), so the transport never delivers it again: a broadcast's
   * job queued again for another run to take it over (src/live/) leaves one delivery. Absent where
   * the transport cannot (Pub/Sub: only the subscriber acknowledges); a delivery made anyway is
   * stopped as a duplicate when its start is applied (src/jobs/ingest/job-runs.ts).
   */
  withdrawJob?(capability: Capability, messageId: string): Promise<void>;
  /** Broadcasts a control message to every worker that is running now (best effort). */
  publishControl(message: ControlMessage): Promise<void>;
  /** Resolves when the transport answers now (readiness); throws when it does not. */
  checkReachable(): Promise<void>;
  stop(): Promise<void>;
}
