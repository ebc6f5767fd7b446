import type { Db } from "./client.ts";

/** How often a process measures again how far its clock is from Postgres's. */
const REMEASURE_MS = 60_000;

/**
 * Postgres's clock as this process reads it, in ms since the epoch: times that API instances write
 * for each other to compare (a split transcode's encoder figures) are in it, so instances whose own
 * clocks differ still agree. How far `localClock` is from it is measured once a minute (a round trip
 * to `clock_timestamp()`, taken at its middle); between, it is `localClock` plus that offset.
 */
export function createDbClock(db: Db, localClock: () => number): () => Promise<number> {
  let offset = 0;
  let measuredAt = Number.NEGATIVE_INFINITY;
  let measuring: Promise<void> | null = null;
  async function measure(): Promise<void> {
    const sent = localClock();
    const [row] = await db.$queryRaw<{ now: Date }[]>`SELECT clock_timestamp() AS now`;
    const received = localClock();
    offset = row!.now.getTime() - (sent + received) / 2;
    measuredAt = received;
  }
  return async () => {
    if (localClock() - measuredAt >= REMEASURE_MS) {
      measuring ??= measure().finally(() => {
        measuring = null;
      });
      await measuring;
    }
    return localClock() + offset;
  };
}
