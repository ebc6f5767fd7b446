import type { Capability, WorkerEvent } from "../../src/protocol/worker-messages.ts";
import type { JobDelivery } from "../../src/protocol/job-events.ts";

/**
 * Handles one job message; `capability` is the queue it came from, so a job on the nvenc queue
 * is encoded with NVENC and one on the cpu queue with x264. `delivery` is the transport's own count
 * of this message's deliveries, when it keeps one; the API lets a later delivery of a message take
 * the job over from a run whose claim lapsed.
 */
export type JobHandler = (
  message: unknown,
  signal: AbortSignal,
  capability: Capability,
  delivery?: JobDelivery,
) => Promise<void>;

/**
 * The worker's side of the transport port. A job message is acknowledged when the handler
 * resolves; when it throws (a job handed back at shutdown), the transport delivers it again,
 * to this or another worker.
 */
export interface WorkerTransport {
  start(): Promise<void>;
  consumeJobs(capabilities: Capability[], concurrency: number, handler: JobHandler): Promise<void>;
  /**
   * Resolves once the event is durably with the transport. With `sample`, the event is one that
   * the next of its kind says all of (a heartbeat on the timer, which repeats what the last one
   * said): the transport may send it where a crash or a reconnect drops it (over Postgres a NOTIFY,
   * as progress goes: progress-samples.ts), and resolves once it is sent.
   */
  publishEvent(event: WorkerEvent, options?: { sample?: boolean }): Promise<void>;
  /**
   * Sends events that are ready together (a run's end: its rungs' outcomes and its `job.succeeded`)
   * in one go where the transport can: Postgres queues them in one statement, all or none; Pub/Sub
   * publishes them in one batch. Resolves once every one is durably with the transport.
   */
  publishEvents(events: WorkerEvent[]): Promise<void>;
  /**
   * Calls `handler` with every control message (still `unknown`) broadcast while this worker
   * runs; messages sent while it was down are not replayed. A transport whose channel can drop
   * and come back calls `onReconnected` then, so the worker can ask for what it missed.
   */
  onControl(handler: (message: unknown) => void, onReconnected: () => void): Promise<void>;
  /** Resolves when the transport answers now (readiness); throws when it does not. */
  checkReachable(): Promise<void>;
  /**
   * Stops taking new jobs from the queues of `capabilities` (all when absent); in-flight handlers
   * keep running.
   */
  stopConsuming(capabilities?: Capability[]): Promise<void>;
  stop(): Promise<void>;
}
