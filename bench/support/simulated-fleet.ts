// The control plane benchmark's fleet (forked by bench/control-plane.ts, IPC with the advanced
// serialization): simulated workers (./simulated-worker.ts) over the run's transport, grown like an
// autoscaled fleet. On { start } it starts one worker; on { slots: n } it adds workers until the
// fleet has n slots; on { take } it answers { taken } with the events sent so far, the runs in
// flight and its CPU time since the last take; on { stop } it stops every worker and exits.
import { createPostgresWorkerTransport } from "../../render-worker/transport/postgres.ts";
import { createPubSubWorkerTransport } from "../../render-worker/transport/pubsub.ts";
import { endsRun, isProgressEvent, type JobEvent } from "../../src/protocol/job-events.ts";
import { type SimulatedSource, type SimulatedWorker, startSimulatedWorker } from "./simulated-worker.ts";

export interface FleetStart {
  transport: { kind: "postgres"; databaseUrl: string } | { kind: "pubsub"; projectId: string };
  source: SimulatedSource;
  slotsPerWorker: number;
  /** Jobs each worker a process stands for runs at once (WORKER_CONCURRENCY): each heartbeats apart. */
  workerConcurrency: number;
  progressIntervalMs: number;
  failureRate: number;
}

export interface FleetTaken {
  progress: number;
  /** Events that end a run: `job.succeeded`, `job.failed`, `job.canceled`. */
  ends: number;
  other: number;
  running: number;
  slots: number;
  cpuMs: number;
}

let start: FleetStart | null = null;
const workers: SimulatedWorker[] = [];
const sent = { progress: 0, ends: 0, other: 0 };
let cpuAtTake = process.cpuUsage();

function count(event: JobEvent): void {
  if (isProgressEvent(event)) sent.progress++;
  else if (endsRun(event)) sent.ends++;
  else sent.other++;
}

async function addWorker(options: FleetStart): Promise<void> {
  const workerId = `simulated-${process.pid}-${workers.length + 1}`;
  const transport =
    options.transport.kind === "postgres"
      ? createPostgresWorkerTransport(options.transport.databaseUrl)
      : createPubSubWorkerTransport({ projectId: options.transport.projectId, workerId });
  workers.push(
    await startSimulatedWorker({
      transport,
      workerId,
      slots: options.slotsPerWorker,
      workerSlots: options.workerConcurrency,
      source: options.source,
      progressIntervalMs: options.progressIntervalMs,
      heartbeatIntervalSeconds: 10,
      failureRate: options.failureRate,
      onSent: count,
    }),
  );
}

process.on(
  "message",
  async (message: { start?: FleetStart; slots?: number; take?: true; stop?: true }): Promise<void> => {
    if (message.start) {
      start = message.start;
      await addWorker(start);
      process.send?.({ started: true });
    }
    if (message.slots !== undefined && start) {
      while (workers.length * start.slotsPerWorker < message.slots) await addWorker(start);
      process.send?.({ grown: workers.length * start.slotsPerWorker });
    }
    if (message.take) {
      const cpu = process.cpuUsage(cpuAtTake);
      cpuAtTake = process.cpuUsage();
      const taken: FleetTaken = {
        ...sent,
        running: workers.reduce((n, w) => n + w.running(), 0),
        slots: workers.length * (start?.slotsPerWorker ?? 0),
        cpuMs: (cpu.user + cpu.system) / 1000,
      };
      process.send?.({ taken });
    }
    if (message.stop) {
      await Promise.allSettled(workers.map((w) => w.stop()));
      process.send?.({ stopped: true }, () => process.exit(0));
    }
  },
);
process.on("disconnect", () => process.exit(0));
