import { PgBoss } from "pg-boss";
import { EVENTS_QUEUE, jobQueueName, type Capability, type WorkerEvent } from "../../src/protocol/messages.ts";
import { log } from "../log.ts";
import type { WorkerTransport } from "./types.ts";

const QUEUE_WAIT_MS = 500;

/** The embedded transport (pg-boss in Postgres); the API creates the queues. */
export function createPostgresWorkerTransport(connectionString: string): WorkerTransport {
  const boss = new PgBoss({ connectionString, useListenNotify: true, max: 3, supervise: false, schedule: false });
  boss.on("error", (err) => log.error("pg-boss error", { err }));
  const queues: string[] = [];

  return {
    async start() {
      await boss.start();
    },
    async consumeJobs(capabilities, concurrency, handler) {
      for (const capability of capabilities) {
        const queue = jobQueueName(capability as Capability);
        while (!(await boss.getQueue(queue))) {
          log.info("waiting for the API to create the job queue", { queue });
          await new Promise((r) => setTimeout(r, QUEUE_WAIT_MS));
        }
        queues.push(queue);
        await boss.work(queue, { localConcurrency: concurrency, batchSize: 1, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 10 }, async ([job]) => {
          await handler(job!.data, job!.signal);
        });
      }
    },
    async publishEvent(event: WorkerEvent) {
      await boss.send(EVENTS_QUEUE, event);
    },
    async stopConsuming() {
      await Promise.all(queues.map((q) => boss.offWork(q, { wait: false })));
    },
    async stop() {
      await boss.stop({ graceful: true, timeout: 5000 });
    },
  };
}
