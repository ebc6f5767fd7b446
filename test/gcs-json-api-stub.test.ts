import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { CRC32C, Storage } from "@google-cloud/storage";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { probeSource } from "../render-worker/media/probe.ts";
import { createGcsWorkerStorage } from "../render-worker/storage/gcs.ts";
import { handleSignedUrlMedia, MEDIA_PATH_PREFIX, type PlaybackGuard } from "../src/http/media.ts";
import { PlaybackTokens } from "../src/http/playback-tokens.ts";
import { GcsStorage } from "../src/storage/gcs.ts";
import { UploadTooLargeError } from "../src/storage/types.ts";
import { makeClip } from "./worker/media-fixtures.ts";

// What the GCS adapters ask of the JSON API, recorded by a stub server that keeps objects in
// memory. There is no GCS server here: this checks our requests, not GCS's answers (the
// storage contract suite does that against an emulator or GCS).
delete process.env.STORAGE_EMULATOR_HOST;

interface Recorded {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const BUCKET = "videograph-media";
const TTL = 4 * 3600;
const objects = new Map<string, { data: Buffer; metadata: Record<string, unknown> }>();
const requests: Recorded[] = [];

function crc32cOf(data: Buffer): string {
  const crc = new CRC32C();
  crc.update(data);
  return crc.toString();
}

/** The JSON API calls the adapters make, and GET /{bucket}/{key} for signed URLs. */
function startStub(): Promise<Server> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      // The client gave up on the request (an upload past its limit): nothing is stored.
      return;
    }
    const url = new URL(req.url!, "http://stub");
    const body = Buffer.concat(chunks);
    requests.push({ method: req.method!, url, headers: req.headers, body });
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
    };
    const resource = (name: string) => {
      const o = objects.get(name)!;
      return { bucket: BUCKET, name, size: String(o.data.length), crc32c: crc32cOf(o.data), ...o.metadata };
    };
    const signedGet = new RegExp(`^/${BUCKET}/(.+)$`).exec(url.pathname);
    if (req.method === "GET" && signedGet && url.searchParams.has("X-Goog-Signature")) {
      const o = objects.get(decodeURIComponent(signedGet[1]!));
      if (!o) return json(404, { error: { code: 404 } });
      const headers = { "content-type": String(o.metadata.contentType), "cache-control": String(o.metadata.cacheControl ?? "private"), "accept-ranges": "bytes" };
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      if (!range) {
        res.writeHead(200, headers);
        return res.end(o.data);
      }
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), o.data.length - 1) : o.data.length - 1;
      res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${o.data.length}` });
      return res.end(o.data.subarray(start, end + 1));
    }
    const m = /^\/(?:upload\/)?storage\/v1\/b\/([^/]+)\/o(?:\/(.+))?$/.exec(url.pathname);
    if (!m || m[1] !== BUCKET) return json(404, { error: { code: 404, message: "no such bucket" } });
    const name = m[2] ? decodeURIComponent(m[2]) : url.searchParams.get("name")!;
    const uploadType = url.searchParams.get("uploadType");
    if (req.method === "POST" && uploadType === "resumable") {
      res.writeHead(200, { location: `https://storage.example/upload/session/${randomUUID()}` });
      return res.end();
    }
    if (req.method === "POST" && uploadType === "multipart") {
      const boundary = /boundary=(.+)$/.exec(req.headers["content-type"]!)![1]!;
      const [, metaPart, dataPart] = body.toString("latin1").split(`--${boundary}`);
      const data = Buffer.from(dataPart!.slice(dataPart!.indexOf("\r\n\r\n") + 4, -2), "latin1");
      objects.set(name, { data, metadata: JSON.parse(metaPart!.split("\r\n\r\n")[1]!) });
      return json(200, resource(name));
    }
    if (req.method === "GET" && !m[2]) {
      const prefix = url.searchParams.get("prefix") ?? "";
      return json(200, { kind: "storage#objects", items: [...objects.keys()].filter((k) => k.startsWith(prefix)).map(resource) });
    }
    if (!objects.has(name)) return json(404, { error: { code: 404, message: "No such object" } });
    if (req.method === "DELETE") {
      objects.delete(name);
      res.writeHead(204);
      return res.end();
    }
    if (url.searchParams.get("alt") === "media") {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      return res.end(objects.get(name)!.data);
    }
    return json(200, resource(name));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let stub: Server;
let mediaServer: Server;
let client: Storage;
let storage: GcsStorage;
let scratch: string;
let mediaUrl: string;

