import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import { expectTypename, graphql, operationText, type ResultOf } from "./support/graphql.ts";
import { launchChromium } from "./support/console.ts";
import { startAppOnMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { makeClip } from "./support/media-fixtures.ts";

const run = promisify(execFile);
const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));

// Not the shared CREATE_UPLOAD (support/uploads.ts): this checks the segmentFormat createUpload answers with.
const CREATE_UPLOAD = graphql(`
  mutation($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename ... on CreateUploadSuccess { uploadUrl video { id segmentFormat } }
    } }`);
const UPLOAD_VIDEO = graphql(`
  mutation($f: File!, $format: SegmentFormat) {
    uploadVideo(file: $f, title: "multipart", segmentFormat: $format) {
      __typename ... on UploadVideoSuccess { video { id segmentFormat } }
    } }`);
const FROM_URL = graphql(`
  mutation($url: String!) {
    createVideoFromUrl(input: { url: $url, title: "imported", segmentFormat: FMP4 }) {
      __typename ... on RenderSuccess { video { id segmentFormat } }
    } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status error } } }`);
const VIDEO = graphql(
  `query($id: ID!) { video(id: $id) { status segmentFormat playbackUrl variants { name status } } }`,
);

type Input = { title: string; segmentFormat?: "TS" | "FMP4"; playbackPolicy?: "PUBLIC" | "SIGNED" };

/** Creates a video through `createUpload`, PUTs the clip and waits for READY; the video as `video(id)` tells it. */
async function uploadAndWait(t: TestApp, clip: string, input: Input) {
  const created = expectTypename((await t.gql(CREATE_UPLOAD, { input })).data.createUpload, "CreateUploadSuccess");
  expect(created.video.segmentFormat).toBe(input.segmentFormat ?? "TS");
  const done = collectSubscription(t.wsClient(), EVENTS, { id: created.video.id }).done;
  const put = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
  expect(put.status).toBe(200);
  expect((await done).at(-1)!.videoEvents.video).toEqual({ status: "READY", error: null });
  const video = (await t.gql(VIDEO, { id: created.video.id })).data.video!;
  return { id: created.video.id, ...video };
}

const uriLines = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#"));

/** Fetches `url` and expects 200; its body and content type. */
async function get(url: string): Promise<{ body: Buffer; type: string | null; text: string }> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  const body = Buffer.from(await res.arrayBuffer());
  return { body, type: res.headers.get("content-type"), text: body.toString("utf8") };
}

/** The streams ffprobe finds in `bytes` and the packets it reads; ffmpeg decodes them without a word. */
async function probeBytes(dir: string, name: string, bytes: Buffer) {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  const { stdout } = await run("ffprobe", [
    ...["-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets", "-of", "json", file],
  ]);
  const { stderr } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
  expect(stderr, `${name} decodes`).toBe("");
  return (JSON.parse(stdout) as { streams: { codec_name: string; nb_read_packets: string }[] }).streams;
}

/**
 * Every rung of the master at `masterUrl` is fMP4: version 7, `#EXT-X-MAP` before `.m4s` segments; its
 * init followed by a segment is a file ffprobe reads. Returns the rung playlists as served.
 */
async function checkFragmentedLadder(t: TestApp, masterUrl: string, expectToken: boolean) {
  const master = await get(masterUrl);
  const rungs = new Map<string, string>();
  for (const uri of [...uriLines(master.text), ...[...master.text.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]!)]) {
    const playlistUrl = new URL(uri, masterUrl).href;
    const playlist = await get(playlistUrl);
    rungs.set(uri, playlist.text);
    expect(playlist.text).toContain("#EXT-X-VERSION:7\n");
    expect(playlist.text).toContain("#EXT-X-ENDLIST");
    const map = /^#EXT-X-MAP:URI="([^"]+)"$/m.exec(playlist.text)?.[1];
    expect(map, `${uri} names its init segment`).toBeDefined();
    // The map comes before the first segment, so it applies to every one.
    expect(playlist.text.indexOf("#EXT-X-MAP")).toBeLessThan(playlist.text.indexOf("#EXTINF"));
    const segments = uriLines(playlist.text);
    for (const segment of segments) expect(new URL(segment, playlistUrl).pathname).toMatch(/\/seg_\d{5}\.m4s$/);
    if (expectToken) {
      expect(new URL(map!, playlistUrl).searchParams.get("token")).toBeTruthy();
      expect(new URL(segments[0]!, playlistUrl).searchParams.get("token")).toBeTruthy();
    }
    const init = await get(new URL(map!, playlistUrl).href);
    expect(new URL(map!, playlistUrl).pathname).toMatch(/\/init\.mp4$/);
    expect(init.body.subarray(4, 8).toString("latin1")).toBe("ftyp");
    const second = await get(new URL(segments[1]!, playlistUrl).href);
    // The media segment alone: its fragment, no init of its own.
    expect(second.body.subarray(4, 8).toString("latin1")).toBe("moof");
    const streams = await probeBytes(t.dataDir, "init-and-segment.mp4", Buffer.concat([init.body, second.body]));
    expect(streams).toHaveLength(1);
    expect(["h264", "aac"]).toContain(streams[0]!.codec_name);
    expect(Number(streams[0]!.nb_read_packets)).toBeGreaterThan(0);
  }
  return rungs;
}

