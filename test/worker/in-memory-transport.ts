import type { JobHandler, WorkerTransport } from "../../render-worker/transport/types.ts";
import type { Capability, WorkerEvent } from "../../src/protocol/worker-messages.ts";
import type { JobDelivery } from "../../src/protocol/job-events.ts";

/** A worker transport that hands the test the worker's job handler and keeps what the worker sends. */
export function inMemoryTransport() {
  const events: WorkerEvent[] = [];
  /** Each send as the worker made it: one event, or the list of `publishEvents`. */
  const sends: WorkerEvent[][] = [];
  let handler: JobHandler | undefined;
  let controlHandler: ((message: unknown) => void) | undefined;
  let consumed: Capability[] = [];
  const transport: WorkerTransport = {
    async start() {},
    async consumeJobs(capabilities, _concurrency, h) {
      consumed = capabilities;
      handler = h;
    },
    async publishEvent(event) {
      events.push(event);
      sends.push([event]);
    },
    async publishEvents(list) {
      events.push(...list);
      sends.push([...list]);
    },
    async onControl(h) {
      controlHandler = h;
    },
    async checkReachable() {},
    async stopConsuming() {},
    async stop() {},
  };
  return {
    transport,
    events,
    sends,
    /** Delivers a job as if it came from `capability`'s queue (and the transport counted `delivery`). */
    deliver: (job: unknown, capability: Capability, signal = new AbortController().signal, delivery?: JobDelivery) =>
      handler!(job, signal, capability, delivery),
    /** Broadcasts a control message (a cancel) to the worker. */
    control: (message: unknown) => controlHandler!(message),
    /** The queues the worker asked to consume. */
    consumed: () => consumed,
  };
}
