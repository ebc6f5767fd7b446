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
  /** Whether that wake was the poll's rather than a job's signal. */
  polled?: boolean;
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
 * slot fetches once).
 *
 * What no signal announces: a job pg-boss puts back (a claim that lapsed, a job handed back at a
 * worker's stop, a failure it retries) is due once its retry delay has passed. For those, every
 * `pollMs` one idle slot of each queue looks (one fetch a second a process, where each slot polled
 * before), and a slot that a poll's wake found a job for wakes another, so a backlog drains.
 */
export interface JobWakes {
  /** The slots of `queue`, to be filled as they are registered; woken by this from then on. */
  slotsOf(queue: string): QueueSlot[];
  /** `slot` took a job: after a poll's wake, another idle slot looks too. */
  took(queue: string, slot: QueueSlot): void;
  /** The slots of `queue` are gone (it is no longer consumed): none is woken again. */
  forget(queue: string): void;
  close(): Promise<void>;
}

export async function listenForJobWakes(options: {
  connectionString: string;
  /** pg-boss's schema, from which its NOTIFY channel's name is derived. */
  schema: string;
  wake: (workerId: string) => void;
  /** How often one idle slot of each queue looks unwoken (1000). */
  pollMs?: number;
}): Promise<JobWakes> {
  const slots = new Map<string, QueueSlot[]>();
  const channel = bossChannel(options.schema);
  const wakeOne = (queue: string, polled = false): void => {
    const of = slots.get(queue);
    if (!of) return;
    const now = Date.now();
    const idle = of.filter((s) => !s.busy);
    const slot = idle.find((s) => now - s.wokenAt >= WAKE_GRACE_MS) ?? idle.sort((a, b) => a.wokenAt - b.wokenAt)[0];
    if (!slot) return;
    slot.wokenAt = now;
    slot.polled = polled;
    options.wake(slot.workerId);
  };
  const listener: PostgresListener = await listenWithReconnect({
    connectionString: options.connectionString,
    channel,
    name: "job wakes",
    log,
    onNotification: (queue) => wakeOne(queue),
    onReconnected() {
      for (const of of slots.values()) for (const slot of of) if (!slot.busy) options.wake(slot.workerId);
    },
  });
  // Once the listener is in place (a first connect that fails leaves nothing running).
  const poll = setInterval(() => {
    for (const queue of slots.keys()) wakeOne(queue, true);
  }, options.pollMs ?? 1000);
  poll.unref();
  return {
    slotsOf(queue) {
      const of = slots.get(queue) ?? [];
      slots.set(queue, of);
      return of;
    },
    took(queue, slot) {
      if (!slot.polled) return;
      slot.polled = false;
      wakeOne(queue, true);
    },
    forget(queue) {
      slots.delete(queue);
    },
    async close() {
      clearInterval(poll);
      await listener.close();
    },
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