/** A page that plays `masterUrl` with hls.js, muted; it records hls.js's error events. */
function playerPage(masterUrl: string): string {
  return `<!doctype html><video muted autoplay playsinline></video><script src="/hls.js"></script><script>
window.hlsEvents = [];
const video = document.querySelector("video");
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, data) => window.hlsEvents.push({ details: data.details, fatal: data.fatal }));
hls.loadSource(${JSON.stringify(masterUrl)});
hls.attachMedia(video);
video.play().catch(() => {});
</script>`;
}

/** Plays `masterUrl` in Chromium until `seconds` of it played (or 30 s passed). */
async function play(browser: Browser, masterUrl: string, seconds: number) {
  const server = createServer(async (req, res) => {
    if (req.url === "/hls.js") return res.writeHead(200).end(await readFile(HLS_JS));
    res.writeHead(200, { "content-type": "text/html" }).end(playerPage(masterUrl));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page
      .waitForFunction((s) => (document.querySelector("video")?.currentTime ?? 0) >= s, seconds, { timeout: 30_000 })
      .catch(() => {});
    return await page.evaluate(() => ({
      currentTime: document.querySelector("video")!.currentTime,
      events: (window as unknown as { hlsEvents: { details: string; fatal: boolean }[] }).hlsEvents,
    }));
  } finally {
    await page.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("fMP4 (CMAF) segments, chosen per video (public API, local storage, real worker)", () => {
  let t: TestApp;
  let browser: Browser;
  beforeAll(async () => {
    // Loopback imports allowed: the createVideoFromUrl case fetches from a server of this test.
    t = await startTestApp({ env: { URL_IMPORT_ALLOW_PRIVATE: "true" } });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("segmentFormat FMP4: READY, rung playlists with EXT-X-MAP, init + segment read by ffprobe, hls.js plays it", async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 5, audio: true });
    const video = await uploadAndWait(t, clip, { title: "fmp4", segmentFormat: "FMP4" });
    expect(video.segmentFormat).toBe("FMP4");
    expect(video.variants.every((v) => v.status === "READY")).toBe(true);
    const masterUrl = `${t.url}${video.playbackUrl}`;
    const rungs = await checkFragmentedLadder(t, masterUrl, false);
    expect([...rungs.keys()].sort()).toEqual(video.variants.map((v) => `${v.name}/index.m3u8`).sort());

    const rung = video.variants.find((v) => v.name !== "audio")!.name;
    const base = `${t.url}/media/videos/${video.id}/hls/${rung}`;
    expect((await get(`${base}/init.mp4`)).type).toBe("video/mp4");
    expect((await get(`${base}/seg_00000.m4s`)).type).toBe("video/iso.segment");

    const played = await play(browser, masterUrl, 3);
    expect(played.events.filter((e) => e.fatal)).toEqual([]);
    expect(played.currentTime).toBeGreaterThanOrEqual(3);
  });

  it("a SIGNED fMP4 video: the EXT-X-MAP URI carries the playback token; the init needs one", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 3, audio: true });
    const video = await uploadAndWait(t, clip, { title: "signed", segmentFormat: "FMP4", playbackPolicy: "SIGNED" });
    expect(video.playbackUrl).toMatch(/\/master\.m3u8\?token=/);
    const masterUrl = `${t.url}${video.playbackUrl}`;
    await checkFragmentedLadder(t, masterUrl, true);
    const rung = video.variants.find((v) => v.name !== "audio")!.name;
    const init = `${t.url}/media/videos/${video.id}/hls/${rung}/init.mp4`;
    const refused = await fetch(init);
    expect(refused.status).toBe(403);

    const played = await play(browser, masterUrl, 2);
    expect(played.events.filter((e) => e.fatal)).toEqual([]);
    expect(played.currentTime).toBeGreaterThanOrEqual(2);
  });

  it("uploadVideo and createVideoFromUrl (a made source's transcode) take segmentFormat too", async () => {
    const clip = await readFile(await makeClip({ width: 320, height: 180, seconds: 2, audio: true }));
    const form = new FormData();
    const operations = { query: operationText(UPLOAD_VIDEO), variables: { f: null, format: "FMP4" } };
    form.append("operations", JSON.stringify(operations));
    form.append("map", JSON.stringify({ 0: ["variables.f"] }));
    form.append("0", new Blob([clip], { type: "video/mp4" }), "clip.mp4");
    const res = await fetch(`${t.url}/graphql`, { method: "POST", body: form, headers: ADMIN_AUTH });
    const uploaded = expectTypename(
      ((await res.json()) as { data: ResultOf<typeof UPLOAD_VIDEO> }).data.uploadVideo,
      "UploadVideoSuccess",
    ).video;
    expect(uploaded.segmentFormat).toBe("FMP4");

    const files = createServer((_req, res) => res.writeHead(200, { "content-type": "video/mp4" }).end(clip));
    await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(files.address() as AddressInfo).port}/clip.mp4`;
      const imported = expectTypename((await t.gql(FROM_URL, { url })).data.createVideoFromUrl, "RenderSuccess").video;
      expect(imported.segmentFormat).toBe("FMP4");
      for (const id of [uploaded.id, imported.id]) {
        const done = collectSubscription(t.wsClient(), EVENTS, { id }).done;
        expect((await done).at(-1)!.videoEvents.video).toEqual({ status: "READY", error: null });
        const video = (await t.gql(VIDEO, { id })).data.video!;
        await checkFragmentedLadder(t, `${t.url}${video.playbackUrl}`, false);
      }
    } finally {
      await new Promise((resolve) => files.close(resolve));
    }
  });

  it("TS stays the default: no segmentFormat gives MPEG-TS segments and playlists without EXT-X-MAP", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 3, audio: true });
    const video = await uploadAndWait(t, clip, { title: "default" });
    expect(video.segmentFormat).toBe("TS");
    const masterUrl = `${t.url}${video.playbackUrl}`;
    const child = uriLines((await get(masterUrl)).text)[0]!;
    const playlist = (await get(new URL(child, masterUrl).href)).text;
    expect(playlist).toContain("#EXT-X-VERSION:6\n");
    expect(playlist).not.toContain("#EXT-X-MAP");
    const segments = uriLines(playlist);
    expect(segments.every((s) => /^seg_\d{5}\.ts$/.test(s))).toBe(true);
    const segment = await get(new URL(segments[0]!, new URL(child, masterUrl)).href);
    expect(segment.type).toBe("video/mp2t");
    expect(segment.body[0]).toBe(0x47);
  });
});

describe("fMP4 with bucket storage (moto's S3 server): the EXT-X-MAP URI is presigned like the segments", () => {
  let moto: MotoS3;
  let t: TestApp;
  let stop = async () => {};
  beforeAll(async () => {
    ({ t, moto, stop } = await startAppOnMotoS3());
  });
  afterAll(() => stop());

  it("a SIGNED fMP4 video: playlists from the API need the token, init and segments come presigned", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 3, audio: true });
    const video = await uploadAndWait(t, clip, { title: "s3", segmentFormat: "FMP4", playbackPolicy: "SIGNED" });
    expect((await fetch(`${t.url}${video.playbackUrl!.split("?")[0]}`)).status).toBe(403);
    const rungs = await checkFragmentedLadder(t, `${t.url}${video.playbackUrl}`, false);
    for (const text of rungs.values()) {
      const map = new URL(/^#EXT-X-MAP:URI="([^"]+)"$/m.exec(text)![1]!);
      expect(map.origin).toBe(moto.endpoint);
      expect(map.pathname).toMatch(new RegExp(`/videos/${video.id}/hls/[a-z0-9]+/init\\.mp4$`));
      expect(map.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
      for (const segment of uriLines(text)) expect(new URL(segment).searchParams.has("X-Amz-Signature")).toBe(true);
    }
  });
});
