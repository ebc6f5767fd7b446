import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";

/** A write-once object exists with other bytes than the ones a run would publish under its key. */
export class ObjectExistsError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`Storage object ${key} was already published with other bytes; it is never replaced`);
    this.name = "ObjectExistsError";
    this.key = key;
  }
}

async function sha256Of(stream: Readable | AsyncIterable<Uint8Array>): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

/**
 * Settles a write-once upload the store refused because `key` exists: the same bytes (a retried
 * or repeated upload) are fine, anything else throws ObjectExistsError.
 */
export async function assertSameBytes(
  key: string,
  file: string,
  existing: Readable | AsyncIterable<Uint8Array>,
): Promise<void> {
  const [ours, theirs] = await Promise.all([sha256Of(createReadStream(file)), sha256Of(existing)]);
  if (ours !== theirs) throw new ObjectExistsError(key);
}
