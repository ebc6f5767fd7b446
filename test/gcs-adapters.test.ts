import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { probeSource } from "../render-worker/media/probe.ts";
import { createGcsWorkerStorage } from "../render-worker/storage/gcs.ts";
import type { WorkerStorage } from "../render-worker/storage/types.ts";
import type { CaptionCatalog } from "../src/captions/subtitle-playlists.ts";
import { createLivePlaylists } from "../src/http/live-playlists.ts";
import { handleMedia } from "../src/http/media.ts";
import type { PlaybackGuard } from "../src/http/playback-guard.ts";
import { PlaybackTokens } from "../src/http/playback-tokens.ts";
import { MEDIA_PATH_PREFIX } from "../src/storage/api-urls.ts";
import { createGcsClient } from "../src/shared/gcs-client.ts";
import { GcsStorage } from "../src/storage/gcs.ts";
import { startGcsEmulator, type GcsEmulator } from "./support/gcs-emulator.ts";
import { makeClip } from "./support/media-fixtures.ts";

// The GCS adapters against fake-gcs-server, through a proxy that records what they ask of it:
// what the emulator cannot judge (the headers of a session request, ffprobe seeking instead of
// downloading) is checked on the recorded requests, the rest on what the emulator stores and serves.

interface Recorded {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
}

const BUCKET = "videograph-media";
const TTL = 4 * 3600;
const requests: Recorded[] = [];

