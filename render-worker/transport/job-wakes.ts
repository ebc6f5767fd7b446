import { createHash } from "node:crypto";
import { listenWithReconnect, type PostgresListener } from "../../src/shared/postgres-listener.ts";
import { log } from "../log.ts";

/**
 * One slot of a job queue: a pg-boss worker of its own (`boss.work(…, { localConcurrency: 1 })`),
 * busy while its handler runs.
 */
export interface QueueSlot {
  workerId: string;
  busy: boolean;
  /** When a wake last went to it; a slot woken this recently is passed over for an idle one. */
  wokenAt: number;
}

/** How long a woken slot has to claim its job before a new wake may go to it again. */
const WAKE_GRACE_MS = 1000;

/**
 * Wakes one idle slot of this process per job published, where pg-boss's own LISTEN wakes every
 * idle slot of the queue: with N idle slots a job cost N fetches, N − 1 of them finding nothing
 * (about 400 a second at 250,000 videos a day in `bench:control-plane`, the largest share of the
 * fleet's Postgres CPU; docs/performance.md, "One wake a job"). So the worker's pg-boss does not
 * LISTEN; this listens on pg-boss's channel instead, which every job insert into a notify-enabled
 * queue signals with the queue's name, and wakes one slot a signal. Every process still hears
 * every signal: over this transport the fleet's wakes cost one fetch per job per process with an
 * idle slot, which is why a fleet of more than a few dozen processes belongs on Pub/Sub
 * (deploy/CAPACITY.md). A signal lost while the listener is down is made up on reconnecting (every
 * slot fetches once) and, meanwhile, by each slot's backstop poll.
 */
export interface JobWakes {
  /** The slots of `queue`, to be filled as they are registered; woken by this from then on. */
  slotsOf(queue: string): QueueSlot[];
  close(): Promise<void>;
}

export async function listenForJobWakes(options: {
  connectionString: string;
  /** pg-boss's schema, from which its NOTIFY channel's name is derived. */
  schema: string;
  wake: (workerId: string) => void;
}): Promise<JobWakes> {
  const slots = new Map<string, QueueSlot[]>();
  const channel = bossChannel(options.schema);
  const wakeOne = (queue: string): void => {
    const of = slots.get(queue);
    if (!of) return;
    const now = Date.now();
    const idle = of.filter((s) => !s.busy);
    const slot = idle.find((s) => now - s.wokenAt >= WAKE_GRACE_MS) ?? idle.sort((a, b) => a.wokenAt - b.wokenAt)[0];
    if (!slot) return;
    slot.wokenAt = now;
    options.wake(slot.workerId);
  };
  const listener: PostgresListener = await listenWithReconnect({
    connectionString: options.connectionString,
    channel,
    name: "job wakes",
    log,
    onNotification: wakeOne,
    onReconnected() {
      for (const of of slots.values()) for (const slot of of) if (!slot.busy) options.wake(slot.workerId);
    },
  });
  return {
    slotsOf(queue) {
      const of = slots.get(queue) ?? [];
      slots.set(queue, of);
      return of;
    },
    close: () => listener.close(),
  };
}

/**
 * pg-boss's NOTIFY channel for a schema, named as pg-boss names it (`notifyChannelSql` in its plans:
 * `'pgboss_' || left(encode(sha224(schema), 'hex'), 24)`). Should a release change it, no signal
 * arrives and jobs wait for the backstop poll: `test/worker/job-wakes.test.ts` fails.
 */
export function bossChannel(schema: string): string {
  return `pgboss_${createHash("sha224").update(schema).digest("hex").slice(0, 24)}`;
}
