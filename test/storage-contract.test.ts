import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createGcsWorkerStorage } from "../render-worker/storage/gcs.ts";
import { createLocalWorkerStorage } from "../render-worker/storage/local.ts";
import { createS3WorkerStorage } from "../render-worker/storage/s3.ts";
import type { WorkerStorage } from "../render-worker/storage/types.ts";
import { ObjectExistsError } from "../render-worker/storage/write-once.ts";
import type { ApiStorage } from "../src/storage/types.ts";
import { UploadTooLargeError } from "../src/storage/types.ts";
import { createGcsClient } from "../src/shared/gcs-client.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { startGcsEmulator } from "./support/gcs-emulator.ts";
import { MOTO_KEYS, startMotoS3 } from "./support/moto-s3.ts";
import { CREATE_UPLOAD } from "./support/uploads.ts";

const MAX_UPLOAD_BYTES = 1024 * 1024;
const GCS_CHUNK = 256 * 1024;

interface Adapter {
  name: string;
  /** Parts of the contract the store under test cannot show, with why; those tests are not defined for it. */
  cannotShow?: Partial<Record<"resumeStatusQuery" | "declaredSizeBinding", string>>;
  /** Env for the API, and the worker's adapter on the same storage. */
  open(): Promise<{
    env: Record<string, string>;
    worker: (dataDir: string) => WorkerStorage;
    cleanup(): Promise<void>;
  }>;
}

const ADAPTERS: Adapter[] = [
  {
    name: "local",
    async open() {
      return { env: {}, worker: (dataDir) => createLocalWorkerStorage(dataDir), cleanup: async () => {} };
    },
  },
  {
    name: "gcs (fake-gcs-server)",
    // Both are GCS's own behaviour; test/gcs-adapters.test.ts checks the session is asked for the declared size.
    cannotShow: {
      resumeStatusQuery:
        "fake-gcs-server 1.54 takes `Content-Range: bytes */N` as the end of a streamed upload and " +
        "finalizes the object",
      declaredSizeBinding: "fake-gcs-server 1.54 ignores X-Upload-Content-Length",
    },
    async open() {
      const emulator = await startGcsEmulator();
      const bucket = `videograph-contract-${randomUUID().slice(0, 8)}`;
      await createGcsClient(emulator.endpoint).createBucket(bucket);
      return {
        env: {
          STORAGE: "gcs",
          GCS_BUCKET: bucket,
          GCS_API_ENDPOINT: emulator.endpoint,
          GCS_SIGNED_URL_TTL_SECONDS: "3600",
        },
        worker: () => createGcsWorkerStorage({ bucket, apiEndpoint: emulator.endpoint, signedUrlTtlSeconds: 3600 }),
        cleanup: () => emulator.stop(),
      };
    },
  },
  {
    name: "s3",
    async open() {
      const moto = await startMotoS3();
      const env = await moto.createBucket();
      return {
        env,
        worker: () =>
          createS3WorkerStorage({
            bucket: env.S3_BUCKET!,
            endpoint: moto.endpoint,
            region: "us-east-1",
            forcePathStyle: true,
            credentials: MOTO_KEYS,
            signedUrlTtlSeconds: 3600,
          }),
        cleanup: async () => {},
      };
    },
  },
];

const COMPLETE_UPLOAD = graphql(`
  mutation($id: ID!) {
    completeUpload(videoId: $id) {
      __typename
      ... on CompleteUploadSuccess { video { id status } }
      ... on Error { message }
    }
  }`);

async function* chunksOf(bytes: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}
const bytesOf = (n: number, seed = 1) => new Uint8Array(n).map((_, i) => (i * 7 + seed) % 256);

