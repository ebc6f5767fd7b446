import { setTimeout as sleep } from "node:timers/promises";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { log } from "../log.ts";
import type { WorkerStorage } from "./types.ts";

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

/**
 * `storage` for one run, waiting out an outage: a call that fails because storage is unreachable or
 * failing (not full, not a refusal of that object) is tried again with back-off (1 s doubling to
 * 30 s) for up to `patienceSeconds`, then fails the attempt as before. The run keeps its place and
 * what it published; a cancel ends the wait.
 */
export function patientStorage(storage: WorkerStorage, patienceSeconds: number, signal: AbortSignal): WorkerStorage {
  async function patiently<T>(operation: string, key: string, call: () => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + patienceSeconds * 1000;
    for (let delayMs = FIRST_RETRY_MS; ; delayMs = Math.min(delayMs * 2, MAX_RETRY_MS)) {
      try {
        return await call();
      } catch (err) {
        const unavailable = storageUnavailable(err);
        if (!unavailable || unavailable.full || signal.aborted || Date.now() + delayMs > giveUpAt) throw err;
        log.warn("storage unavailable; retrying", {
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