beforeAll(async () => {
  stub = await startStub();
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  client = new Storage({
    apiEndpoint: `http://127.0.0.1:${(stub.address() as AddressInfo).port}`,
    projectId: "videograph-test",
    credentials: { client_email: "signer@videograph-test.iam.gserviceaccount.com", private_key: privateKey },
  });
  const publicGuard: PlaybackGuard = { policyOf: async () => "PUBLIC", tokens: new PlaybackTokens("x".repeat(32), 60) };
  storage = new GcsStorage({ bucket: BUCKET, publicUrl: "", signedUrlTtlSeconds: TTL, client });
  mediaServer = createServer((req, res) => {
    handleSignedUrlMedia(storage, publicGuard, req, res, new URL(req.url!, "http://api")).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => mediaServer.listen(0, "127.0.0.1", resolve));
  mediaUrl = `http://127.0.0.1:${(mediaServer.address() as AddressInfo).port}`;
  scratch = await mkdtemp(path.join(tmpdir(), "videograph-gcs-stub-"));
});
afterAll(async () => {
  for (const server of [stub, mediaServer]) {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }
  if (scratch) await rm(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  objects.clear();
  requests.length = 0;
});

async function* chunksOf(...chunks: Uint8Array[]) {
  yield* chunks;
}

describe("GCS adapters against a stub of the JSON API (no GCS server here)", () => {
  test("an upload target is a resumable session for the source, bound to the declared size and the page's origin, never replacing a source", async () => {
    const videoId = randomUUID();
    const before = Date.now();
    const target = await storage.createUploadTarget(videoId, { maxBytes: 5000, size: 4242, origin: "https://cms.example.com", nonce: "n" });
    expect(target.url).toMatch(/^https:\/\/storage\.example\/upload\/session\//);
    expect(target.expiresAt.getTime() - before).toBeGreaterThanOrEqual(7 * 24 * 3600 * 1000 - 1000);
    const [start] = requests;
    expect(start!.method).toBe("POST");
    expect(start!.url.pathname).toBe(`/upload/storage/v1/b/${BUCKET}/o`);
    expect(Object.fromEntries(start!.url.searchParams)).toMatchObject({ uploadType: "resumable", name: `videos/${videoId}/source/upload`, ifGenerationMatch: "0" });
    expect(start!.headers["x-upload-content-length"]).toBe("4242");
    expect(start!.headers.origin).toBe("https://cms.example.com");

    requests.length = 0;
    await storage.createUploadTarget(videoId, { maxBytes: 5000, size: null, origin: null, nonce: "n" });
    expect(requests[0]!.headers["x-upload-content-length"]).toBeUndefined();
    expect(requests[0]!.headers.origin).toBeUndefined();
  });

  test("write is one multipart request with the content type; past the limit nothing is stored", async () => {
    const key = `videos/${randomUUID()}/source/upload`;
    expect(await storage.write(key, chunksOf(new Uint8Array([1, 2]), new Uint8Array([3])), { limit: 10, contentType: "video/mp4" })).toBe(3);
    expect(requests.map((r) => `${r.method} ${r.url.searchParams.get("uploadType")}`)).toEqual(["POST multipart"]);
    expect(objects.get(key)).toEqual({ data: Buffer.from([1, 2, 3]), metadata: { contentType: "video/mp4" } });
    expect(await storage.size(key)).toBe(3);

    const big = `videos/${randomUUID()}/source/upload`;
    await expect(storage.write(big, chunksOf(new Uint8Array(8), new Uint8Array(8)), { limit: 10, contentType: "video/mp4" })).rejects.toBeInstanceOf(UploadTooLargeError);
    expect(objects.has(big)).toBe(false);
    expect(await storage.size(big)).toBeNull();
  });

  test("deletePrefix lists `prefix/` and deletes each object, leaving a video whose id merely starts the same", async () => {
    for (const key of ["videos/abc/source/upload", "videos/abc/hls/720p/seg_00000.ts", "videos/abcd/hls/720p/seg_00000.ts"]) {
      objects.set(key, { data: Buffer.from("x"), metadata: {} });
    }
    await storage.deletePrefix("videos/abc");
    expect([...objects.keys()]).toEqual(["videos/abcd/hls/720p/seg_00000.ts"]);
    expect(requests.find((r) => r.method === "GET")!.url.searchParams.get("prefix")).toBe("videos/abc/");
    expect(requests.filter((r) => r.method === "DELETE")).toHaveLength(2);
  });

  test("the worker uploads small files in one request with Content-Type and Cache-Control, and reads sources by signed URL", async () => {
    const worker = createGcsWorkerStorage({ bucket: BUCKET, signedUrlTtlSeconds: 3600, client });
    const file = path.join(scratch, "seg.ts");
    await writeFile(file, Buffer.alloc(1000, 7));
    await worker.upload("videos/v1/hls/720p/seg_00000.ts", file, { contentType: "video/mp2t", cacheControl: "public, max-age=31536000, immutable" });
    expect(requests.map((r) => r.url.searchParams.get("uploadType"))).toEqual(["multipart"]);
    expect(objects.get("videos/v1/hls/720p/seg_00000.ts")).toEqual({
      data: Buffer.alloc(1000, 7),
      metadata: { contentType: "video/mp2t", cacheControl: "public, max-age=31536000, immutable" },
    });

    const input = new URL(await worker.inputFor("videos/v1/hls/720p/seg_00000.ts"));
    expect(input.pathname).toBe(`/${BUCKET}/videos/v1/hls/720p/seg_00000.ts`);
    expect(input.searchParams.get("X-Goog-Expires")).toBe("3600");
    expect(Buffer.from(await (await fetch(input)).arrayBuffer())).toEqual(Buffer.alloc(1000, 7));
    await expect(worker.inputFor("videos/v1/source/upload")).rejects.toThrow("Storage object videos/v1/source/upload does not exist");
  });

  test("the worker reads a published playlist back with one media GET, and null for a missing one", async () => {
    objects.set("videos/v3/hls/720p/index.m3u8", { data: Buffer.from("#EXTM3U\n#EXTINF:2.0,\nseg_00000.ts\n"), metadata: { contentType: "application/vnd.apple.mpegurl" } });
    const worker = createGcsWorkerStorage({ bucket: BUCKET, signedUrlTtlSeconds: 3600, client });
    expect(await worker.readText("videos/v3/hls/720p/index.m3u8")).toBe("#EXTM3U\n#EXTINF:2.0,\nseg_00000.ts\n");
    expect(requests.filter((r) => r.url.searchParams.get("alt") === "media").map((r) => [r.method, decodeURIComponent(r.url.pathname)])).toEqual([
      ["GET", `/storage/v1/b/${BUCKET}/o/videos/v3/hls/720p/index.m3u8`],
    ]);
    expect(await worker.readText("videos/v3/hls/480p/index.m3u8")).toBeNull();
  });

  test("ffprobe streams a source from the worker's signed URL, seeking with Range requests instead of downloading it first", async () => {
    const clip = await readFile(await makeClip({ width: 320, height: 240, seconds: 2, audio: true }));
    objects.set("videos/v2/source/upload", { data: clip, metadata: { contentType: "video/mp4" } });
    const worker = createGcsWorkerStorage({ bucket: BUCKET, signedUrlTtlSeconds: 3600, client });
    const input = await worker.inputFor("videos/v2/source/upload");
    requests.length = 0;
    const probe = await probeSource(input);
    expect([probe.width, probe.height, probe.hasAudio, Math.round(probe.duration)]).toEqual([320, 240, true, 2]);
    const reads = requests.filter((r) => r.url.pathname === `/${BUCKET}/videos/v2/source/upload`);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.some((r) => /^bytes=[1-9]\d*-/.test(String(r.headers.range)))).toBe(true);
  });

  test("GET /media/ serves playlists with signed segment URIs and short cache while growing; segments redirect; sources are not served", async () => {
    const put = (key: string, data: string, metadata: Record<string, unknown>) => objects.set(key, { data: Buffer.from(data), metadata });
    put("videos/v1/hls/master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n720p/index.m3u8\n", { contentType: "application/vnd.apple.mpegurl" });
    put("videos/v1/hls/720p/index.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.ts\n", { contentType: "application/vnd.apple.mpegurl" });
    put("videos/v1/hls/720p/seg_00000.ts", "segment-bytes", { contentType: "video/mp2t", cacheControl: "public, max-age=31536000, immutable" });
    put("videos/v1/source/upload", "source", { contentType: "video/mp4" });

    const master = await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/hls/master.m3u8`);
    expect(master.status).toBe(200);
    expect(master.headers.get("cache-control")).toBe(`public, max-age=${TTL / 4}`);
    expect(await master.text()).toBe("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n720p/index.m3u8\n");

    const rung = await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/hls/720p/index.m3u8`);
    expect(rung.headers.get("cache-control")).toBe("public, max-age=2");
    expect(rung.headers.get("access-control-allow-origin")).toBe("*");
    const segmentUrl = (await rung.text()).split("\n")[3]!;
    expect(segmentUrl).toBe(await storage.signedReadUrl("videos/v1/hls/720p/seg_00000.ts"));
    const segment = await fetch(segmentUrl);
    expect(await segment.text()).toBe("segment-bytes");
    expect(segment.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");

    objects.get("videos/v1/hls/720p/index.m3u8")!.data = Buffer.from("#EXTM3U\n#EXTINF:2.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n");
    expect((await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/hls/720p/index.m3u8`)).headers.get("cache-control")).toBe(`public, max-age=${TTL / 4}`);

    const redirect = await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/hls/720p/seg_00000.ts`, { redirect: "manual" });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("location")).toBe(segmentUrl);
    expect(redirect.headers.get("access-control-allow-origin")).toBe("*");

    expect((await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/source/upload`)).status).toBe(404);
    expect((await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/hls/480p/index.m3u8`)).status).toBe(404);
    expect((await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/v1/hls/master.m3u8`, { method: "DELETE" })).status).toBe(405);
  });
});
