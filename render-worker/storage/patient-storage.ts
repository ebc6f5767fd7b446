import { setTimeout as sleep } from "node:timers/promises";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { log } from "../log.ts";
import type { WorkerStorage } from "./types.ts";

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

/** Errors a storage call failed with after its wait ran out: the run waits for them no more. */
const waitedOut = new WeakSet<object>();

/** Whether `err` (or what it wraps) is a storage call's failure after it waited its patience out. */
export function storageWaitedOut(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === "object" && e !== null && depth < 5; depth++) {
    if (waitedOut.has(e)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * `storage` for one run, waiting out an outage or a full store: a call that fails because storage is
 * unreachable, failing or full (not a refusal of that object) is tried again with back-off (1 s
 * doubling to 30 s) for up to `patienceSeconds`, then fails the attempt as before. The run keeps its
 * place and what it published; a cancel ends the wait.
 */
export function patientStorage(
  storage: WorkerStorage,
  patienceSeconds: number,
  signal: AbortSignal,
  /**
   * Whether a full store is waited out too. Not for a live broadcast's run: it pauses the broadcast
   * itself on a full disk, for LIVE_FULL_DISK_PATIENCE_SECONDS, and ends it with what was published
   * (render-worker/handlers/live-full-disk.ts); waiting inside a storage call would hide the full
   * disk from it.
   */
  { waitWhenFull = true }: { waitWhenFull?: boolean } = {},
): WorkerStorage {
  async function patiently<T>(operation: string, key: string, call: () => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + patienceSeconds * 1000;
    for (let delayMs = FIRST_RETRY_MS; ; delayMs = Math.min(delayMs * 2, MAX_RETRY_MS)) {
      try {
        return await call();
      } catch (err) {
        const unavailable = storageUnavailable(err);
        if (!unavailable || (unavailable.full && !waitWhenFull) || signal.aborted) throw err;
        if (Date.now() + delayMs > giveUpAt) {
          if (typeof err === "object" && err !== null) waitedOut.add(err);
          throw err;
        }
        log.warn(unavailable.full ? "storage full; retrying" : "storage unavailable; retrying", {
          operation,
          key,
          err: unavailable.message,
          retryInMs: delayMs,
          givingUpInSeconds: Math.round((giveUpAt - Date.now()) / 1000),
        });
        await sleep(delayMs, undefined, { signal }).catch(() => {
          throw err;
        });
      }
    }
  }
  return {
    inputFor: (key) => patiently("inputFor", key, () => storage.inputFor(key)),
    upload: (key, file, opts) => patiently("upload", key, () => storage.upload(key, file, opts)),
    uploadOnce: (key, file, opts) => patiently("uploadOnce", key, () => storage.uploadOnce(key, file, opts)),
    list: (prefix) => patiently("list", prefix, () => storage.list(prefix)),
    download: (key, file) => patiently("download", key, () => storage.download(key, file)),
    readText: (key) => patiently("readText", key, () => storage.readText(key)),
  };
}
