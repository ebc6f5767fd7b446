import { log } from "../log.ts";

/** Postgres's SQLSTATE for a statement cancelled to end a deadlock. */
const DEADLOCK_DETECTED = "40P01";

/**
 * Runs `write` again when Postgres picked it as a deadlock's victim, up to `attempts` tries in all.
 * Only for a write that is one statement outside a transaction (or a whole transaction): Postgres
 * rolled it back whole, so running it again applies it once. Statements that keep one lock order
 * never deadlock with each other; this covers those that meet a writer keeping another order (an
 * operator's statement, a join's row order). `what` names the write in the log line.
 */
export async function retryDeadlockVictim<T>(what: string, write: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if ((err as { code?: string }).code !== DEADLOCK_DETECTED || attempt >= attempts) throw err;
      log.info(`${what} was a deadlock's victim; running it again`, { attempt });
    }
  }
}
