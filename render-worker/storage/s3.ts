import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand, HeadObjectCommand, type S3Client, paginateListObjectsV2 } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createS3Client, type S3ConnectionOptions } from "../../src/shared/s3-client.ts";
import { assertValidKey } from "./local.ts";
import type { StoredObject, UploadOptions, WorkerStorage } from "./types.ts";
import { assertSameBytes } from "./write-once.ts";

const PART_BYTES = 16 * 1024 * 1024;

export interface S3WorkerStorageOptions extends S3ConnectionOptions {
  bucket: string;
  /** Lifetime of the presigned URL ffmpeg reads a source from: the longest a job may read it. */
  signedUrlTtlSeconds: number;
  /** Default: a client from these options (their credentials, else the SDK's default chain). */
  client?: S3Client;
}

const isNotFound = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === "NotFound" || e.name === "NoSuchKey" || e.$metadata?.httpStatusCode === 404;
};

/** A create-only write refused: 412 when the object exists, 409 when a concurrent write to the key won. */
const isExisting = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    e.name === "PreconditionFailed" ||
    e.name === "ConditionalRequestConflict" ||
    e.$metadata?.httpStatusCode === 412 ||
    e.$metadata?.httpStatusCode === 409
  );
};

/**
 * Storage in an S3-compatible bucket (S3, R2, Spaces, MinIO). ffmpeg streams a source over HTTP
 * from a presigned URL, seeking with Range requests, instead of the worker downloading it first;
 * published files are uploaded with their Content-Type and Cache-Control, which the bucket
 * serves to players.
 */
export function createS3WorkerStorage(options: S3WorkerStorageOptions): WorkerStorage {
  const client = options.client ?? createS3Client(options);
  const Bucket = options.bucket;

  // One PUT up to a part's size, else a multipart upload (S3 takes at most 5 GiB in one PUT).
  async function put(key: string, file: string, opts: UploadOptions, condition: { IfNoneMatch?: string }) {
    assertValidKey(key);
    const { size } = await stat(file);
    await new Upload({
      client,
      params: {
        Bucket,
        Key: key,
        Body: size > 0 ? createReadStream(file) : Buffer.alloc(0),
        ContentType: opts.contentType,
        CacheControl: opts.cacheControl,
        ...condition,
      },
      partSize: PART_BYTES,
      queueSize: 2,
    }).done();
  }

  return {
    async inputFor(key) {
      assertValidKey(key);
      try {
        await client.send(new HeadObjectCommand({ Bucket, Key: key }));
      } catch (err) {
        if (isNotFound(err)) throw new Error(`Storage object ${key} does not exist`);
        throw err;
      }
      return getSignedUrl(client, new GetObjectCommand({ Bucket, Key: key }), {
        expiresIn: options.signedUrlTtlSeconds,
      });
    },

    async upload(key, file, opts: UploadOptions) {
      await put(key, file, opts, {});
    },

    async uploadOnce(key, file, opts: UploadOptions) {
      try {
        // `If-None-Match: *` makes the PUT (or the multipart completion) create-only.
        await put(key, file, opts, { IfNoneMatch: "*" });
      } catch (err) {
        if (!isExisting(err)) throw err;
        const object = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        await assertSameBytes(key, file, object.Body as Readable);
      }
    },

    async list(prefix) {
      const objects: StoredObject[] = [];
      for await (const page of paginateListObjectsV2({ client }, { Bucket, Prefix: prefix })) {
        for (const object of page.Contents ?? []) objects.push({ key: object.Key!, bytes: object.Size ?? 0 });
      }
      return objects;
    },

    async download(key, file) {
      assertValidKey(key);
      const object = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      await pipeline(object.Body as Readable, createWriteStream(file));
    },

    async readText(key) {
      assertValidKey(key);
      try {
        const object = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        return await object.Body!.transformToString("utf8");
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },
  };
}
