import { statfs } from "node:fs/promises";
import path from "node:path";

/** Below this much free space local media storage counts as full (the worker's work dir's bound too). */
const MIN_FREE_BYTES = 1024 * 1024;

/**
 * Whether local media storage (`{dataDir}/videos`, or the data dir before it exists) is full: a
 * broadcast started now could publish nothing. Cloud stores say they are full only when written to.
 */
export async function localMediaStorageFull(dataDir: string): Promise<boolean> {
  const fs =
    (await statfs(path.join(dataDir, "videos")).catch(() => null)) ?? (await statfs(dataDir).catch(() => null));
  return fs !== null && fs.bavail * fs.bsize < MIN_FREE_BYTES;
}
