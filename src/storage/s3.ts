import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  paginateListObjectsV2,
  type Part,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createS3Client, type S3ConnectionOptions } from "../shared/s3-client.ts";
import { storageUnavailable } from "../shared/storage-errors.ts";
import { partialUploadKey, sourceKey } from "../protocol/storage-layout.ts";
import { signedUploadTarget, type UploadUrlSigning } from "./api-urls.ts";
import { SignedUrlCache, servedFromBucket } from "./signed-url-cache.ts";
import {
  assertValidKey,
  UploadTooLargeError,
  type ApiStorage,
  type PublishedObjectAccess,
  type ResumableUploads,
  type UploadTarget,
  type UploadTargetOptions,
} from "./types.ts";

const MIB = 1024 * 1024;
/** S3 wants every part but the last to be at least 5 MiB, and at most 10,000 parts. */
const MIN_UPLOAD_PART_BYTES = 8 * MIB;
const MAX_PARTS = 10_000;
const DELETE_BATCH = 1000;
/** A request must bring this much, unless it ends the file (GCS wants multiples of the same). */
const MIN_CHUNK_BYTES = 256 * 1024;

/** Playlists and uploads (`PUT /uploads/{id}`) go through the API, at `publicUrl`. */
export interface S3StorageOptions extends S3ConnectionOptions, UploadUrlSigning {
  bucket: string;
  /** Lifetime of presigned read URLs (at least three quarters of it is left when one is handed out). */
  signedUrlTtlSeconds: number;
  /** Largest upload (MAX_UPLOAD_BYTES): sets the part size, so that it fits in 10,000 parts. */
  maxUploadBytes: number;
  /** Default: `createS3Client(options)`. */
  client?: S3Client;
}

const isNotFound = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === "NotFound" || e.name === "NoSuchKey" || e.$metadata?.httpStatusCode === 404;
};

interface Piece {
  key: string;
  offset: number;
  size: number;
}

interface HeldUpload {
  uploadId: string | null;
  parts: Part[];
  partBytes: number;
  committedBytes: number;
  /** Bytes held past the parts, fewer than a part, one object per request that brought them. */
  pieces: Piece[];
  pieceBytes: number;
  /** Every piece object, those already in a part too. */
  allPieceKeys: string[];
}

/**
 * An S3-compatible bucket (S3, R2, Spaces, MinIO) for the API: objects private, read through presigned URLs but
 * playlists, which the API serves with presigned segment URIs (src/http/media.ts). Uploads keep local storage's
 * resumable `PUT`: bytes go into one multipart upload in fixed parts, the remainder held in write-once pieces
 * (`…/source/upload.part/{offset}`) so small chunks are never copied again and again, and a crash between the
 * two counts no byte twice. The source object exists only once the last byte is in.
 */
export class S3Storage implements ApiStorage, ResumableUploads {
  readonly minChunkBytes = MIN_CHUNK_BYTES;
  readonly client: S3Client;
  readonly bucket: string;
  readonly signedUrlTtlSeconds: number;
  readonly #options: S3StorageOptions;
  readonly #partBytes: number;
  readonly #signed: SignedUrlCache;

