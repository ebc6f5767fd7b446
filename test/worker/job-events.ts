import { JobEvent, PROTOCOL_VERSION, type JobEventBody } from "../../src/protocol/messages.ts";

/**
 * An `emit` for a handler under test: parses each body with the contract's schema inside the
 * envelope the worker adds (as the worker's emitter does), then records it.
 */
export function contractCheckedEmit(jobId: string, events: JobEventBody[], onEvent?: (e: JobEventBody) => void) {
  return async (body: JobEventBody): Promise<void> => {
    JobEvent.parse({
      ...body,
      v: PROTOCOL_VERSION,
      jobId,
      attempt: 1,
      seq: events.length + 1,
      workerId: "test",
      at: new Date().toISOString(),
    });
    events.push(body);
    onEvent?.(body);
  };
}
