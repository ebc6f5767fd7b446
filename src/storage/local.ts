import { createReadStream, type ReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat, truncate } from "node:fs/promises";
import path from "node:path";

/** Storage keys are relative, slash-separated and never climb out of the root. */
export function assertValidKey(key: string): void {
  if (!key || key.startsWith("/") || key.includes("\\") || key.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new Error(`Invalid storage key: ${JSON.stringify(key)}`);
  }
}

/**
 * The API's view of local storage: a directory holding `videos/{id}/…` (see ARCHITECTURE.md,
 * "Storage layout"). Workers write media with their own adapter; the API receives uploads,
 * serves media and deletes it.
 */
export class LocalStorage {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  pathFor(key: string): string {
    assertValidKey(key);
    return path.join(this.root, key);
  }

  /** Size in bytes, or null when the object does not exist. */
  async size(key: string): Promise<number | null> {
    try {
      const s = await stat(this.pathFor(key));
      return s.isFile() ? s.size : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Writes `chunk` at byte `offset` of `key`, creating the file, and cuts anything after it. */
  async writeAt(key: string, offset: number, chunks: AsyncIterable<Uint8Array>, limit: number): Promise<number> {
    const file = this.pathFor(key);
    await mkdir(path.dirname(file), { recursive: true });
    const handle = await open(file, "a+").then(async (h) => {
      await h.close();
      return open(file, "r+");
    });
    let position = offset;
    try {
      for await (const chunk of chunks) {
        if (position + chunk.byteLength > limit) throw new UploadTooLargeError(limit);
        await handle.write(chunk, 0, chunk.byteLength, position);
        position += chunk.byteLength;
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await truncate(file, position);
    return position;
  }

  async move(from: string, to: string): Promise<void> {
    const dest = this.pathFor(to);
    await mkdir(path.dirname(dest), { recursive: true });
    await rename(this.pathFor(from), dest);
  }

  read(key: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.pathFor(key), range);
  }

  async deletePrefix(prefix: string): Promise<void> {
    await rm(this.pathFor(prefix), { recursive: true, force: true });
  }
}

export class UploadTooLargeError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`Upload exceeds the limit of ${limit} bytes`);
    this.name = "UploadTooLargeError";
    this.limit = limit;
  }
}