describe.each(ADAPTERS)("storage contract: $name", (adapter) => {
  let t: TestApp;
  let storage: ApiStorage;
  let worker: WorkerStorage;
  let cleanup: () => Promise<void>;
  let scratch: string;
  const used: string[] = [];
  const newVideoPrefix = () => {
    const prefix = `videos/${randomUUID()}`;
    used.push(prefix);
    return prefix;
  };
  const absolute = (url: string, base = t.url) => new URL(url, base).toString();

  beforeAll(async () => {
    const opened = await adapter.open();
    cleanup = opened.cleanup;
    t = await startTestApp({ worker: false, env: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), ...opened.env } });
    storage = t.app.services.storage;
    worker = opened.worker(t.dataDir);
    scratch = await mkdtemp(path.join(tmpdir(), "videograph-contract-"));
  });
  afterAll(async () => {
    for (const prefix of used) await storage?.deletePrefix(prefix);
    await t?.stop();
    await cleanup?.();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test("write stores a whole object and replaces it; size reports it; a missing object has no size", async () => {
    const prefix = newVideoPrefix();
    const key = `${prefix}/source/upload`;
    expect(await storage.size(key)).toBeNull();
    expect(
      await storage.write(key, chunksOf(bytesOf(200_000)), { limit: MAX_UPLOAD_BYTES, contentType: "video/mp4" }),
    ).toBe(200_000);
    expect(await storage.size(key)).toBe(200_000);
    expect(await storage.write(key, chunksOf(bytesOf(10)), { limit: MAX_UPLOAD_BYTES, contentType: "video/mp4" })).toBe(
      10,
    );
    expect(await storage.size(key)).toBe(10);
    expect(await storage.size(`${prefix}/source/other`)).toBeNull();
  });

  test("write past its limit throws UploadTooLargeError and leaves what was there", async () => {
    const prefix = newVideoPrefix();
    const key = `${prefix}/source/upload`;
    await expect(
      storage.write(key, chunksOf(bytesOf(5000), 1000), { limit: 4096, contentType: "video/mp4" }),
    ).rejects.toBeInstanceOf(UploadTooLargeError);
    expect(await storage.size(key)).toBeNull();
    await storage.write(key, chunksOf(bytesOf(100)), { limit: 4096, contentType: "video/mp4" });
    await expect(
      storage.write(key, chunksOf(bytesOf(5000), 1000), { limit: 4096, contentType: "video/mp4" }),
    ).rejects.toBeInstanceOf(UploadTooLargeError);
    expect(await storage.size(key)).toBe(100);
  });

  test("deletePrefix removes everything under the prefix and nothing beside it; twice is fine", async () => {
    const a = newVideoPrefix();
    const b = newVideoPrefix();
    const file = path.join(scratch, "seg.ts");
    await writeFile(file, bytesOf(1000));
    await worker.upload(`${a}/hls/720p/seg_00000.ts`, file, {
      contentType: "video/mp2t",
      cacheControl: "public, max-age=31536000, immutable",
    });
    await storage.write(`${a}/source/upload`, chunksOf(bytesOf(10)), { limit: 100, contentType: "video/mp4" });
    await worker.upload(`${b}/hls/720p/seg_00000.ts`, file, {
      contentType: "video/mp2t",
      cacheControl: "public, max-age=31536000, immutable",
    });

    await storage.deletePrefix(a);
    expect(await storage.size(`${a}/hls/720p/seg_00000.ts`)).toBeNull();
    expect(await storage.size(`${a}/source/upload`)).toBeNull();
    expect(await storage.size(`${b}/hls/720p/seg_00000.ts`)).toBe(1000);
    await storage.deletePrefix(a);
  });

  test(`published HLS plays through urlFor: playlists from the API, segments where the playlist points, with \
cache headers`, async () => {
    const prefix = newVideoPrefix();
    // The API serves a video's media by its playback policy, so the video must exist.
    await t.app.services.db.video.create({
      data: { id: prefix.split("/")[1]!, tenantId: DEFAULT_TENANT_ID, title: "contract" },
    });
    const segment = bytesOf(3000, 5);
    const poster = bytesOf(500, 9);
    await writeFile(path.join(scratch, "seg.ts"), segment);
    await writeFile(path.join(scratch, "poster.jpg"), poster);
    await writeFile(
      path.join(scratch, "index.m3u8"),
      "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000000,\nseg_00000.ts\n",
    );
    await writeFile(
      path.join(scratch, "master.m3u8"),
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e"\n360p/index.m3u8\n',
    );
    await worker.upload(`${prefix}/hls/360p/seg_00000.ts`, path.join(scratch, "seg.ts"), {
      contentType: "video/mp2t",
      cacheControl: "public, max-age=31536000, immutable",
    });
    await worker.upload(`${prefix}/hls/360p/index.m3u8`, path.join(scratch, "index.m3u8"), {
      contentType: "application/vnd.apple.mpegurl",
      cacheControl: "public, max-age=2",
    });
    await worker.upload(`${prefix}/hls/master.m3u8`, path.join(scratch, "master.m3u8"), {
      contentType: "application/vnd.apple.mpegurl",
      cacheControl: "public, max-age=3600",
    });
    await worker.upload(`${prefix}/thumbnails/poster.jpg`, path.join(scratch, "poster.jpg"), {
      contentType: "image/jpeg",
      cacheControl: "public, max-age=3600",
    });

    const masterUrl = absolute(await storage.urlFor(`${prefix}/hls/master.m3u8`));
    expect(new URL(masterUrl).pathname).toBe(`/media/${prefix}/hls/master.m3u8`);
    const master = await fetch(masterUrl);
    expect(master.status).toBe(200);
    expect(master.headers.get("content-type")).toBe("application/vnd.apple.mpegurl");
    const childUri = (await master.text()).split("\n").find((l) => l.endsWith(".m3u8"))!;

    const childUrl = absolute(childUri, masterUrl);
    const child = await fetch(childUrl);
    expect(child.status).toBe(200);
    // A growing playlist (no #EXT-X-ENDLIST): never kept by a browser.
    expect(child.headers.get("cache-control")).toMatch(/^public, max-age=0\b/);
    const segmentUri = (await child.text()).split("\n").find((l) => l && !l.startsWith("#"))!;

    const segmentRes = await fetch(absolute(segmentUri, childUrl));
    expect(segmentRes.status).toBe(200);
    expect(segmentRes.headers.get("cache-control")).toMatch(/immutable/);
    expect(Buffer.compare(Buffer.from(await segmentRes.arrayBuffer()), Buffer.from(segment))).toBe(0);

    const posterRes = await fetch(absolute(await storage.urlFor(`${prefix}/thumbnails/poster.jpg`)));
    expect(posterRes.status).toBe(200);
    expect(Buffer.compare(Buffer.from(await posterRes.arrayBuffer()), Buffer.from(poster))).toBe(0);
  });

  test("sources are never served as media", async () => {
    const prefix = newVideoPrefix();
    await storage.write(`${prefix}/source/upload`, chunksOf(bytesOf(10)), { limit: 100, contentType: "video/mp4" });
    expect((await fetch(`${t.url}/media/${prefix}/source/upload`)).status).toBe(404);
  });

  test("the worker reads a stored source from inputFor and is told when there is none", async () => {
    const prefix = newVideoPrefix();
    const source = bytesOf(70_000, 3);
    await storage.write(`${prefix}/source/upload`, chunksOf(source), {
      limit: MAX_UPLOAD_BYTES,
      contentType: "video/mp4",
    });
    const input = await worker.inputFor(`${prefix}/source/upload`);
    const read = /^https?:\/\//.test(input)
      ? Buffer.from(await (await fetch(input)).arrayBuffer())
      : await readFile(input);
    expect(Buffer.compare(read, Buffer.from(source))).toBe(0);
    if (/^https?:\/\//.test(input)) {
      // ffmpeg seeks in a source it streams from a URL (an MP4's index is often at its end).
      const range = await fetch(input, { headers: { range: "bytes=60000-60099" } });
      expect(range.status).toBe(206);
      expect(range.headers.get("content-range")).toBe(`bytes 60000-60099/${source.length}`);
      expect(Buffer.compare(Buffer.from(await range.arrayBuffer()), Buffer.from(source.subarray(60000, 60100)))).toBe(
        0,
      );
    }
    await expect(worker.inputFor(`${prefix}/source/missing`)).rejects.toThrow(/does not exist/);
  });

  test("the worker reads back a playlist it published, and null for one never published", async () => {
    const prefix = newVideoPrefix();
    const text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000000,\nseg_00000.ts\n";
    const file = path.join(scratch, "readback.m3u8");
    await writeFile(file, text);
    await worker.upload(`${prefix}/hls/360p/index.m3u8`, file, {
      contentType: "application/vnd.apple.mpegurl",
      cacheControl: "public, max-age=2",
    });
    expect(await worker.readText(`${prefix}/hls/360p/index.m3u8`)).toBe(text);
    expect(await worker.readText(`${prefix}/hls/240p/index.m3u8`)).toBeNull();
  });

  test(`a write-once object is never replaced: the same bytes again are fine, other bytes are refused and the \
stored bytes stay`, async () => {
    const prefix = newVideoPrefix();
    const key = `${prefix}/hls/360p/seg_00000.ts`;
    const opts = { contentType: "video/mp2t", cacheControl: "public, max-age=31536000, immutable" };
    const original = path.join(scratch, "once-original.ts");
    const other = path.join(scratch, "once-other.ts");
    await writeFile(original, bytesOf(5000, 11));
    await writeFile(other, bytesOf(5000, 12));
    const stored = async () => {
      const file = path.join(scratch, `once-read-${randomUUID()}`);
      await worker.download(key, file);
      return readFile(file);
    };

    await worker.uploadOnce(key, original, opts);
    await worker.uploadOnce(key, original, opts);
    await expect(worker.uploadOnce(key, other, opts)).rejects.toBeInstanceOf(ObjectExistsError);
    expect(Buffer.compare(await stored(), Buffer.from(bytesOf(5000, 11)))).toBe(0);
    // Listed with the bytes storage holds (what the final master's measured rates count).
    expect(await worker.list(`${prefix}/hls/360p/`)).toEqual([{ key, bytes: 5000 }]);

    // Two runs racing for one key: one wins, the other is refused, and the object is the winner's.
    const raced = `${prefix}/hls/360p/seg_00001.ts`;
    const results = await Promise.allSettled([
      worker.uploadOnce(raced, original, opts),
      worker.uploadOnce(raced, other, opts),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(ObjectExistsError);
    const file = path.join(scratch, "once-raced");
    await worker.download(raced, file);
    const winner = results[0]!.status === "fulfilled" ? bytesOf(5000, 11) : bytesOf(5000, 12);
    expect(Buffer.compare(await readFile(file), Buffer.from(winner))).toBe(0);
  });

  async function contractUpload(size?: number) {
    const res = await t.gql(CREATE_UPLOAD, { input: { title: "contract", size } });
    expect(res.errors).toBeUndefined();
    const created = expectTypename(res.data.createUpload, "CreateUploadSuccess");
    used.push(`videos/${created.video.id}`);
    return created;
  }

  test("the upload target takes the whole file by PUT; completeUpload then has the video queued", async () => {
    const upload = await contractUpload();
    expect(new Date(upload.expiresAt).getTime()).toBeGreaterThan(Date.now());
    const body = bytesOf(5000);
    const res = await fetch(absolute(upload.uploadUrl), { method: "PUT", body });
    expect(res.ok).toBe(true);
    expect(await storage.size(`videos/${upload.video.id}/source/upload`)).toBe(5000);
    const completed = await t.gql(COMPLETE_UPLOAD, { id: upload.video.id });
    expect(completed.data.completeUpload).toEqual({
      __typename: "CompleteUploadSuccess",
      video: { id: upload.video.id, status: "QUEUED" },
    });
  });

  test("the upload target is resumable: 308 with Range until the last chunk, then the whole object", async () => {
    const upload = await contractUpload();
    const url = absolute(upload.uploadUrl);
    const total = GCS_CHUNK + 1000;
    const body = bytesOf(total, 4);
    let res = await fetch(url, {
      method: "PUT",
      body: body.slice(0, GCS_CHUNK),
      headers: { "content-range": `bytes 0-${GCS_CHUNK - 1}/${total}` },
    });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe(`bytes=0-${GCS_CHUNK - 1}`);
    expect(await storage.size(`videos/${upload.video.id}/source/upload`)).toBeNull();
    res = await fetch(url, {
      method: "PUT",
      body: body.slice(GCS_CHUNK),
      headers: { "content-range": `bytes ${GCS_CHUNK}-${total - 1}/${total}` },
    });
    expect(res.ok).toBe(true);
    expect(await storage.size(`videos/${upload.video.id}/source/upload`)).toBe(total);
    const input = await worker.inputFor(`videos/${upload.video.id}/source/upload`);
    const stored = /^https?:\/\//.test(input)
      ? Buffer.from(await (await fetch(input)).arrayBuffer())
      : await readFile(input);
    expect(Buffer.compare(stored, Buffer.from(body))).toBe(0);
  });

  if (!adapter.cannotShow?.resumeStatusQuery) {
    test("an interrupted upload asks where to resume: a status query answers 308 with the Range received", async () => {
      const upload = await contractUpload();
      const url = absolute(upload.uploadUrl);
      const total = GCS_CHUNK + 1000;
      const body = bytesOf(total, 4);
      let res = await fetch(url, {
        method: "PUT",
        body: body.slice(0, GCS_CHUNK),
        headers: { "content-range": `bytes 0-${GCS_CHUNK - 1}/${total}` },
      });
      expect(res.status).toBe(308);
      res = await fetch(url, { method: "PUT", headers: { "content-range": `bytes */${total}` } });
      expect(res.status).toBe(308);
      expect(res.headers.get("range")).toBe(`bytes=0-${GCS_CHUNK - 1}`);
      res = await fetch(url, {
        method: "PUT",
        body: body.slice(GCS_CHUNK),
        headers: { "content-range": `bytes ${GCS_CHUNK}-${total - 1}/${total}` },
      });
      expect(res.ok).toBe(true);
      expect(await storage.size(`videos/${upload.video.id}/source/upload`)).toBe(total);
    });
  }

  if (!adapter.cannotShow?.declaredSizeBinding) {
    test("a declared size binds the upload target: a bigger file is refused and nothing is stored", async () => {
      const upload = await contractUpload(100);
      const res = await fetch(absolute(upload.uploadUrl), { method: "PUT", body: bytesOf(101) });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(await storage.size(`videos/${upload.video.id}/source/upload`)).toBeNull();
    });
  }
});
