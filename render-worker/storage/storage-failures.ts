import { storageUnavailable } from "../../src/shared/storage-errors.ts";

/** A failure because storage or the work dir is full (not failing, not refusing one file). */
function isFullDisk(err: unknown): boolean {
  if (storageUnavailable(err)?.full) return true;
  return err instanceof Error && /No space left on device|Disk quota exceeded/i.test(err.message);
}

/**
 * A failure of storage or the work dir as a whole, to wait out rather than end a run for: full (the
 * disk, a quota), failing or unreachable, or a segment ffmpeg could not write whole. Whether a cut
 * segment was the disk's fault is guessed from the free space when the publisher looks, after other
 * writers may have freed it, so a run waits for any of them alike: a broadcast's pause
 * (handlers/live-full-disk.ts) and any other job's run again (runs/storage-wait.ts).
 */
export function isStorageFailure(err: unknown): boolean {
  return isFullDisk(err) || storageUnavailable(err) !== null;
}
