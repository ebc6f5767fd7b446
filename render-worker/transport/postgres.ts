import pg from "pg";
import { PgBoss } from "pg-boss";
import { CONTROL_NOTIFY_CHANNEL, EVENTS_QUEUE, jobQueueName, type WorkerEvent } from "../../src/protocol/messages.ts";
import { log } from "../log.ts";
import type { WorkerTransport } from "./types.ts";

const QUEUE_WAIT_MS = 500;

/** The embedded transport (pg-boss in Postgres); the API creates the queues. */
export function createPostgresWorkerTransport(connectionString: string): WorkerTransport {
  const boss = new PgBoss({ connectionString, useListenNotify: true, max: 3, supervise: false, schedule: false });
  boss.on("error", (err) => log.error("pg-boss error", { err }));
  const queues: string[] = [];
  let control: pg.Client | null = null;

  return {
    async start() {
      await boss.start();
    },
    async consumeJobs(capabilities, concurrency, handler) {
      for (const capability of capabilities) {
        const queue = jobQueueName(capability);
        while (!(await boss.getQueue(queue))) {
          log.info("waiting for the API to create the job queue", { queue });
          await new Promise((r) => setTimeout(r, QUEUE_WAIT_MS));
        }
        queues.push(queue);
        await boss.work(queue, { localConcurrency: concurrency, batchSize: 1, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 1 }, async ([job]) => {
          await handler(job!.data, job!.signal, capability);
        });
      }
    },
    async publishEvent(event: WorkerEvent) {
      await boss.send(EVENTS_QUEUE, event);
    },
    async onControl(handler) {
      control = new pg.Client({ connectionString });
      control.on("notification", (msg) => {
        try {
          handler(JSON.parse(msg.payload ?? "null"));
        } catch (err) {
          log.error("control message is not JSON; ignored", { err });
        }
      });
      control.on("error", (err) => log.error("control channel lost; cancels will reach this worker only through refused events", { err }));
      await control.connect();
      await control.query(`LISTEN ${CONTROL_NOTIFY_CHANNEL}`);
    },
    async stopConsuming() {
      await Promise.all(queues.map((q) => boss.offWork(q, { wait: false })));
    },
    async stop() {
      await control?.end().catch(() => {});
      await boss.stop({ graceful: true, timeout: 5000 });
    },
  };
}
