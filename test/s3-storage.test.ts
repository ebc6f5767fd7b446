import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadWorkerEnv } from "../render-worker/config.ts";
import { createS3WorkerStorage } from "../render-worker/storage/s3.ts";
import { loadEnv } from "../src/config.ts";
import { UrlSigner } from "../src/storage/url-signer.ts";
import { S3Storage } from "../src/storage/s3.ts";
import { UploadTooLargeError } from "../src/storage/types.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { MOTO_KEYS, startMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { createUpload } from "./support/uploads.ts";

const run = promisify(execFile);
const MIB = 1024 * 1024;
const PART = 8 * MIB;
const TTL = 3600;

const bytesOf = (n: number, seed = 1) => {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed + (i >> 13)) % 256;
  return bytes;
};
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
async function* chunksOf(bytes: Uint8Array, size = 256 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe("S3 configuration", () => {
  const messages = (fn: () => unknown) => {
    try {
      fn();
      return "";
    } catch (err) {
      return (err as Error).message;
    }
  };

  test(`STORAGE=s3 needs S3_BUCKET in the API and the worker; region and path style have defaults; the \
TTL has bounds; the key pair comes whole`, () => {
    expect(messages(() => loadEnv({ STORAGE: "s3" }))).toMatch(/S3_BUCKET: required when STORAGE=s3/);
    const half = { STORAGE: "s3", S3_BUCKET: "videograph-media", S3_ACCESS_KEY_ID: "key" };
    expect(messages(() => loadEnv(half))).toMatch(
      /S3_SECRET_ACCESS_KEY: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together/,
    );
    const env = loadEnv({ STORAGE: "s3", S3_BUCKET: "videograph-media" });
    expect([env.S3_REGION, env.S3_FORCE_PATH_STYLE, env.S3_ENDPOINT, env.S3_SIGNED_URL_TTL_SECONDS]).toEqual([
      "us-east-1",
      false,
      undefined,
      6 * 3600,
    ]);
    const invalid = messages(() =>
      loadEnv({
        STORAGE: "s3",
        S3_BUCKET: "Not_A_Bucket",
        S3_ENDPOINT: "minio:9000",
        S3_SIGNED_URL_TTL_SECONDS: String(8 * 24 * 3600),
      }),
    );
    expect(invalid).toMatch(/S3_BUCKET:/);
    expect(invalid).toMatch(/S3_ENDPOINT:/);
    expect(invalid).toMatch(/S3_SIGNED_URL_TTL_SECONDS:/);

    const base = { DATABASE_URL: "postgresql://localhost/videograph" };
    expect(messages(() => loadWorkerEnv({ ...base, STORAGE: "s3" }))).toMatch(/S3_BUCKET: required when STORAGE=s3/);
    const worker = loadWorkerEnv({
      ...base,
      STORAGE: "s3",
      S3_BUCKET: "media",
      S3_ENDPOINT: "http://127.0.0.1:9000",
      S3_FORCE_PATH_STYLE: "true",
      S3_REGION: "auto",
    });
    expect([worker.S3_BUCKET, worker.S3_ENDPOINT, worker.S3_FORCE_PATH_STYLE, worker.S3_REGION]).toEqual([
      "media",
      "http://127.0.0.1:9000",
      true,
      "auto",
    ]);
  });
});

describe("S3 storage against moto's S3 server", () => {
  let moto: MotoS3;
  let env: Record<string, string>;
  let storage: S3Storage;

  beforeAll(async () => {
    moto = await startMotoS3();
    env = await moto.createBucket();
    storage = new S3Storage({
      bucket: env.S3_BUCKET!,
      endpoint: moto.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: MOTO_KEYS,
      publicUrl: "",
      signer: new UrlSigner("s3-storage-test-secret-s3-storage-test-secret"),
      uploadUrlTtlSeconds: 600,
      signedUrlTtlSeconds: TTL,
      maxUploadBytes: 64 * MIB,
    });
  });
  afterAll(async () => {
    storage?.client.destroy();
  });

  const readObject = async (key: string) =>
    Buffer.from(
      await (
        await storage.client.send(new GetObjectCommand({ Bucket: env.S3_BUCKET!, Key: key }))
      ).Body!.transformToByteArray(),
    );
  const partsOf = async (videoId: string) => {
    const Key = `videos/${videoId}/source/upload`;
    const uploads = await storage.client.send(new ListMultipartUploadsCommand({ Bucket: env.S3_BUCKET!, Prefix: Key }));
    const upload = uploads.Uploads?.find((u) => u.Key === Key);
    if (!upload) return [];
    return (
      await storage.client.send(new ListPartsCommand({ Bucket: env.S3_BUCKET!, Key, UploadId: upload.UploadId! }))
    ).Parts!.map((p) => p.Size);
  };

  test(`presigned reads are path-style on the endpoint, reused within a quarter of their lifetime, and \
open the object`, async () => {
    const key = `videos/${randomUUID()}/hls/360p/seg_00000.ts`;
    await storage.write(key, chunksOf(bytesOf(1000)), { limit: 10_000, contentType: "video/mp2t" });
    const now = Date.parse("2026-11-22T10:00:00Z");
    const first = new URL(await storage.signedReadUrl(key, now));
    expect(first.origin).toBe(moto.endpoint);
    expect(first.pathname).toBe(`/${env.S3_BUCKET}/${key}`);
    expect(first.searchParams.get("X-Amz-Expires")).toBe(String(TTL));
    expect(first.searchParams.get("X-Amz-Date")).toBe("20261122T100000Z");
    expect(await storage.signedReadUrl(key, now + (TTL / 4) * 1000 - 1)).toBe(first.href);
    const next = new URL(await storage.signedReadUrl(key, now + (TTL / 4) * 1000));
    expect(next.searchParams.get("X-Amz-Date")).toBe("20261122T101500Z");
    // Segments are fetched with the URL's current window.
    const res = await fetch(await storage.signedReadUrl(key));
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(1000);
    expect(await storage.urlFor(`videos/${randomUUID()}/hls/master.m3u8`)).toMatch(
      /^\/media\/videos\/[0-9a-f-]+\/hls\/master\.m3u8$/,
    );
  });

  const upTo = (total: number, limit = total) => ({ limit, isComplete: (held: number) => held >= total });
  const piecesOf = async (videoId: string) =>
    (
      (
        await storage.client.send(
          new ListObjectsV2Command({ Bucket: env.S3_BUCKET!, Prefix: `videos/${videoId}/source/upload.part/` }),
        )
      ).Contents ?? []
    ).map((o) => [Number(o.Key!.split("/").at(-1)), o.Size]);

  test(`an upload is one multipart upload in 8 MiB parts; what does not fill a part waits in pieces; the source \
appears at the end`, async () => {
    const videoId = randomUUID();
    const file = bytesOf(20 * MIB + 5, 7);
    expect(await storage.receivedUploadBytes(videoId)).toBe(0);
    expect(await storage.writeUploadChunk(videoId, 0, chunksOf(file.subarray(0, 3 * MIB)), upTo(file.length))).toBe(
      3 * MIB,
    );
    expect([await partsOf(videoId), await piecesOf(videoId)]).toEqual([[], [[0, 3 * MIB]]]);
    expect(
      await storage.writeUploadChunk(videoId, 3 * MIB, chunksOf(file.subarray(3 * MIB, 9 * MIB)), upTo(file.length)),
    ).toBe(9 * MIB);
    expect([await partsOf(videoId), await piecesOf(videoId)]).toEqual([[PART], [[PART, MIB]]]);
    expect(await storage.receivedUploadBytes(videoId)).toBe(9 * MIB);
    // A client that resends from an older offset: the bytes already held are not taken twice.
    expect(
      await storage.writeUploadChunk(videoId, 6 * MIB, chunksOf(file.subarray(6 * MIB, 17 * MIB)), upTo(file.length)),
    ).toBe(17 * MIB);
    expect([await partsOf(videoId), await piecesOf(videoId)]).toEqual([[PART, PART], [[2 * PART, MIB]]]);
    expect(await storage.size(`videos/${videoId}/source/upload`)).toBeNull();
    expect(
      await storage.writeUploadChunk(videoId, 17 * MIB, chunksOf(file.subarray(17 * MIB)), upTo(file.length)),
    ).toBe(file.length);
    expect(await storage.finishUpload(videoId)).toBe(`videos/${videoId}/source/upload`);
    expect(await storage.size(`videos/${videoId}/source/upload`)).toBe(file.length);
    expect(sha256(await readObject(`videos/${videoId}/source/upload`))).toBe(sha256(file));
    expect(await piecesOf(videoId)).toEqual([]);
  });

  test("held bytes are never rewritten: each request adds one piece until a part is full", async () => {
    const videoId = randomUUID();
    const file = bytesOf(4 * MIB, 2);
    for (let i = 0; i < 3; i++)
      await storage.writeUploadChunk(
        videoId,
        i * MIB,
        chunksOf(file.subarray(i * MIB, (i + 1) * MIB)),
        upTo(file.length),
      );
    expect(await piecesOf(videoId)).toEqual([
      [0, MIB],
      [MIB, MIB],
      [2 * MIB, MIB],
    ]);
    expect(await storage.receivedUploadBytes(videoId)).toBe(3 * MIB);
  });

  test("a piece already in a part (a crash before it was deleted) is not counted again", async () => {
    const videoId = randomUUID();
    const file = bytesOf(10 * MIB, 3);
    await storage.writeUploadChunk(videoId, 0, chunksOf(file.subarray(0, 5 * MIB)), upTo(file.length));
    const offset = (await piecesOf(videoId))[0]![0];
    const consumed = await readObject(`videos/${videoId}/source/upload.part/${String(offset).padStart(15, "0")}`);
    await storage.writeUploadChunk(videoId, 5 * MIB, chunksOf(file.subarray(5 * MIB, 9 * MIB)), upTo(file.length));
    // The part went in, then the process died before it deleted the piece.
    await storage.client.send(
      new PutObjectCommand({
        Bucket: env.S3_BUCKET!,
        Key: `videos/${videoId}/source/upload.part/${String(offset).padStart(15, "0")}`,
        Body: consumed,
      }),
    );
    expect(await piecesOf(videoId)).toEqual([
      [0, 5 * MIB],
      [PART, MIB],
    ]);
    expect(await storage.receivedUploadBytes(videoId)).toBe(9 * MIB);
    await storage.writeUploadChunk(videoId, 9 * MIB, chunksOf(file.subarray(9 * MIB)), upTo(file.length));
    await storage.finishUpload(videoId);
    expect(sha256(await readObject(`videos/${videoId}/source/upload`))).toBe(sha256(file));
    expect(await piecesOf(videoId)).toEqual([]);
  });

  test(`what arrived before a client went away is kept from 256 KiB on; less is kept only when it ends the file; past \
the limit nothing is`, async () => {
    const videoId = randomUUID();
    const file = bytesOf(3 * MIB, 5);
    const dropsAfter = (from: number, to: number) =>
      (async function* () {
        yield file.subarray(from, to);
        throw new Error("socket hang up");
      })();
    await expect(storage.writeUploadChunk(videoId, 0, dropsAfter(0, MIB), upTo(file.length))).rejects.toThrow(
      /socket hang up/,
    );
    expect(await storage.receivedUploadBytes(videoId)).toBe(MIB);
    await expect(
      storage.writeUploadChunk(videoId, MIB, dropsAfter(MIB, MIB + 100 * 1024), upTo(file.length)),
    ).rejects.toThrow(/socket hang up/);
    expect(await storage.receivedUploadBytes(videoId)).toBe(MIB);
    // A resent chunk that brings only 100 KiB past what is held, not ending the file.
    expect(
      await storage.writeUploadChunk(
        videoId,
        MIB - 200 * 1024,
        chunksOf(file.subarray(MIB - 200 * 1024, MIB + 100 * 1024)),
        upTo(file.length),
      ),
    ).toBe(MIB);
    await expect(
      storage.writeUploadChunk(videoId, MIB, chunksOf(file.subarray(MIB)), upTo(file.length, 2 * MIB)),
    ).rejects.toBeInstanceOf(UploadTooLargeError);
    expect(await storage.receivedUploadBytes(videoId)).toBe(MIB);
    expect(
      await storage.writeUploadChunk(videoId, MIB, chunksOf(file.subarray(MIB, file.length - 10)), upTo(file.length)),
    ).toBe(file.length - 10);
    expect(
      await storage.writeUploadChunk(
        videoId,
        file.length - 10,
        chunksOf(file.subarray(file.length - 10)),
        upTo(file.length),
      ),
    ).toBe(file.length);
    await storage.finishUpload(videoId);
    expect(sha256(await readObject(`videos/${videoId}/source/upload`))).toBe(sha256(file));
  });

  test(`npm run setup:s3 creates the bucket with CORS for playback and a rule that aborts unfinished uploads; again \
changes nothing`, async () => {
    const Bucket = `videograph-setup-${randomUUID().slice(0, 8)}`;
    const setupEnv = {
      ...process.env,
      S3_BUCKET: Bucket,
      S3_ENDPOINT: moto.endpoint,
      S3_FORCE_PATH_STYLE: "true",
      S3_ACCESS_KEY_ID: MOTO_KEYS.accessKeyId,
      S3_SECRET_ACCESS_KEY: MOTO_KEYS.secretAccessKey,
      UPLOAD_URL_TTL_SECONDS: "86400",
      S3_CORS_ORIGINS: "https://cms.example",
    };
    // Half a key pair is refused, as the API and the worker refuse it, before anything is asked of the store.
    const half = await run(process.execPath, ["scripts/setup-s3.ts"], {
      env: Object.fromEntries(Object.entries(setupEnv).filter(([name]) => name !== "S3_SECRET_ACCESS_KEY")),
    }).catch((err: { code?: number; stderr?: string }) => err);
    expect(half).toMatchObject({ code: 2, stderr: expect.stringContaining("go together") });
    const first = await run(process.execPath, ["scripts/setup-s3.ts"], { env: setupEnv });
    expect(first.stdout).toMatch(/created +bucket/);
    const again = await run(process.execPath, ["scripts/setup-s3.ts"], { env: setupEnv });
    expect(again.stdout).toMatch(/exists +bucket/);
    const cors = await storage.client.send(new GetBucketCorsCommand({ Bucket }));
    expect(cors.CORSRules).toMatchObject([
      { AllowedOrigins: ["https://cms.example"], AllowedMethods: ["GET", "HEAD"] },
    ]);
    const lifecycle = await storage.client.send(new GetBucketLifecycleConfigurationCommand({ Bucket }));
    expect(lifecycle.Rules).toMatchObject([
      { Status: "Enabled", Filter: { Prefix: "videos/" }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 } },
    ]);
  });

  test(`the worker uploads with the headers players get (multipart above 16 MiB), lists a prefix \
and downloads`, async () => {
    const worker = createS3WorkerStorage({
      bucket: env.S3_BUCKET!,
      endpoint: moto.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: MOTO_KEYS,
      signedUrlTtlSeconds: TTL,
    });
    const dir = await mkdtemp(path.join(tmpdir(), "videograph-s3-worker-"));
    try {
      const prefix = `videos/${randomUUID()}/`;
      const big = bytesOf(17 * MIB, 9);
      await writeFile(path.join(dir, "big.mp4"), big);
      await writeFile(path.join(dir, "empty.json"), "");
      await worker.upload(`${prefix}renders/out.mp4`, path.join(dir, "big.mp4"), {
        contentType: "video/mp4",
        cacheControl: "public, max-age=300",
      });
      await worker.upload(`${prefix}hls/encode.json`, path.join(dir, "empty.json"), {
        contentType: "application/json",
        cacheControl: "no-store",
      });
      const head = await storage.client.send(
        new HeadObjectCommand({ Bucket: env.S3_BUCKET!, Key: `${prefix}renders/out.mp4` }),
      );
      expect([head.ContentLength, head.ContentType, head.CacheControl]).toEqual([
        big.length,
        "video/mp4",
        "public, max-age=300",
      ]);
      expect((await worker.list(prefix)).sort((a, b) => a.key.localeCompare(b.key))).toEqual([
        { key: `${prefix}hls/encode.json`, bytes: 0 },
        { key: `${prefix}renders/out.mp4`, bytes: big.length },
      ]);
      expect(await worker.list(`${prefix}thumbnails/`)).toEqual([]);
      await worker.download(`${prefix}renders/out.mp4`, path.join(dir, "back.mp4"));
      expect(sha256(await readFile(path.join(dir, "back.mp4")))).toBe(sha256(big));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("write past its limit leaves no multipart upload behind", async () => {
    const key = `videos/${randomUUID()}/source/upload`;
    await expect(
      storage.write(key, chunksOf(bytesOf(20 * MIB), MIB), { limit: 18 * MIB, contentType: "video/mp4" }),
    ).rejects.toBeInstanceOf(UploadTooLargeError);
    expect(await storage.size(key)).toBeNull();
    const uploads = await storage.client.send(new ListMultipartUploadsCommand({ Bucket: env.S3_BUCKET!, Prefix: key }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });
});

describe("the resumable PUT contract with STORAGE=s3, across several parts", () => {
  let moto: MotoS3;
  let t: TestApp;
  beforeAll(async () => {
    moto = await startMotoS3();
    t = await startTestApp({
      worker: false,
      env: { ...(await moto.createBucket()), MAX_UPLOAD_BYTES: String(64 * MIB) },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  test(`3 MiB chunks of a 20 MiB file with a status query and a resent chunk; the video is queued with \
the exact bytes`, async () => {
    const created = await createUpload(t, "big");
    const url = `${t.url}${created.uploadUrl}`;
    expect(new URL(url).pathname).toBe(`/uploads/${created.id}`);
    const file = bytesOf(20 * MIB + 123, 11);
    const put = (start: number, end: number) =>
      fetch(url, {
        method: "PUT",
        body: file.subarray(start, end),
        headers: { "content-range": `bytes ${start}-${end - 1}/${file.length}` },
      });
    let offset = 0;
    for (; offset < 12 * MIB; offset += 3 * MIB) {
      const res = await put(offset, offset + 3 * MIB);
      expect(res.status).toBe(308);
      expect(res.headers.get("range")).toBe(`bytes=0-${offset + 3 * MIB - 1}`);
    }
    const status = await fetch(url, { method: "PUT", headers: { "content-range": `bytes */${file.length}` } });
    expect([status.status, status.headers.get("range")]).toEqual([308, `bytes=0-${12 * MIB - 1}`]);
    // The client lost the last answer and sends the previous chunk again.
    expect((await put(9 * MIB, 15 * MIB)).headers.get("range")).toBe(`bytes=0-${15 * MIB - 1}`);
    const last = await put(15 * MIB, file.length);
    expect(last.status).toBe(200);
    expect(await last.json()).toEqual({ videoId: created.id, bytes: file.length, status: "QUEUED" });

    const storage = t.app.services.storage as S3Storage;
    const stored = await storage.client.send(
      new GetObjectCommand({ Bucket: storage.bucket, Key: `videos/${created.id}/source/upload` }),
    );
    expect(sha256(await stored.Body!.transformToByteArray())).toBe(sha256(file));
    const video = await t.app.services.db.video.findUniqueOrThrow({ where: { id: created.id } });
    expect([video.status, Number(video.uploadedBytes), video.sourceKey]).toEqual([
      "QUEUED",
      file.length,
      `videos/${created.id}/source/upload`,
    ]);
    expect((await put(0, 10)).status).toBe(409);
  });

  test("chunks other than the last must be at least 256 KiB; a short last chunk is fine", async () => {
    const created = await createUpload(t, "small chunks");
    const url = `${t.url}${created.uploadUrl}`;
    const file = bytesOf(256 * 1024 + 100, 13);
    const small = await fetch(url, {
      method: "PUT",
      body: file.subarray(0, 1000),
      headers: { "content-range": `bytes 0-999/${file.length}` },
    });
    expect(small.status).toBe(400);
    expect(await small.json()).toEqual({ error: "Chunks other than the last must be at least 262144 bytes" });
    const first = await fetch(url, {
      method: "PUT",
      body: file.subarray(0, 256 * 1024),
      headers: { "content-range": `bytes 0-${256 * 1024 - 1}/${file.length}` },
    });
    expect([first.status, first.headers.get("range")]).toEqual([308, `bytes=0-${256 * 1024 - 1}`]);
    const last = await fetch(url, {
      method: "PUT",
      body: file.subarray(256 * 1024),
      headers: { "content-range": `bytes ${256 * 1024}-${file.length - 1}/${file.length}` },
    });
    expect(last.status).toBe(200);
  });
});
