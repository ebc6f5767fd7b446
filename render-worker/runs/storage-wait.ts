import { mkdir, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { log } from "../log.ts";
import { storageWaitedOut } from "../storage/patient-storage.ts";
import { isStorageFailure } from "../storage/storage-failures.ts";

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

/**
 * A failure to wait out rather than fail the attempt for: a full disk or quota (the work dir's or
 * storage's) or storage failing outside a storage call (a segment ffmpeg could not write whole),
 * unless a storage call already waited its patience out for it.
 */
function worthWaitingFor(err: unknown): boolean {
  return isStorageFailure(err) && !storageWaitedOut(err);
}

/**
 * Makes the run's work dir and runs `run` (a job's handler) in it and, when either fails on a full
 * disk or failing storage, does it again once there may be room, as a storage outage is waited out
 * (patient-storage.ts): its work dir emptied (its own files may be what filled the disk), after 1 s doubling to 30 s, for up to
 * `patienceSeconds` from the first such failure. The run keeps its attempt and id: a handler run
 * again resumes from what it published, as one taking over a delivery does. A try that ran longer
 * than the longest pause before failing again starts a new wait. A cancel ends the wait.
 */
export async function waitingOutStorage(
  run: () => Promise<void>,
  opts: { patienceSeconds: number; signal: AbortSignal; workDir: string },
): Promise<void> {
  let giveUpAt = 0;
  let delayMs = FIRST_RETRY_MS;
  for (;;) {
    const triedAt = Date.now();
    try {
      // Made inside the try, the first time too: on a full disk that fails as the run would.
      await mkdir(opts.workDir, { recursive: true, mode: 0o700 });
      return await run();
    } catch (err) {
      if (opts.patienceSeconds <= 0 || opts.signal.aborted || !worthWaitingFor(err)) throw err;
      const now = Date.now();
      if (now - triedAt > MAX_RETRY_MS || giveUpAt === 0) {
        giveUpAt = now + opts.patienceSeconds * 1000;
        delayMs = FIRST_RETRY_MS;
      }
      if (now + delayMs > giveUpAt) throw err;
      log.warn("storage or the work dir is full or failing; running the job again once there may be room", {
        err: (err as Error).message,
        retryInMs: delayMs,
        givingUpInSeconds: Math.round((giveUpAt - now) / 1000),
      });
      await rm(opts.workDir, { recursive: true, force: true });
      await sleep(delayMs, undefined, { signal: opts.signal }).catch(() => {
        throw err;
      });
      delayMs = Math.min(delayMs * 2, MAX_RETRY_MS);
    }
  }
}
