import type { Capability, WorkerEvent } from "../../src/protocol/messages.ts";

/**
 * The worker's side of the transport port. A job message is acknowledged when the handler
 * resolves; when it throws (a job handed back at shutdown), the transport delivers it again,
 * to this or another worker.
 */
export interface WorkerTransport {
  start(): Promise<void>;
  consumeJobs(capabilities: Capability[], concurrency: number, handler: (message: unknown, signal: AbortSignal) => Promise<void>): Promise<void>;
  /** Resolves once the event is durably with the transport. */
  publishEvent(event: WorkerEvent): Promise<void>;
  /** Stops taking new jobs; in-flight handlers keep running. */
  stopConsuming(): Promise<void>;
  stop(): Promise<void>;
}
