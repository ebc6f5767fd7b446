import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Bucket, Storage } from "@google-cloud/storage";
import { createGcsClient } from "../shared/gcs-client.ts";
import { sourceKey } from "../protocol/storage-layout.ts";
import { SignedUrlCache, servedFromBucket } from "./signed-url-cache.ts";
import {
  assertValidKey,
  UploadTooLargeError,
  type ApiStorage,
  type PublishedObjectAccess,
  type UploadTarget,
  type UploadTargetOptions,
} from "./types.ts";

/** GCS keeps a resumable upload session for a week. */
const SESSION_LIFETIME_MS = 7 * 24 * 3600 * 1000;
const DELETE_CONCURRENCY = 16;

export interface GcsStorageOptions {
  bucket: string;
  /** Origin for the `/media/` playlist URLs handed out, or "" for URLs relative to the API's origin. */
  publicUrl: string;
  /** Lifetime of signed read URLs (at least three quarters of it is left when one is handed out). */
  signedUrlTtlSeconds: number;
  /** Origin of a GCS-compatible server (GCS_API_ENDPOINT, an emulator), or undefined for Google. */
  apiEndpoint?: string;
  /** Default: `createGcsClient(apiEndpoint)`. */
  client?: Storage;
}

const isNotFound = (err: unknown) => (err as { code?: unknown }).code === 404;

/**
 * Google Cloud Storage for the API. Uploads go straight from the client to GCS through a
 * resumable upload session; published objects are private and read through V4 signed URLs,
 * except playlists, which the API serves under `/media/` with their segment URIs signed
 * (src/http/media.ts), because relative URIs in a playlist behind a signed URL would not be signed.
 */
export class GcsStorage implements ApiStorage {
  readonly bucket: Bucket;
  readonly signedUrlTtlSeconds: number;
  readonly #publicUrl: string;
  readonly #signed: SignedUrlCache;

  constructor(options: GcsStorageOptions) {
    this.bucket = (options.client ?? createGcsClient(options.apiEndpoint)).bucket(options.bucket);
    this.signedUrlTtlSeconds = options.signedUrlTtlSeconds;
    this.#publicUrl = options.publicUrl;
    this.#signed = new SignedUrlCache(options.signedUrlTtlSeconds, (key, window) =>
      this.bucket
        .file(key)
        .getSignedUrl({
          version: "v4",
          action: "read",
          accessibleAt: window.start,
          expires: window.start.getTime() + window.expiresInSeconds * 1000,
        })
        .then(([signed]) => signed),
    );
  }

  async createUploadTarget(videoId: string, options: UploadTargetOptions): Promise<UploadTarget> {
    const key = sourceKey(videoId);
    assertValidKey(key);
    const [url] = await this.bucket.file(key).createResumableUpload({
      // GCS answers CORS on the session URI for the origin that created it.
      origin: options.origin ?? undefined,
      // Sent as X-Upload-Content-Length: GCS then takes exactly that many bytes. A session has
      // no "at most" limit, so an undeclared size is checked when the upload completes.
      metadata: options.size !== null ? { contentLength: options.size } : {},
      // Never replaces a source that is already there.
      preconditionOpts: { ifGenerationMatch: 0 },
    });
    return { url, expiresAt: new Date(Date.now() + SESSION_LIFETIME_MS) };
  }

  async write(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: { limit: number; contentType: string },
  ): Promise<number> {
    assertValidKey(key);
    let written = 0;
    async function* limited() {
      for await (const chunk of body) {
        written += chunk.byteLength;
        if (written > options.limit) throw new UploadTooLargeError(options.limit);
        yield chunk;
      }
    }
    // A single-request upload: when the source fails, the request is aborted and no object is made.
    await pipeline(
      Readable.from(limited()),
      this.bucket.file(key).createWriteStream({ resumable: false, metadata: { contentType: options.contentType } }),
    );
    return written;
  }

  async size(key: string): Promise<number | null> {
    assertValidKey(key);
    try {
      const [metadata] = await this.bucket.file(key).getMetadata();
      return Number(metadata.size);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async urlFor(key: string): Promise<string> {
    assertValidKey(key);
    return this.#signed.clientUrlFor(key, this.#publicUrl);
  }

  /** A V4 signed GET URL whose response says `Content-Disposition: attachment` (not cached: one per file name). */
  async downloadUrlFor(key: string, filename: string): Promise<string> {
    assertValidKey(key);
    const [url] = await this.bucket.file(key).getSignedUrl({
      version: "v4",
      action: "read",
      expires: Date.now() + this.signedUrlTtlSeconds * 1000,
      responseDisposition: `attachment; filename="${filename}"`,
    });
    return url;
  }

  /** A V4 signed GET URL, issued per time window (SignedUrlCache). */
  signedReadUrl(key: string, now = Date.now()): Promise<string> {
    assertValidKey(key);
    return this.#signed.urlFor(key, now);
  }

  get publishedObjects(): PublishedObjectAccess {
    return servedFromBucket(this);
  }

  readObject(key: string): AsyncIterable<Uint8Array> {
    assertValidKey(key);
    return this.#signed.read(key);
  }

  /** The text of a stored object, or null when it does not exist. */
  async readText(key: string): Promise<string | null> {
    assertValidKey(key);
    try {
      const [contents] = await this.bucket.file(key).download();
      return contents.toString("utf8");
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    assertValidKey(prefix);
    const [files] = await this.bucket.getFiles({ prefix: `${prefix}/` });
    // Not bucket.deleteFiles: it shares one options object between deletes and the first one
    // consumes `ignoreNotFound`, so a concurrent delete of the same video would fail it.
    for (let i = 0; i < files.length; i += DELETE_CONCURRENCY) {
      await Promise.all(files.slice(i, i + DELETE_CONCURRENCY).map((f) => f.delete({ ignoreNotFound: true })));
    }
  }
}
