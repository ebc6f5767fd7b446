import { PgBoss } from "pg-boss";
import type { WorkerEvent } from "../../src/protocol/worker-messages.ts";
import { CONTROL_NOTIFY_CHANNEL, EVENTS_QUEUE, jobQueueName } from "../../src/protocol/queues.ts";
import { databaseUnavailable } from "../../src/shared/database-errors.ts";
import { listenWithReconnect, type PostgresListener } from "../../src/shared/postgres-listener.ts";
import { log } from "../log.ts";
import { type JobWakes, listenForJobWakes, type QueueSlot } from "./job-wakes.ts";
import { createProgressSampleSender } from "./progress-samples.ts";
import type { WorkerTransport } from "./types.ts";

const QUEUE_WAIT_MS = 500;
/**
 * How long an event waits for the database to come back (a restart, a failover, a full disk) before
 * its send fails.
 */
const EVENT_SEND_PATIENCE_MS = 60_000;
const MAX_SEND_RETRY_MS = 5000;
/**
 * How often each idle slot looks at its queue of its own accord, a last resort: job-wakes.ts wakes
 * one for each job's signal, and one a second a queue for jobs no signal announces.
 */
const BACKSTOP_POLL_SECONDS = 30;
/** pg-boss's schema, the one the API creates the queues in (its default). */
const BOSS_SCHEMA = "pgboss";

/** The embedded transport (pg-boss in Postgres); the API creates the queues. */
export function createPostgresWorkerTransport(connectionString: string): WorkerTransport {
  // No LISTEN of pg-boss's own: it would wake every idle slot for each job; job-wakes.ts wakes one.
  const boss = new PgBoss({
    connectionString,
    schema: BOSS_SCHEMA,
    useListenNotify: false,
    max: 3,
    supervise: false,
    schedule: false,
  });
  boss.on("error", (err) => log.error("pg-boss error", { err }));
  const queues: string[] = [];
  let control: PostgresListener | null = null;
  let wakes: JobWakes | null = null;
  const samples = createProgressSampleSender(connectionString);

  /** Queues `events` in one statement (one commit, one NOTIFY), all or none. */
  async function publishEvents(events: WorkerEvent[]): Promise<void> {
    if (events.length === 0) return;
    // A transcode's progress is a sample while an API instance takes them (progress-samples.ts).
    if (events.length === 1 && events[0]!.type === "job.progress" && (await samples.send(events[0]!))) return;
    const jobs = events.map((data) => ({ data }));
    const giveUpAt = Date.now() + EVENT_SEND_PATIENCE_MS;
    for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, MAX_SEND_RETRY_MS)) {
      try {
        return void (await boss.insert(EVENTS_QUEUE, jobs));
      } catch (err) {
        // A database out of space (`could not extend file`) is waited out like a restart: the
        // events are the run's, and failing the run for them would burn the job's attempt.
        if (!databaseUnavailable(err) || Date.now() + delayMs > giveUpAt) throw err;
        log.warn("events not sent: database unavailable; retrying", {
          types: events.map((e) => e.type),
          err: (err as Error).message,
          retryInMs: delayMs,
        });
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  return {
    async start() {
      await boss.start();
      await samples.start();
    },
    async consumeJobs(capabilities, concurrency, handler) {
      for (const capability of capabilities) {
        const queue = jobQueueName(capability);
        while (!(await boss.getQueue(queue))) {
          log.info("waiting for the API to create the job queue", { queue });
          await new Promise((r) => setTimeout(r, QUEUE_WAIT_MS));
        }
        queues.push(queue);
        wakes ??= await listenForJobWakes({
          connectionString,
          schema: BOSS_SCHEMA,
          wake: (id) => boss.notifyWorker(id),
        });
        const slots = wakes.slotsOf(queue);
        // A pg-boss worker per slot, each claiming one job at a time, so a wake can go to one of them.
        const workOptions = { batchSize: 1, pollingIntervalSeconds: BACKSTOP_POLL_SECONDS };
        for (let i = 0; i < concurrency; i++) {
          const slot: QueueSlot = { workerId: "", busy: false, wokenAt: 0 };
          slot.workerId = await boss.work(queue, workOptions, async ([job]) => {
            slot.busy = true;
            wakes?.took(queue, slot);
            try {
              // pg-boss counts a retry each time a claim lapses (no heartbeat) or is handed back.
              const delivery = { messageId: job!.id, count: job!.retryCount + 1 };
              await handler(job!.data, job!.signal, capability, delivery);
            } finally {
              slot.busy = false;
              // Looks again at once rather than after the backstop: a job that came while every slot
              // was busy woke none.
              boss.notifyWorker(slot.workerId);
            }
          });
          slots.push(slot);
        }
      }
    },
    publishEvent: async (event, options) => {
      if (options?.sample && (await samples.send(event))) return;
      await publishEvents([event]);
    },
    publishEvents,
    async onControl(handler, onReconnected) {
      control = await listenWithReconnect({
        connectionString,
        channel: CONTROL_NOTIFY_CHANNEL,
        name: "control channel",
        log,
        onNotification(payload) {
          try {
            handler(JSON.parse(payload));
          } catch (err) {
            log.error("control message is not JSON; ignored", { err });
          }
        },
        onReconnected,
      });
    },
    async checkReachable() {
      await boss.getQueue(EVENTS_QUEUE);
    },
    async stopConsuming(capabilities) {
      const stopping = capabilities ? queues.filter((q) => capabilities.some((c) => jobQueueName(c) === q)) : queues;
      for (const q of stopping) wakes?.forget(q);
      await Promise.all(stopping.map((q) => boss.offWork(q, { wait: false })));
    },
    async stop() {
      await control?.close();
      await wakes?.close();
      await samples.stop();
      await boss.stop({ graceful: true, timeout: 5000 });
    },
  };
}
