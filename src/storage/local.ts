import { randomBytes } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import { open, readFile, rename, rm, stat, truncate } from "node:fs/promises";
import path from "node:path";
import { makeStorageDir, storageUnavailable } from "../shared/storage-errors.ts";
import { partialUploadKey, sourceKey } from "../protocol/storage-layout.ts";
import { mediaUrl, signedUploadTarget, type UploadUrlSigning } from "./api-urls.ts";
import {
  assertValidKey,
  UploadTooLargeError,
  type ApiStorage,
  type ByteRange,
  type PublishedObjectAccess,
  type ResumableUploads,
  type UploadTarget,
  type UploadTargetOptions,
} from "./types.ts";

/** Origin of the URLs handed out and the signing of upload URLs (`PUT /uploads/{id}`). */
export type LocalStorageOptions = UploadUrlSigning;

/**
 * Storage in a local directory holding `videos/{id}/…` (the embedded default). The API serves
 * it under `/media` (src/http/media.ts) and takes uploads under `/uploads` (src/uploads/upload-put.ts),
 * which also use the local-only helpers below (offset writes, moves, ranged reads).
 */
export class LocalStorage implements ApiStorage, ResumableUploads {
  readonly root: string;
  readonly #options: LocalStorageOptions;
  readonly publishedObjects: PublishedObjectAccess = {
    servedBy: "api",
    read: (key, range) => this.read(key, range),
  };

  constructor(root: string, options: LocalStorageOptions) {
    this.root = path.resolve(root);
    this.#options = options;
  }

  pathFor(key: string): string {
    assertValidKey(key);
    return path.join(this.root, key);
  }

  async createUploadTarget(videoId: string, options: UploadTargetOptions): Promise<UploadTarget> {
    return signedUploadTarget(videoId, options, this.#options);
  }

  async write(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: { limit: number; contentType: string },
  ): Promise<number> {
    const file = this.pathFor(key);
    await makeStorageDir(path.dirname(file));
    // Written beside the destination and renamed, so readers never see part of an object.
    const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      const written = await this.#writeFile(temp, 0, body, options.limit);
      await rename(temp, file);
      return written;
    } finally {
      await rm(temp, { force: true });
    }
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

  async urlFor(key: string): Promise<string> {
    assertValidKey(key);
    return mediaUrl(this.#options.publicUrl, key);
  }

  async downloadUrlFor(key: string, filename: string): Promise<string> {
    return `${await this.urlFor(key)}?download=${encodeURIComponent(filename)}`;
  }

  async deletePrefix(prefix: string): Promise<void> {
    await rm(this.pathFor(prefix), { recursive: true, force: true });
  }

  readonly minChunkBytes = 1;

  async receivedUploadBytes(videoId: string): Promise<number> {
    return (await this.size(partialUploadKey(videoId))) ?? 0;
  }

  async writeUploadChunk(
    videoId: string,
    start: number,
    body: AsyncIterable<Uint8Array>,
    options: { limit: number },
  ): Promise<number> {
    return this.writeAt(partialUploadKey(videoId), start, body, options.limit);
  }

  async finishUpload(videoId: string): Promise<string> {
    const key = sourceKey(videoId);
    await this.move(partialUploadKey(videoId), key);
    return key;
  }

  /**
   * Writes `chunks` at byte `offset` of `key`, creating the file, and cuts anything after it.
   * When the disk is full, the bytes of this call are cut again (the file keeps what it held
   * before, or is removed if it held nothing), so a full disk is not left fuller.
   */
  async writeAt(key: string, offset: number, chunks: AsyncIterable<Uint8Array>, limit: number): Promise<number> {
    const file = this.pathFor(key);
    await makeStorageDir(path.dirname(file));
    const heldBefore = (await this.size(key)) ?? 0;
    let position: number;
    try {
      position = await this.#writeFile(file, offset, chunks, limit);
    } catch (err) {
      if (storageUnavailable(err)?.full) {
        if (heldBefore === 0) await rm(file, { force: true });
        else await truncate(file, heldBefore);
      }
      throw err;
    }
    await truncate(file, position);
    return position;
  }

  async #writeFile(file: string, offset: number, chunks: AsyncIterable<Uint8Array>, limit: number): Promise<number> {
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
    return position;
  }

  async move(from: string, to: string): Promise<void> {
    const dest = this.pathFor(to);
    await makeStorageDir(path.dirname(dest));
    await rename(this.pathFor(from), dest);
  }

  /** The object as UTF-8 text (playlists), or null when it does not exist. */
  async readText(key: string): Promise<string | null> {
    try {
      return await readFile(this.pathFor(key), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  read(key: string, range?: ByteRange): ReadStream {
    return createReadStream(this.pathFor(key), range);
  }

  readObject(key: string): AsyncIterable<Uint8Array> {
    return this.read(key);
  }
}