  constructor(options: S3StorageOptions) {
    this.client = options.client ?? createS3Client(options);
    this.bucket = options.bucket;
    this.signedUrlTtlSeconds = options.signedUrlTtlSeconds;
    this.#options = options;
    this.#partBytes = Math.max(MIN_UPLOAD_PART_BYTES, Math.ceil(options.maxUploadBytes / MAX_PARTS / MIB) * MIB);
    this.#signed = new SignedUrlCache(options.signedUrlTtlSeconds, (key, window) =>
      getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
        signingDate: window.start,
        expiresIn: window.expiresInSeconds,
      }),
    );
  }

  async createUploadTarget(videoId: string, options: UploadTargetOptions): Promise<UploadTarget> {
    return signedUploadTarget(videoId, options, this.#options);
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
    // A single PUT, or a multipart upload that is aborted when the source fails: no object is
    // made or replaced unless every byte arrived.
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: Readable.from(limited()), ContentType: options.contentType },
      partSize: MIN_UPLOAD_PART_BYTES,
      queueSize: 2,
    });
    try {
      await upload.done();
    } catch (err) {
      if (written > options.limit) throw new UploadTooLargeError(options.limit);
      throw err;
    }
    return written;
  }

  async size(key: string): Promise<number | null> {
    assertValidKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async urlFor(key: string): Promise<string> {
    assertValidKey(key);
    return this.#signed.clientUrlFor(key, this.#options.publicUrl);
  }

  /** A presigned GET URL whose response says `Content-Disposition: attachment` (not cached: one per file name). */
  downloadUrlFor(key: string, filename: string): Promise<string> {
    assertValidKey(key);
    const disposition = `attachment; filename="${filename}"`;
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: key, ResponseContentDisposition: disposition });
    return getSignedUrl(this.client, command, { expiresIn: this.signedUrlTtlSeconds });
  }

  /** A presigned GET URL, issued per time window (SignedUrlCache). */
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
      const object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await object.Body!.transformToString("utf8");
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    assertValidKey(prefix);
    const Prefix = `${prefix}/`;
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix })) {
      await this.#deleteKeys((page.Contents ?? []).map((o) => o.Key!));
    }
    // Parts of an unfinished upload are stored (and billed) until the upload is aborted.
    const uploads = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix }));
    for (const u of uploads.Uploads ?? []) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key!, UploadId: u.UploadId! }))
        .catch((err) => {
          if (!isNotFound(err)) throw err;
        });
    }
  }

  async receivedUploadBytes(videoId: string): Promise<number> {
    const held = await this.#heldUpload(videoId);
    return held.committedBytes + held.pieceBytes;
  }

  async writeUploadChunk(
    videoId: string,
    start: number,
    body: AsyncIterable<Uint8Array>,
    options: { limit: number; isComplete(held: number): boolean },
  ): Promise<number> {
    const held = await this.#heldUpload(videoId);
    const source = sourceKey(videoId);
    // Bytes the client sends again (it resumed from an older offset) are the ones already held.
    let skip = held.committedBytes + held.pieceBytes - start;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const position = () => held.committedBytes + held.pieceBytes + pendingBytes;

    const flushParts = async () => {
      while (held.pieceBytes + pendingBytes >= held.partBytes) {
        const all = Buffer.concat([
          ...(await Promise.all(held.pieces.map((p) => this.#readObject(p.key)))),
          ...pending,
        ]);
        const part = all.subarray(0, held.partBytes);
        held.uploadId ??= await this.#createMultipartUpload(source);
        const PartNumber = held.parts.length + 1;
        const { ETag } = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: source, UploadId: held.uploadId, PartNumber, Body: part }),
        );
        held.parts.push({ PartNumber, ETag, Size: part.byteLength });
        held.committedBytes += part.byteLength;
        // Pieces now in the part end before committedBytes: left behind, they are not counted.
        await this.#deleteKeys(held.pieces.map((p) => p.key)).catch(() => {});
        held.pieces = [];
        held.pieceBytes = 0;
        pending = [all.subarray(held.partBytes)];
        pendingBytes = pending[0]!.byteLength;
      }
    };
    const keepPending = async (always: boolean) => {
      // Short pieces only when they end the file, so a part is made of at most
      // partBytes / minChunkBytes pieces and no piece is ever rewritten.
      if (pendingBytes === 0 || (pendingBytes < this.minChunkBytes && !always)) return;
      const offset = held.committedBytes + held.pieceBytes;
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: pieceKey(videoId, offset), Body: Buffer.concat(pending) }),
      );
      held.pieces.push({ key: pieceKey(videoId, offset), offset, size: pendingBytes });
      held.pieceBytes += pendingBytes;
      pending = [];
      pendingBytes = 0;
    };

    try {
      for await (const chunk of body) {
        let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (skip > 0) {
          const skipped = Math.min(skip, bytes.byteLength);
          bytes = bytes.subarray(skipped);
          skip -= skipped;
        }
        if (!bytes.byteLength) continue;
        if (position() + bytes.byteLength > options.limit) throw new UploadTooLargeError(options.limit);
        pending.push(bytes);
        pendingBytes += bytes.byteLength;
        await flushParts();
      }
    } catch (err) {
      // A client that went away resumes from what was kept; a refused body, or one a full
      // bucket refused, keeps nothing new.
      if (!(err instanceof UploadTooLargeError) && !storageUnavailable(err)?.full) {
        await keepPending(false).catch(() => {});
      }
      throw err;
    }
    await keepPending(options.isComplete(position()));
    return held.committedBytes + held.pieceBytes;
  }

  async finishUpload(videoId: string): Promise<string> {
    const held = await this.#heldUpload(videoId);
    const source = sourceKey(videoId);
    held.uploadId ??= await this.#createMultipartUpload(source);
    if (held.pieceBytes > 0 || held.parts.length === 0) {
      // The last part may be smaller than the others.
      const PartNumber = held.parts.length + 1;
      const Body = Buffer.concat(await Promise.all(held.pieces.map((p) => this.#readObject(p.key))));
      const { ETag } = await this.client.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: source, UploadId: held.uploadId, PartNumber, Body }),
      );
      held.parts.push({ PartNumber, ETag });
    }
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: source,
        UploadId: held.uploadId,
        MultipartUpload: { Parts: held.parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) },
      }),
    );
    await this.#deleteKeys(held.allPieceKeys);
    return source;
  }

  /** The multipart upload of a video's source with its parts so far, and the pieces held after them. */
  async #heldUpload(videoId: string): Promise<HeldUpload> {
    const source = sourceKey(videoId);
    assertValidKey(source);
    const listed = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: source }));
    const upload = (listed.Uploads ?? [])
      .filter((u) => u.Key === source)
      .sort((a, b) => (a.Initiated?.getTime() ?? 0) - (b.Initiated?.getTime() ?? 0))[0];
    const parts: Part[] = [];
    if (upload) {
      let marker: string | undefined;
      do {
        const page = await this.client.send(
          new ListPartsCommand({
            Bucket: this.bucket,
            Key: source,
            UploadId: upload.UploadId!,
            PartNumberMarker: marker,
          }),
        );
        parts.push(...(page.Parts ?? []));
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker);
    }
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    const partBytes = parts[0]?.Size ?? this.#partBytes;
    // Only parts 1..n of the full size count: anything after a gap was never acknowledged.
    const good: Part[] = [];
    for (const part of parts) {
      if (part.PartNumber !== good.length + 1 || part.Size !== partBytes) break;
      good.push(part);
    }
    const committedBytes = good.length * partBytes;

    const found: Piece[] = [];
    const Prefix = `${partialUploadKey(videoId)}/`;
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix })) {
      for (const o of page.Contents ?? []) {
        found.push({ key: o.Key!, offset: Number(o.Key!.slice(Prefix.length)), size: o.Size ?? 0 });
      }
    }
    found.sort((a, b) => a.offset - b.offset);
    // The pieces that continue the parts without a gap; older ones went into a part already.
    const pieces: Piece[] = [];
    let next = committedBytes;
    for (const piece of found) {
      if (piece.offset !== next) continue;
      pieces.push(piece);
      next += piece.size;
    }
    return {
      uploadId: upload?.UploadId ?? null,
      parts: good,
      partBytes,
      committedBytes,
      pieces,
      pieceBytes: next - committedBytes,
      allPieceKeys: found.map((p) => p.key),
    };
  }

  async #createMultipartUpload(key: string): Promise<string> {
    const { UploadId } = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: "application/octet-stream" }),
    );
    return UploadId!;
  }

  async #readObject(key: string): Promise<Buffer> {
    const object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    return Buffer.from(await object.Body!.transformToByteArray());
  }

  async #deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH).map((Key) => ({ Key }));
      const result = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } }),
      );
      const failed = (result.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length) {
        throw new Error(
          `Could not delete ${failed.length} objects: ${failed[0]!.Key} ${failed[0]!.Code} ${failed[0]!.Message}`,
        );
      }
    }
  }
}

/** Where the bytes of an upload from `offset` on wait until they fill a part. */
function pieceKey(videoId: string, offset: number): string {
  return `${partialUploadKey(videoId)}/${String(offset).padStart(15, "0")}`;
}
