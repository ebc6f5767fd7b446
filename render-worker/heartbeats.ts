import type { Capability } from "../src/protocol/worker-messages.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import { log } from "./log.ts";
import type { RunTable } from "./runs/run-table.ts";
import type { WorkerTransport } from "./transport/types.ts";

/**
 * The worker's heartbeat: what it serves, what it is testing and which attempts it runs, sent on
 * a timer and whenever any of it changes. The API takes a worker without heartbeats for gone.
 * One on the timer repeats what the last one said, so it goes as a sample (a lost one is said
 * again by the next, 10 s later: docs/failure-model.md); one that says something new (a
 * capability, a reconnect, the last at shutdown) goes durably.
 */
export function createHeartbeats(options: {
  transport: WorkerTransport;
  workerId: string;
  slots: number;
  liveSlots: number;
  intervalSeconds: number;
  runs: RunTable;
  capabilities: () => Capability[];
  /** Capabilities whose test runs now: the API accepts their jobs meanwhile. */
  probing: () => Capability[];
}) {
  let timer: NodeJS.Timeout | undefined;
  async function send(sendOptions?: { sample?: boolean }): Promise<void> {
    await options.transport.publishEvent(
      {
        v: PROTOCOL_VERSION,
        type: "worker.heartbeat",
        workerId: options.workerId,
        capabilities: options.capabilities(),
        probing: options.probing(),
        slots: options.slots,
        liveSlots: options.liveSlots,
        activeJobs: options.runs.all().map((r) => ({ jobId: r.jobId, attempt: r.attempt })),
        at: new Date().toISOString(),
      },
      sendOptions,
    );
  }
  return {
    send,
    start(): void {
      timer = setInterval(
        () => send({ sample: true }).catch((err) => log.warn("heartbeat failed", { err })),
        options.intervalSeconds * 1000,
      );
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}

export type Heartbeats = ReturnType<typeof createHeartbeats>;
