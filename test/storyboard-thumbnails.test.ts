import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { graphql, type ResultOf } from "./support/graphql.ts";
import { childrenOf, type ProcessInfo, stillRunning } from "./support/process-scan.ts";
import { MAX_CACHED_IMAGES_PER_VIDEO } from "../src/thumbnails/image-cache-budget.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { createUpload } from "./support/uploads.ts";

const run = promisify(execFile);
const SECONDS = 12;
/** The image cache budgets this file's API runs with. */
const VIDEO_BUDGET = 8 * 1024 ** 2;
const TENANT_BUDGET = 1024 ** 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) {
    duration width height
    storyboard { vttUrl sheetUrls intervalSeconds tileCount tileWidth tileHeight columns rows }
    thumbnailUrl(time: 1, width: 160)
    animatedPreviewUrl(start: 2, end: 4, width: 160, format: GIF)
  } }`);
const DELETE = graphql(`mutation($id: ID!) { deleteVideo(id: $id) { __typename } }`);
const THUMBNAIL_URL = graphql(
  `query($id: ID!, $t: Float!, $w: Int) { video(id: $id) { thumbnailUrl(time: $t, width: $w) } }`,
);

type Video = NonNullable<ResultOf<typeof VIDEO>["video"]>;

interface Cue {
  start: number;
  end: number;
  uri: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

const seconds = (t: string) => {
  const [h, m, s] = t.split(":");
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
};

/** The cues of a storyboard WebVTT file, checked for the WebVTT syntax a player parses. */
function parseVtt(text: string): Cue[] {
  expect(text.startsWith("WEBVTT\n\n")).toBe(true);
  return text
    .slice("WEBVTT\n\n".length)
    .trim()
    .split("\n\n")
    .map((block) => {
      const [timing, payload, ...rest] = block.split("\n");
      expect(rest).toEqual([]);
      const t = /^(\d{2}:\d{2}:\d{2}\.\d{3}) --> (\d{2}:\d{2}:\d{2}\.\d{3})$/.exec(timing!);
      const p = /^(.+)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(payload!);
      expect(t, timing).not.toBeNull();
      expect(p, payload).not.toBeNull();
      const [x, y, w, h] = p!.slice(2).map(Number) as [number, number, number, number];
      return { start: seconds(t![1]!), end: seconds(t![2]!), uri: p![1]!, x, y, w, h };
    });
}

/** An image (or a region of it) as a small grey picture, to compare pictures roughly. */
async function greyPixels(file: string, options: { crop?: string; seek?: number } = {}): Promise<Buffer> {
  const filters = [...(options.crop ? [`crop=${options.crop}`] : []), "scale=32:18:flags=area", "format=gray"];
  const seek = options.seek === undefined ? [] : ["-ss", String(options.seek)];
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", ...seek, "-i", file, "-frames:v", "1", "-vf", filters.join(","), "-f", "rawvideo", "-"],
    { encoding: "buffer" },
  );
  return stdout;
}

const meanDifference = (a: Buffer, b: Buffer) => {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
};

async function imageSize(file: string): Promise<{ width: number; height: number }> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "json", file]);
  return JSON.parse(stdout).streams[0];
}

/** The ffmpeg processes the API (in this test process) runs now. */
const apiFfmpeg = () => childrenOf().filter((p) => p.command === "ffmpeg");

/** Waits (up to 10 s) until the API runs an ffmpeg process, and returns those it runs. */
async function ffmpegStarted(): Promise<ProcessInfo[]> {
  for (let i = 0; i < 2000; i++) {
    const running = apiFfmpeg();
    if (running.length) return running;
    await sleep(5);
  }
  return [];
}

/**
 * Watches the ffmpeg processes this test process (the API runs in it; the worker is another
 * process) has running; `stop` says how many there were at most at once and how many were seen.
 */
function watchApiFfmpeg() {
  const seen = new Set<number>();
  let most = 0;
  const sample = () => {
    const running = apiFfmpeg();
    for (const p of running) seen.add(p.pid);
    most = Math.max(most, running.length);
  };
  const timer = setInterval(sample, 10);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { most, seen: seen.size };
    },
  };
}

describe("storyboards, thumbnails and animated previews", () => {
  let t: TestApp;
  let clip: string;
  let scratch: string;
  let publicId: string;
  let video: Video;
  const absolute = (p: string) => (p.startsWith("http") ? p : `${t.url}${p}`);
  const get = (p: string) => fetch(absolute(p));
  /** A GET sent from another loopback address: another client, as the API counts clients. */
  const getFrom = (localAddress: string, p: string) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      http
        .get(absolute(p), { localAddress }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
        })
        .on("error", reject);
    });

  /** Saves a response body to a scratch file, for ffmpeg/ffprobe to read. */
  async function saved(res: Response, name: string): Promise<string> {
    const file = path.join(scratch, name);
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
    return file;
  }

  async function readyVideo(policy: "PUBLIC" | "SIGNED", format: "TS" | "FMP4" = "TS"): Promise<string> {
    const created = await createUpload(t, policy, { playbackPolicy: policy, segmentFormat: format });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    const put = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(put.status).toBe(200);
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    return created.id;
  }

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "videograph-storyboard-test-"));
    t = await startTestApp({
      env: { IMAGE_CACHE_BYTES_PER_VIDEO: String(VIDEO_BUDGET), IMAGE_CACHE_BYTES_PER_TENANT: String(TENANT_BUDGET) },
    });
    clip = await makeClip({ width: 320, height: 180, seconds: SECONDS, audio: false });
    publicId = await readyVideo("PUBLIC");
    video = (await t.gql(VIDEO, { id: publicId })).data.video!;
  });
  afterAll(async () => {
    await t?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("makes a storyboard: sheets of cols × tile, and WebVTT cues that cover the video and point inside them", async () => {
    const sb = video.storyboard!;
    expect(sb).toMatchObject({ intervalSeconds: 1, tileCount: SECONDS, tileWidth: 160, tileHeight: 90 });
    expect(sb.columns).toBe(10);
    expect(sb.rows).toBe(2);
    expect(sb.sheetUrls).toHaveLength(1);

    const sheetRes = await get(sb.sheetUrls[0]!);
    expect(sheetRes.status).toBe(200);
    expect(sheetRes.headers.get("content-type")).toBe("image/jpeg");
    const sheet = await saved(sheetRes, "sheet-0.jpg");
    expect(await imageSize(sheet)).toEqual({ width: sb.columns * sb.tileWidth, height: sb.rows * sb.tileHeight });

    const vttRes = await get(sb.vttUrl);
    expect(vttRes.status).toBe(200);
    expect(vttRes.headers.get("content-type")).toBe("text/vtt; charset=utf-8");
    expect(vttRes.headers.get("access-control-allow-origin")).toBe("*");
    const cues = parseVtt(await vttRes.text());
    expect(cues).toHaveLength(sb.tileCount);
    expect(cues[0]!.start).toBe(0);
    for (const [i, cue] of cues.entries()) {
      expect(cue.end).toBeGreaterThan(cue.start);
      if (i > 0) expect(cue.start).toBe(cues[i - 1]!.end);
      expect(cue.w).toBe(sb.tileWidth);
      expect(cue.h).toBe(sb.tileHeight);
      expect(cue.x + cue.w).toBeLessThanOrEqual(sb.columns * sb.tileWidth);
      expect(cue.y + cue.h).toBeLessThanOrEqual(sb.rows * sb.tileHeight);
      // Each cue has its own tile, row by row.
      expect({ x: cue.x, y: cue.y }).toEqual({ x: (i % 10) * 160, y: Math.floor(i / 10) * 90 });
      // The cue's URI resolves, relative to the VTT file, to the sheet the API lists.
      expect(new URL(cue.uri, absolute(sb.vttUrl)).pathname).toBe(new URL(absolute(sb.sheetUrls[0]!)).pathname);
    }
    expect(cues.at(-1)!.end).toBeCloseTo(video.duration!, 2);

    // Tile 7 (second row) shows the source's frame at 7 s, not the one at 3 s.
    const cue = cues[7]!;
    const tile = await greyPixels(sheet, { crop: `${cue.w}:${cue.h}:${cue.x}:${cue.y}` });
    const at7 = await greyPixels(clip, { seek: 7 });
    const at3 = await greyPixels(clip, { seek: 3 });
    expect(meanDifference(tile, at7)).toBeLessThan(3);
    expect(meanDifference(tile, at3)).toBeGreaterThan(5);
  });

  it("the storyboard's WebVTT parses in Chromium as a metadata track with one cue per tile", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${t.url}/livez`);
      const cues = await page.evaluate(async (src) => {
        const video = document.createElement("video");
        const track = document.createElement("track");
        track.kind = "metadata";
        track.src = src;
        video.append(track);
        document.body.append(video);
        const loaded = new Promise((resolve, reject) => {
          track.addEventListener("load", resolve);
          track.addEventListener("error", () => reject(new Error("the track did not load")));
        });
        track.track.mode = "hidden";
        await loaded;
        return Array.from(track.track.cues ?? [], (c) => ({
          start: c.startTime,
          end: c.endTime,
          text: (c as VTTCue).text,
        }));
      }, absolute(video.storyboard!.vttUrl));
      expect(cues).toHaveLength(video.storyboard!.tileCount);
      expect(cues[0]).toEqual({ start: 0, end: 1, text: "sheet-0.jpg#xywh=0,0,160,90" });
      expect(cues[11]).toMatchObject({ start: 11, text: "sheet-0.jpg#xywh=160,90,160,90" });
      expect(cues.at(-1)!.end).toBeCloseTo(video.duration!, 2);
    } finally {
      await browser.close();
    }
  });

  it("makes a thumbnail at any time and width from the published HLS, showing that time's frame", async () => {
    expect(video.thumbnailUrl).toBe(`/media/videos/${publicId}/thumbnail.jpg?time=1&width=160`);
    const base = `/media/videos/${publicId}/thumbnail.jpg`;
    const res1 = await get(`${base}?time=1&width=160`);
    expect(res1.status).toBe(200);
    expect(res1.headers.get("content-type")).toBe("image/jpeg");
    const res3 = await get(`${base}?time=3.04&width=240`);
    expect(res3.status).toBe(200);
    const [thumb1, thumb3] = [await saved(res1, "t1.jpg"), await saved(res3, "t3.jpg")];
    expect(await imageSize(thumb1)).toEqual({ width: 160, height: 90 });
    expect(await imageSize(thumb3)).toEqual({ width: 240, height: 136 });

    const [g1, g3] = [await greyPixels(thumb1), await greyPixels(thumb3)];
    const [src1, src3] = [await greyPixels(clip, { seek: 1 }), await greyPixels(clip, { seek: 3 })];
    expect(meanDifference(g1, g3)).toBeGreaterThan(5);
    expect(meanDifference(g1, src1)).toBeLessThan(meanDifference(g1, src3) / 2);
    expect(meanDifference(g3, src3)).toBeLessThan(meanDifference(g3, src1) / 2);

    // The last moment of the video has a frame too.
    const last = await get(`${base}?time=${SECONDS}&width=160`);
    expect(last.status).toBe(200);
  });

  /** An fMP4 video, made once: the cache count test uses it too (a video whose cache is not the public one's). */
  let fmp4Video: Promise<string> | undefined;
  const fmp4Id = () => {
    fmp4Video ??= readyVideo("PUBLIC", "FMP4");
    return fmp4Video;
  };

  it("makes thumbnails of an fMP4 (CMAF) video from its init segment and media segments", async () => {
    const id = await fmp4Id();
    const base = `/media/videos/${id}/thumbnail.jpg`;
    const [res1, res3] = [await get(`${base}?time=1&width=160`), await get(`${base}?time=3.04&width=160`)];
    expect([res1.status, res3.status]).toEqual([200, 200]);
    const [thumb1, thumb3] = [await saved(res1, "f1.jpg"), await saved(res3, "f3.jpg")];
    expect(await imageSize(thumb1)).toEqual({ width: 160, height: 90 });
    const [g1, g3] = [await greyPixels(thumb1), await greyPixels(thumb3)];
    const [src1, src3] = [await greyPixels(clip, { seek: 1 }), await greyPixels(clip, { seek: 3 })];
    expect(meanDifference(g1, src1)).toBeLessThan(meanDifference(g1, src3) / 2);
    expect(meanDifference(g3, src3)).toBeLessThan(meanDifference(g3, src1) / 2);
  });

  it("caches a thumbnail in storage: the second request is served without making it again", async () => {
    const url = `/media/videos/${publicId}/thumbnail.jpg?time=5.02&width=200`;
    const first = await get(url);
    expect(first.status).toBe(200);
    expect(first.headers.get("x-image-cache")).toBe("miss");
    const firstBytes = Buffer.from(await first.arrayBuffer());
    // Time rounded to 0.1 s (5.0 s = 5000 ms) and width are the key.
    const cached = path.join(t.dataDir, "videos", publicId, "thumbnails", "at", "5000-w200.jpg");
    const made = await stat(cached);
    expect(await readFile(cached)).toEqual(firstBytes);

    const watch = watchApiFfmpeg();
    const second = await get(`/media/videos/${publicId}/thumbnail.jpg?time=4.98&width=200`);
    expect(second.status).toBe(200);
    expect(second.headers.get("x-image-cache")).toBe("hit");
    expect(Buffer.from(await second.arrayBuffer())).toEqual(firstBytes);
    const after = await stat(cached);
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: made.ino, mtimeMs: made.mtimeMs });
    expect(watch.stop().seen, "ffmpeg processes started for the cached image").toBe(0);
  });

  it("caches at most MAX_CACHED_IMAGES_PER_VIDEO images per video: past it an image is sent, not stored", async () => {
    // A video whose cache is one place from full, as after that many distinct requests.
    const id = await fmp4Id();
    const db = t.app.services.db;
    await db.video.update({ where: { id }, data: { cachedImages: MAX_CACHED_IMAGES_PER_VIDEO - 1 } });
    const atDir = path.join(t.dataDir, "videos", id, "thumbnails", "at");
    // The images the fMP4 test stored, if it ran.
    const before = await readdir(atDir).catch(() => []);
    expect(before).not.toContain("2000-w64.jpg");
    const stored = [...before, "2000-w64.jpg"].sort();

    const last = await get(`/media/videos/${id}/thumbnail.jpg?time=2&width=64`);
    expect(last.status).toBe(200);
    expect(last.headers.get("x-image-cache")).toBe("miss");
    expect((await readdir(atDir)).sort()).toEqual(stored);

    const beyond = await get(`/media/videos/${id}/thumbnail.jpg?time=3&width=64`);
    expect(beyond.status).toBe(200);
    expect(beyond.headers.get("x-image-cache")).toBe("full");
    expect(beyond.headers.get("content-type")).toBe("image/jpeg");
    const file = await saved(beyond, "beyond.jpg");
    expect(await imageSize(file)).toEqual({ width: 64, height: 36 });
    // Sent, not stored: the folder and the count stay as they were.
    expect((await readdir(atDir)).sort()).toEqual(stored);
    const { cachedImages } = await db.video.findUniqueOrThrow({ where: { id }, select: { cachedImages: true } });
    expect(cachedImages).toBe(MAX_CACHED_IMAGES_PER_VIDEO);
  });

  it("makes several images for one client: one ffmpeg process at a time, the rest wait", async () => {
    const urls = [2, 4, 6, 8, 10].map((s) => `/media/videos/${publicId}/thumbnail.jpg?time=${s}&width=96`);
    const watch = watchApiFfmpeg();
    const responses = await Promise.all([...urls, urls[0]!].map(get));
    const { most, seen } = watch.stop();
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(most, "ffmpeg processes at once").toBe(1);
    // Five images, each made once (the repeated request shares the run); a short run may escape the watch.
    expect(seen).toBeGreaterThanOrEqual(1);
    expect(seen).toBeLessThanOrEqual(5);
    expect(
      new Set(await Promise.all(responses.map(async (r) => Buffer.from(await r.arrayBuffer()).length))).size,
    ).toBeGreaterThan(1);
  });

  it("makes animated WebP and GIF previews of a range, cached the same way", async () => {
    const webp = await get(`/media/videos/${publicId}/animated.webp?start=2&end=4&width=160`);
    expect(webp.status).toBe(200);
    expect(webp.headers.get("content-type")).toBe("image/webp");
    const bytes = Buffer.from(await webp.arrayBuffer());
    expect(bytes.subarray(0, 4).toString("latin1")).toBe("RIFF");
    expect(bytes.subarray(8, 12).toString("latin1")).toBe("WEBP");
    expect(bytes.includes(Buffer.from("ANIM"))).toBe(true);
    expect(bytes.includes(Buffer.from("ANMF"))).toBe(true);

    const gifRes = await get(video.animatedPreviewUrl!);
    expect(gifRes.status).toBe(200);
    expect(gifRes.headers.get("content-type")).toBe("image/gif");
    const gif = await saved(gifRes, "preview.gif");
    const { stdout } = await run("ffprobe", [
      ...["-v", "error", "-count_frames", "-show_entries", "stream=width,height,nb_read_frames", "-of", "json", gif],
    ]);
    const stream = JSON.parse(stdout).streams[0];
    expect({ width: stream.width, height: stream.height }).toEqual({ width: 160, height: 90 });
    expect(Number(stream.nb_read_frames)).toBeGreaterThanOrEqual(19);
    expect(Number(stream.nb_read_frames)).toBeLessThanOrEqual(21);

    const again = await get(video.animatedPreviewUrl!);
    expect(again.headers.get("x-image-cache")).toBe("hit");

    // Without `end` and `width`: 3 s, 240 px wide.
    const cheap = await saved(await get(`/media/videos/${publicId}/animated.gif?start=8`), "default.gif");
    const probed = await run("ffprobe", [
      ...["-v", "error", "-count_frames", "-show_entries", "stream=width,nb_read_frames", "-of", "json", cheap],
    ]);
    const defaults = JSON.parse(probed.stdout).streams[0];
    expect(defaults.width).toBe(240);
    expect(Number(defaults.nb_read_frames)).toBeGreaterThanOrEqual(29);
    expect(Number(defaults.nb_read_frames)).toBeLessThanOrEqual(31);
  });

  it("stops making an image when its request goes: ffmpeg is killed at once and nothing is stored", async () => {
    const atDir = path.join(t.dataDir, "videos", publicId, "thumbnails", "at");
    const listed = () => readdir(atDir).catch(() => []);
    const before = await listed();
    const counted = () =>
      t.app.services.db.video.findUniqueOrThrow({
        where: { id: publicId },
        select: { cachedImages: true, cachedImageBytes: true },
      });
    const countedBefore = await counted();
    const url = `/media/videos/${publicId}/animated.gif?start=6&end=11&width=320`;
    const controller = new AbortController();
    const request = fetch(absolute(url), { signal: controller.signal }).catch((err: Error) => err);
    const ffmpeg = await ffmpegStarted();
    expect(ffmpeg, "ffmpeg making the preview").toHaveLength(1);
    controller.abort();
    expect(await request).toBeInstanceOf(Error);
    const t0 = Date.now();
    while (ffmpeg.some(stillRunning) && Date.now() - t0 < 3000) await sleep(10);
    expect(Date.now() - t0, "ms until ffmpeg was gone").toBeLessThan(1000);
    // Had it run on, it would have finished and been stored by now.
    await sleep(1500);
    expect(await listed()).toEqual(before);
    expect(await counted()).toEqual(countedBefore);
    // The slot and the client's share are free: the same client gets the image when it asks again.
    const again = await get(url);
    expect(again.status).toBe(200);
    expect(again.headers.get("x-image-cache")).toBe("miss");
    await again.arrayBuffer();
  });

  it("makes one image at a time for a client, with 4 more waiting: another client's thumbnail is still made", async () => {
    // One client asks for 18 distinct GIFs at once (enough to fill both slots and the queue of 16).
    const gifs = Array.from(
      { length: 18 },
      (_, i) =>
        `/media/videos/${publicId}/animated.gif?start=${(i * 0.3).toFixed(1)}&end=${(i * 0.3 + 5).toFixed(1)}&width=320`,
    );
    const watch = watchApiFfmpeg();
    const t0 = Date.now();
    const fromA = gifs.map(async (url) => {
      const res = await get(url);
      await res.arrayBuffer();
      return { status: res.status, ms: Date.now() - t0, retryAfter: res.headers.get("retry-after") };
    });
    expect(await ffmpegStarted()).not.toHaveLength(0);
    // Another client (another address) while the first one's render runs.
    const fromB = await getFrom("127.0.0.2", `/media/videos/${publicId}/thumbnail.jpg?time=7.5&width=128`);
    expect(fromB.status).toBe(200);
    expect(fromB.body.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    const a = await Promise.all(fromA);
    const { most } = watch.stop();
    expect(most, "ffmpeg processes at once").toBeLessThanOrEqual(2);
    const refused = a.filter((r) => r.status === 429);
    expect(a.filter((r) => r.status !== 429).map((r) => r.status)).toContain(200);
    expect(a.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    // One made at a time, four waiting: the rest are refused (unless some ended meanwhile).
    expect(refused.length).toBeGreaterThanOrEqual(10);
    expect(refused.length).toBeLessThanOrEqual(13);
    for (const r of refused) expect(r.retryAfter).toBe("2");
    // Refused without waiting for the render it holds: before any of its images is made (a bound on
    // the code, not on the machine's speed).
    const made = a.filter((r) => r.status === 200);
    expect(Math.min(...refused.map((r) => r.ms))).toBeLessThan(Math.min(...made.map((r) => r.ms)));
  });

  it("caches images within byte budgets per video and per tenant: past one, an image is sent, not stored", async () => {
    const id = await readyVideo("PUBLIC");
    const db = t.app.services.db;
    const { tenantId } = await db.video.findUniqueOrThrow({ where: { id }, select: { tenantId: true } });
    const counters = async () => {
      const video = await db.video.findUniqueOrThrow({
        where: { id },
        select: { cachedImages: true, cachedImageBytes: true },
      });
      const tenant = await db.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { cachedImageBytes: true } });
      return { images: video.cachedImages, video: video.cachedImageBytes, tenant: tenant.cachedImageBytes };
    };
    const atDir = path.join(t.dataDir, "videos", id, "thumbnails", "at");
    const start = await counters();
    expect(start).toMatchObject({ images: 0, video: 0 });

    const first = await get(`/media/videos/${id}/animated.gif?start=1&end=3&width=160`);
    expect(first.status).toBe(200);
    expect(first.headers.get("x-image-cache")).toBe("miss");
    await first.arrayBuffer();
    const [stored] = await readdir(atDir);
    const size = (await stat(path.join(atDir, stored!))).size;
    expect(size).toBeGreaterThan(1000);
    // The counters hold the stored image's real bytes.
    expect(await counters()).toEqual({ images: 1, video: size, tenant: start.tenant + BigInt(size) });

    // The video's budget has 10 bytes of room left.
    await db.video.update({ where: { id }, data: { cachedImageBytes: VIDEO_BUDGET - 10 } });
    const overVideo = await get(`/media/videos/${id}/thumbnail.jpg?time=3&width=64`);
    expect(overVideo.status).toBe(200);
    expect(overVideo.headers.get("x-image-cache")).toBe("full");
    expect(await imageSize(await saved(overVideo, "over-video.jpg"))).toEqual({ width: 64, height: 36 });
    expect(await readdir(atDir)).toEqual([stored]);
    expect(await counters()).toEqual({ images: 1, video: VIDEO_BUDGET - 10, tenant: start.tenant + BigInt(size) });

    // Room in the video's budget, 10 bytes in the tenant's.
    await db.video.update({ where: { id }, data: { cachedImageBytes: size } });
    await db.tenant.update({ where: { id: tenantId }, data: { cachedImageBytes: BigInt(TENANT_BUDGET - 10) } });
    const overTenant = await get(`/media/videos/${id}/thumbnail.jpg?time=4&width=64`);
    expect(overTenant.status).toBe(200);
    expect(overTenant.headers.get("x-image-cache")).toBe("full");
    await overTenant.arrayBuffer();
    expect(await readdir(atDir)).toEqual([stored]);
    expect(await counters()).toEqual({ images: 1, video: size, tenant: BigInt(TENANT_BUDGET - 10) });
    await db.tenant.update({ where: { id: tenantId }, data: { cachedImageBytes: start.tenant + BigInt(size) } });

    // Deleting the video gives its images' bytes back to the tenant.
    const deleted = await t.gql(DELETE, { id });
    expect(deleted.errors).toBeUndefined();
    const tenant = await db.tenant.findUniqueOrThrow({ where: { id: tenantId }, select: { cachedImageBytes: true } });
    expect(tenant.cachedImageBytes).toBe(start.tenant);
  });

  it("answers 400 to hostile or out-of-range parameters", async () => {
    const thumb = `/media/videos/${publicId}/thumbnail.jpg`;
    const animated = `/media/videos/${publicId}/animated.webp`;
    const bad = [
      `${thumb}`,
      `${thumb}?time=abc`,
      `${thumb}?time=-1`,
      `${thumb}?time=1e2`,
      `${thumb}?time=NaN`,
      `${thumb}?time=Infinity`,
      `${thumb}?time=0x10`,
      `${thumb}?time=${SECONDS + 1}`,
      `${thumb}?time=1&width=15`,
      `${thumb}?time=1&width=161`,
      `${thumb}?time=1&width=1922`,
      `${thumb}?time=1&width=-160`,
      `${thumb}?time=1&width=16.0`,
      `${thumb}?time=1&width=${"9".repeat(400)}`,
      `${animated}?start=4&end=2`,
      `${animated}?start=1&end=11.5`,
      `${animated}?start=${SECONDS}&end=${SECONDS}`,
      `${animated}?start=1&end=2&width=642`,
      `${animated}?start=1&end=2&width=482`,
      `${animated}?start=0&end=5.5&width=160`,
      `${animated}?start=0&end=4&width=480`,
      `${animated}?start=0&end=5&width=322`,
      `${animated}?start=1&end=3;rm`,
    ];
    for (const url of bad) {
      const res = await get(url);
      expect(res.status, url).toBe(400);
      expect(await res.text(), url).toMatch(/^Bad request: /);
    }
    const tooBig = await get(`${animated}?start=0&end=4&width=480`);
    expect(await tooBig.text()).toBe(
      "Bad request: an animated preview 480 px wide lasts at most 3.3 s (width × seconds at most 1600)",
    );
    const tooLong = await get(`${animated}?start=0&end=5.5`);
    expect(await tooLong.text()).toBe("Bad request: an animated preview lasts at most 5 s");
    // Other names under a video, and other methods, are not images.
    expect((await get(`/media/videos/${publicId}/thumbnail.png?time=1`)).status).toBe(404);
    expect((await fetch(`${t.url}${thumb}?time=1`, { method: "POST" })).status).toBe(405);
    expect((await get(`/media/videos/00000000-0000-4000-8000-000000000000/thumbnail.jpg?time=1`)).status).toBe(404);
    // A video with nothing published yet: no images, and no URLs for them.
    const waiting = (await createUpload(t, "waiting", { playbackPolicy: "PUBLIC" })).id;
    const notReady = await get(`/media/videos/${waiting}/thumbnail.jpg?time=0`);
    expect(notReady.status).toBe(409);
    const none = (await t.gql(VIDEO, { id: waiting })).data.video;
    expect(none).toMatchObject({ storyboard: null, thumbnailUrl: null, animatedPreviewUrl: null });

    for (const [time, width] of [
      [-1, 160],
      [SECONDS + 5, 160],
      [1, 17],
      [1, 4096],
    ] as const) {
      const res = await t.gql(THUMBNAIL_URL, { id: publicId, t: time, w: width });
      expect(res.errors?.[0]?.extensions?.code, `${time} ${width}`).toBe("BAD_USER_INPUT");
    }
  });

  describe("a SIGNED video", () => {
    let signedId: string;
    let signed: Video;
    const withToken = (url: string, token: string | null) => {
      const u = new URL(absolute(url));
      if (token === null) u.searchParams.delete("token");
      else u.searchParams.set("token", token);
      return u.toString();
    };
    beforeAll(async () => {
      signedId = await readyVideo("SIGNED");
      signed = (await t.gql(VIDEO, { id: signedId })).data.video!;
    });

    it("needs a playback token for the storyboard, thumbnails and previews", async () => {
      const urls = [
        signed.storyboard!.vttUrl,
        signed.storyboard!.sheetUrls[0]!,
        signed.thumbnailUrl!,
        signed.animatedPreviewUrl!,
      ];
      for (const url of urls) {
        expect(url).toMatch(/[?&]token=/);
        expect((await get(withToken(url, null))).status, url).toBe(403);
        expect((await get(withToken(url, "o.1.forged"))).status, url).toBe(403);
        const res = await get(url);
        expect(res.status, url).toBe(200);
        await res.arrayBuffer();
      }
      // The cached image is published media of the video: the same policy applies to its key.
      const cachedKey = `/media/videos/${signedId}/thumbnails/at/1000-w160.jpg`;
      expect((await get(cachedKey)).status).toBe(403);
    });

    it("hands the token on to the sheets the VTT names", async () => {
      const vttUrl = absolute(signed.storyboard!.vttUrl);
      const cues = parseVtt(await (await get(vttUrl)).text());
      for (const uri of new Set(cues.map((c) => c.uri))) {
        expect(uri).toMatch(/^sheet-\d+\.jpg\?token=/);
        const sheet = await fetch(new URL(uri, vttUrl));
        expect(sheet.status).toBe(200);
        expect(sheet.headers.get("content-type")).toBe("image/jpeg");
        await sheet.arrayBuffer();
      }
    });
  });
});
