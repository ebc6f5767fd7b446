import pg from "pg";
import { PgBoss } from "pg-boss";
import { Capability, type ControlMessage } from "../protocol/worker-messages.ts";
import type { JobMessage } from "../protocol/job-message.ts";
import { CONTROL_NOTIFY_CHANNEL, EVENTS_QUEUE, jobQueueName } from "../protocol/queues.ts";
import { log } from "../log.ts";
import { takeProgressSamples } from "./progress-samples.ts";
import type { ApiTransport } from "./types.ts";

export interface PostgresTransportOptions {
  connectionString: string;
  /** A worker that stops heartbeating for this long loses its job to another worker. */
  stallSeconds: number;
}

/**
 * The embedded transport: job and event queues in Postgres, run by pg-boss (schema `pgboss`).
 * Job attempts and retries belong to the API (table "Job"); pg-boss only redelivers a message
 * whose worker died (no heartbeat for `stallSeconds`).
 */
export function createPostgresTransport(options: PostgresTransportOptions): ApiTransport {
  // The monitor pass of supervision is what fails a job whose heartbeat stopped: a job whose worker
  // stalled, and a batch of events claimed by an API that died. Every few seconds, so that batch is
  // applied within about EVENT_CLAIM_HEARTBEAT_SECONDS + 5 s.
  const checkSeconds = Math.max(1, Math.min(MONITOR_INTERVAL_SECONDS, Math.floor(options.stallSeconds / 2)));
  const boss = new PgBoss({
    connectionString: options.connectionString,
    useListenNotify: true,
    max: 4,
    superviseIntervalSeconds: checkSeconds,
    monitorIntervalSeconds: checkSeconds,
  });
  boss.on("error", (err) => log.error("pg-boss error", { err }));
  const control = new pg.Pool({ connectionString: options.connectionString, max: 1, connectionTimeoutMillis: 10_000 });
  // An idle connection the server ends (a restart, a failover) is dropped; the next NOTIFY opens another.
  control.on("error", (err) => log.warn("control connection lost", { err: err.message }));
  let samples: { close(): Promise<void> } | null = null;

  return {
    async start() {
      await boss.start();
      for (const capability of Capability.options) {
        await ensureQueue(boss, jobQueueName(capability), {
          heartbeatSeconds: Math.max(10, options.stallSeconds),
          retryLimit: 10,
          retryDelay: 1,
          retryBackoff: true,
          expireInSeconds: 6 * 3600,
          notify: true,
        });
      }
      await ensureQueue(boss, EVENTS_QUEUE, {
        retryLimit: 20,
        retryDelay: 1,
        retryBackoff: true,
        notify: true,
        heartbeatSeconds: EVENT_CLAIM_HEARTBEAT_SECONDS,
      });
    },
    async publishJob(capability: Capability, message: JobMessage) {
      await boss.send(jobQueueName(capability), message);
    },
    async withdrawJob(capability: Capability, messageId: string) {
      await boss.cancel(jobQueueName(capability), messageId);
    },
    async publishControl(message: ControlMessage) {
      await control.query("SELECT pg_notify($1, $2)", [CONTROL_NOTIFY_CHANNEL, JSON.stringify(message)]);
    },
    async consumeEvents(handler) {
      const workOptions = { batchSize: 100, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 5 };
      await boss.work(EVENTS_QUEUE, workOptions, async (jobs) => {
        await handler(jobs.map((j) => j.data));
      });
      // The fleet's progress comes as NOTIFY samples, not queue rows (progress-samples.ts).
      samples = await takeProgressSamples({ connectionString: options.connectionString, log, apply: handler });
    },
    async checkReachable() {
      await boss.getQueue(EVENTS_QUEUE);
    },
    async stop() {
      // First, so another instance takes the samples while this one finishes its batches.
      await samples?.close();
      await boss.stop({ graceful: true, timeout: 10_000 });
      await control.end();
    },
  };
}

type QueueOptions = NonNullable<Parameters<PgBoss["createQueue"]>[1]>;

/**
 * A batch of events is claimed with a heartbeat (pg-boss's `work()` refreshes it while the handler
 * runs), so a batch claimed by an API that died goes back to the queue this many seconds later
 * instead of after pg-boss's 15-minute expiry. pg-boss's minimum.
 */
const EVENT_CLAIM_HEARTBEAT_SECONDS = 10;
const MONITOR_INTERVAL_SECONDS = 4;

async function ensureQueue(boss: PgBoss, name: string, queueOptions: QueueOptions): Promise<void> {
  const existing = await boss.getQueue(name);
  if (existing) {
    // A queue created by an earlier release keeps its options until told otherwise.
    if ((existing.heartbeatSeconds ?? undefined) !== queueOptions.heartbeatSeconds)
      await boss.updateQueue(name, { heartbeatSeconds: queueOptions.heartbeatSeconds ?? null });
    return;
  }
  try {
    await boss.createQueue(name, queueOptions);
  } catch (err) {
    // Another instance created it between the check and here.
    if (!(await boss.getQueue(name))) throw err;
  }
}
