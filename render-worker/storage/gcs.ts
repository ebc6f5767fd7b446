import { stat } from "node:fs/promises";
import type { Storage } from "@google-cloud/storage";
import { createGcsClient } from "../../src/shared/gcs-client.ts";
import { assertValidKey } from "./local.ts";
import type { UploadOptions, WorkerStorage } from "./types.ts";
import { assertSameBytes } from "./write-once.ts";

/** Above this, uploads use a resumable session (retries resume instead of starting over). */
const RESUMABLE_THRESHOLD_BYTES = 16 * 1024 * 1024;

export interface GcsWorkerStorageOptions {
  bucket: string;
  /** Lifetime of the signed URL ffmpeg reads a source from: the longest a job may read it. */
  signedUrlTtlSeconds: number;
  /** Origin of a GCS-compatible server (GCS_API_ENDPOINT, an emulator), or undefined for Google. */
  apiEndpoint?: string;
  /**
   * Default: `createGcsClient(apiEndpoint)`, retrying every request: each write replaces a whole
   * object with the same content.
   */
  client?: Storage;
}

/**
 * Storage in a GCS bucket. ffmpeg streams a source over HTTPS from a V4 signed URL (seeking
 * with Range requests) instead of the worker downloading it first; published files are
 * uploaded with their Content-Type and Cache-Control, which GCS serves to players.
 */
export function createGcsWorkerStorage(options: GcsWorkerStorageOptions): WorkerStorage {
  const bucket = (options.client ?? createGcsClient(options.apiEndpoint, { retryAlways: true })).bucket(options.bucket);

  return {
    async inputFor(key) {
      assertValidKey(key);
      const file = bucket.file(key);
      const [exists] = await file.exists();
      if (!exists) throw new Error(`Storage object ${key} does not exist`);
      const [url] = await file.getSignedUrl({
        version: "v4",
        action: "read",
        expires: Date.now() + options.signedUrlTtlSeconds * 1000,
      });
      return url;
    },

    async upload(key, file, opts: UploadOptions) {
      assertValidKey(key);
      const { size } = await stat(file);
      await bucket.upload(file, {
        destination: key,
        resumable: size > RESUMABLE_THRESHOLD_BYTES,
        metadata: { contentType: opts.contentType, cacheControl: opts.cacheControl },
      });
    },

    async uploadOnce(key, file, opts: UploadOptions) {
      assertValidKey(key);
      const { size } = await stat(file);
      try {
        // Generation 0: the object must not exist. A retry of a write that went through is
        // refused too, and then finds its own bytes.
        await bucket.upload(file, {
          destination: key,
          resumable: size > RESUMABLE_THRESHOLD_BYTES,
          metadata: { contentType: opts.contentType, cacheControl: opts.cacheControl },
          preconditionOpts: { ifGenerationMatch: 0 },
        });
      } catch (err) {
        if ((err as { code?: number }).code !== 412) throw err;
        await assertSameBytes(key, file, bucket.file(key).createReadStream());
      }
    },

    async list(prefix) {
      const [files] = await bucket.getFiles({ prefix, autoPaginate: true });
      return files.map((f) => ({ key: f.name, bytes: Number(f.metadata.size) }));
    },

    async download(key, file) {
      assertValidKey(key);
      await bucket.file(key).download({ destination: file });
    },

    async readText(key) {
      assertValidKey(key);
      try {
        const [contents] = await bucket.file(key).download();
        return contents.toString("utf8");
      } catch (err) {
        if ((err as { code?: number }).code === 404) return null;
        throw err;
      }
    },
  };
}