/** Forwards every request to the emulator as if sent to it directly, and records it. */
function startRecordingProxy(target: URL): Promise<Server> {
  const server = createServer((req, res) => {
    requests.push({ method: req.method!, url: new URL(req.url!, "http://proxy"), headers: req.headers });
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    pipeline(req, upstream).catch(() => upstream.destroy());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let emulator: GcsEmulator;
let proxy: Server;
let mediaServer: Server;
let storage: GcsStorage;
let worker: WorkerStorage;
let scratch: string;
let mediaUrl: string;

beforeAll(async () => {
  emulator = await startGcsEmulator();
  proxy = await startRecordingProxy(new URL(emulator.endpoint));
  const apiEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  await createGcsClient(emulator.endpoint).createBucket(BUCKET);
  storage = new GcsStorage({ bucket: BUCKET, apiEndpoint, publicUrl: "", signedUrlTtlSeconds: TTL });
  worker = createGcsWorkerStorage({ bucket: BUCKET, apiEndpoint, signedUrlTtlSeconds: 3600 });
  const publicGuard: PlaybackGuard = {
    videoOf: async () => ({ policy: "PUBLIC", live: false, protection: null }),
    tokens: new PlaybackTokens("x".repeat(32), 60),
  };
  const noCaptions: CaptionCatalog = {
    tracksOf: async () => [],
    subtitlePlaylistOf: async () => null,
    captionFileOf: async () => null,
  };
  const noTracks = { captions: noCaptions, audioTracks: { readyTracksOf: async () => [] } };
  mediaServer = createServer((req, res) => {
    handleMedia(
      storage,
      publicGuard,
      noTracks,
      createLivePlaylists({ windowSeconds: 0, readText: (key) => storage.readText(key) }),
      req,
      res,
      new URL(req.url!, "http://api"),
    ).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => mediaServer.listen(0, "127.0.0.1", resolve));
  mediaUrl = `http://127.0.0.1:${(mediaServer.address() as AddressInfo).port}`;
  scratch = await mkdtemp(path.join(tmpdir(), "videograph-gcs-"));
});
afterAll(async () => {
  for (const server of [proxy, mediaServer]) {
    if (!server) continue;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await emulator?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  requests.length = 0;
});

async function* once(data: Uint8Array) {
  yield data;
}

async function publish(key: string, data: string | Buffer, options: { contentType: string; cacheControl: string }) {
  const file = path.join(scratch, randomUUID());
  await writeFile(file, data);
  await worker.upload(key, file, options);
}

describe("GCS adapters against fake-gcs-server", () => {
  test(`an upload target is a resumable session for the source, bound to the declared size and the page's origin, \
never replacing a source`, async () => {
    const videoId = randomUUID();
    const before = Date.now();
    const target = await storage.createUploadTarget(videoId, {
      maxBytes: 5000,
      size: 4242,
      origin: "https://cms.example.com",
      nonce: "n",
    });
    expect(new URL(target.url).searchParams.get("upload_id")).toBeTruthy();
    expect(target.expiresAt.getTime() - before).toBeGreaterThanOrEqual(7 * 24 * 3600 * 1000 - 1000);
    const [start] = requests;
    expect(start!.method).toBe("POST");
    expect(start!.url.pathname).toBe(`/upload/storage/v1/b/${BUCKET}/o`);
    expect(Object.fromEntries(start!.url.searchParams)).toMatchObject({
      uploadType: "resumable",
      name: `videos/${videoId}/source/upload`,
      ifGenerationMatch: "0",
    });
    // GCS enforces these; fake-gcs-server 1.54 ignores both, so only the request is checked.
    expect(start!.headers["x-upload-content-length"]).toBe("4242");
    expect(start!.headers.origin).toBe("https://cms.example.com");

    requests.length = 0;
    await storage.createUploadTarget(randomUUID(), { maxBytes: 5000, size: null, origin: null, nonce: "n" });
    expect(requests[0]!.headers["x-upload-content-length"]).toBeUndefined();
    expect(requests[0]!.headers.origin).toBeUndefined();
  });

  test("write stores the object with its content type in one request", async () => {
    const key = `videos/${randomUUID()}/source/upload`;
    async function* chunks() {
      yield new Uint8Array([1, 2]);
      yield new Uint8Array([3]);
    }
    expect(await storage.write(key, chunks(), { limit: 10, contentType: "video/mp4" })).toBe(3);
    expect(requests.map((r) => `${r.method} ${r.url.searchParams.get("uploadType")}`)).toEqual(["POST multipart"]);
    const [metadata] = await storage.bucket.file(key).getMetadata();
    expect([metadata.contentType, metadata.size]).toEqual(["video/mp4", "3"]);
  });

  test("deletePrefix leaves a video whose id merely starts the same", async () => {
    const id = randomUUID();
    for (const key of [
      `videos/${id}/source/upload`,
      `videos/${id}/hls/720p/seg_00000.ts`,
      `videos/${id}0/hls/720p/seg_00000.ts`,
    ]) {
      await publish(key, "x", { contentType: "video/mp2t", cacheControl: "private" });
    }
    requests.length = 0;
    await storage.deletePrefix(`videos/${id}`);
    expect(requests.find((r) => r.method === "GET")!.url.searchParams.get("prefix")).toBe(`videos/${id}/`);
    expect(await worker.list(`videos/${id}`)).toEqual([{ key: `videos/${id}0/hls/720p/seg_00000.ts`, bytes: 1 }]);
  });

  test(`the worker uploads small files in one request with Content-Type and Cache-Control, and reads sources \
by signed URL`, async () => {
    const key = `videos/${randomUUID()}/hls/720p/seg_00000.ts`;
    await publish(key, Buffer.alloc(1000, 7), {
      contentType: "video/mp2t",
      cacheControl: "public, max-age=31536000, immutable",
    });
    expect(requests.map((r) => r.url.searchParams.get("uploadType"))).toEqual(["multipart"]);
    const [metadata] = await storage.bucket.file(key).getMetadata();
    expect([metadata.contentType, metadata.cacheControl]).toEqual([
      "video/mp2t",
      "public, max-age=31536000, immutable",
    ]);

    const input = new URL(await worker.inputFor(key));
    expect(input.pathname).toBe(`/${BUCKET}/${key}`);
    // An hour, give or take the second the signature's time and its expiry were read in.
    expect(Number(input.searchParams.get("X-Goog-Expires"))).toBeGreaterThanOrEqual(3599);
    expect(Number(input.searchParams.get("X-Goog-Expires"))).toBeLessThanOrEqual(3600);
    const res = await fetch(input);
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.alloc(1000, 7));
    await expect(worker.inputFor("videos/v1/source/upload")).rejects.toThrow(
      "Storage object videos/v1/source/upload does not exist",
    );
  });

  test(`ffprobe streams a source from the worker's signed URL, seeking with Range requests instead of \
downloading it first`, async () => {
    const key = `videos/${randomUUID()}/source/upload`;
    const clip = await readFile(await makeClip({ width: 320, height: 240, seconds: 2, audio: true }));
    await storage.write(key, once(clip), { limit: clip.length, contentType: "video/mp4" });
    const input = await worker.inputFor(key);
    requests.length = 0;
    const { probe } = await probeSource(input);
    expect([probe.width, probe.height, probe.hasAudio, Math.round(probe.duration)]).toEqual([320, 240, true, 2]);
    const reads = requests.filter((r) => r.url.pathname === `/${BUCKET}/${key}`);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.some((r) => /^bytes=[1-9]\d*-/.test(String(r.headers.range)))).toBe(true);
  });

  test(`GET /media/ serves playlists with signed segment URIs and short cache while growing; segments redirect; \
sources are not served`, async () => {
    const id = randomUUID();
    const playlist = { contentType: "application/vnd.apple.mpegurl", cacheControl: "public, max-age=2" };
    await publish(
      `videos/${id}/hls/master.m3u8`,
      "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n720p/index.m3u8\n",
      playlist,
    );
    await publish(
      `videos/${id}/hls/720p/index.m3u8`,
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.ts\n",
      playlist,
    );
    await publish(`videos/${id}/hls/720p/seg_00000.ts`, "segment-bytes", {
      contentType: "video/mp2t",
      cacheControl: "public, max-age=31536000, immutable",
    });
    await storage.write(`videos/${id}/source/upload`, once(Buffer.from("source")), {
      limit: 100,
      contentType: "video/mp4",
    });

    const master = await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/hls/master.m3u8`);
    expect(master.status).toBe(200);
    // A master lists the video's caption tracks, which change at any time.
    expect(master.headers.get("cache-control")).toBe("public, max-age=10");
    expect(await master.text()).toBe("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n720p/index.m3u8\n");

    const rung = await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/hls/720p/index.m3u8`);
    // Growing (no #EXT-X-ENDLIST, target 2 s): no browser keeps it, a shared cache 1 s.
    expect(rung.headers.get("cache-control")).toBe("public, max-age=0, s-maxage=1");
    expect(rung.headers.get("access-control-allow-origin")).toBe("*");
    const segmentUrl = (await rung.text()).split("\n")[3]!;
    expect(segmentUrl).toBe(await storage.signedReadUrl(`videos/${id}/hls/720p/seg_00000.ts`));
    const segment = await fetch(segmentUrl);
    expect(await segment.text()).toBe("segment-bytes");
    expect(segment.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");

    await publish(
      `videos/${id}/hls/720p/index.m3u8`,
      "#EXTM3U\n#EXTINF:2.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n",
      playlist,
    );
    expect(
      (await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/hls/720p/index.m3u8`)).headers.get("cache-control"),
    ).toBe(`public, max-age=${TTL / 4}`);

    const redirect = await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/hls/720p/seg_00000.ts`, {
      redirect: "manual",
    });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("location")).toBe(segmentUrl);
    expect(redirect.headers.get("access-control-allow-origin")).toBe("*");

    expect((await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/source/upload`)).status).toBe(404);
    expect((await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/hls/480p/index.m3u8`)).status).toBe(404);
    expect(
      (await fetch(`${mediaUrl}${MEDIA_PATH_PREFIX}videos/${id}/hls/master.m3u8`, { method: "DELETE" })).status,
    ).toBe(405);
  });
});
