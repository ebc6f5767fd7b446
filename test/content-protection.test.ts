import { execFile } from "node:child_process";
import { createDecipheriv } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlaybackTokens } from "../src/http/playback-tokens.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { createUpload, finalState } from "./support/uploads.ts";

const run = promisify(execFile);
const SIGNING_SECRET = "content-protection-test-signing-secret-0123456789";
const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));
const VIDEO = graphql(`
  query($id: ID!) {
    video(id: $id) {
      playbackUrl dashUrl
      contentProtection { method keyRotationSegments }
      variants { kind playlistUrl }
    }
  }`);
const CREATE = graphql(`
  mutation($input: CreateUploadInput!) { createUpload(input: $input) { __typename ... on Error { message } } }`);
const CLIP = graphql(`
  mutation($input: CreateClipInput!) {
    createClip(input: $input) {
      __typename ... on CreateClipSuccess { video { id contentProtection { method keyRotationSegments } } }
    }
  }`);
const REQUEST_MP4 = graphql(`
  mutation($id: ID!) {
    requestStaticRenditions(videoId: $id, names: [HIGHEST]) { __typename ... on Error { message } }
  }`);

/** hls.js plays `master` muted in Chromium; its errors are kept. */
const page = (master: string) => `<!doctype html><video muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
window.hlsErrors = [];
const video = document.querySelector("video");
const hls = new Hls({ debug: false });
hls.on(Hls.Events.ERROR, (_, d) => window.hlsErrors.push({ details: d.details, fatal: d.fatal }));
hls.loadSource(${JSON.stringify(master)});
hls.attachMedia(video);
video.play().catch(() => {});
</script>`;

async function servePage(html: string): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    if (req.url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(html);
    if (req.url === "/hls.js") return res.writeHead(200).end(await readFile(HLS_JS));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** How many H.264 frames ffprobe decodes from `file`: 0 when it finds no video it can read there. */
async function decodedFrames(file: string, format: "mpegts" | "mp4"): Promise<number> {
  try {
    const { stdout } = await run("ffprobe", [
      ...["-v", "error", "-f", format, "-count_frames", "-select_streams", "v:0"],
      ...["-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", file],
    ]);
    const [codec, frames] = stdout.trim().split("\n")[0]!.split(",");
    return codec === "h264" ? Number(frames) || 0 : 0;
  } catch {
    return 0;
  }
}

interface KeyedSegment {
  uri: string;
  keyUri: string;
  iv: string;
}

/** A served rung playlist's segments with the EXT-X-KEY before each. */
function keyedSegments(playlist: string): KeyedSegment[] {
  const out: KeyedSegment[] = [];
  let key: { keyUri: string; iv: string } | null = null;
  for (const line of playlist.split("\n")) {
    const m = /^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)",IV=0x([0-9a-f]{32})$/.exec(line);
    if (m) key = { keyUri: m[1]!, iv: m[2]! };
    else if (line && !line.startsWith("#")) {
      expect(key, `no key before ${line}`).not.toBeNull();
      out.push({ uri: line, ...key! });
      key = null;
    }
  }
  return out;
}

describe("content protection: AES-128 segments, keys only with the video's playback token", () => {
  let t: TestApp;
  let browser: Browser;
  const tokens = new PlaybackTokens(SIGNING_SECRET, 900);
  const at = (uri: string, base: string) => new URL(uri, base).href;

  beforeAll(async () => {
    t = await startTestApp({ env: { SIGNING_SECRET } });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  async function protectedVideo(
    segmentFormat: "TS" | "FMP4",
    keyRotationSegments: number | null,
    playbackPolicy: "SIGNED" | "PUBLIC" = "SIGNED",
  ): Promise<string> {
    const clip = await makeClip({ width: 320, height: 180, seconds: 7, audio: true });
    const contentProtection = { method: "AES_128" as const, keyRotationSegments };
    const { id, uploadUrl } = await createUpload(t, `protected ${segmentFormat}`, {
      segmentFormat,
      playbackPolicy,
      contentProtection,
    });
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    expect((await final).status).toBe("READY");
    return id;
  }

  it.each([
    ["TS", 1],
    ["FMP4", null],
  ] as const)(
    "%s segments (a new key every %s segments): stored segments are no media, the served playlist's keys decrypt " +
      "them to what ffprobe reads, no key is stored, and hls.js plays the video in Chromium",
    async (segmentFormat, keyRotationSegments) => {
      const id = await protectedVideo(segmentFormat, keyRotationSegments);
      const { video } = (await t.gql(VIDEO, { id })).data;
      expect(video!.contentProtection).toEqual({ method: "AES_128", keyRotationSegments });
      expect(video!.dashUrl).toBeNull();
      const master = at(video!.playbackUrl!, t.url);
      const rung = video!.variants.find((v) => v.kind === "VIDEO")!;
      const rungUrl = at(rung.playlistUrl!, t.url);
      const playlist = await (await fetch(rungUrl)).text();
      const segments = keyedSegments(playlist);
      expect(segments.length).toBeGreaterThanOrEqual(3);
      // With rotation every segment has a key URI of its own; without, one URI for all.
      const keyUris = new Set(segments.map((s) => s.keyUri.split("?")[0]));
      expect(keyUris.size).toBe(keyRotationSegments === 1 ? segments.length : 1);

      const format = segmentFormat === "FMP4" ? "mp4" : "mpegts";
      const init =
        segmentFormat === "FMP4"
          ? Buffer.from(
              await (
                await fetch(at(/URI="([^"]+)"/.exec(playlist.split("#EXT-X-MAP:")[1]!)![1]!, rungUrl))
              ).arrayBuffer(),
            )
          : Buffer.alloc(0);
      const scratch = path.join(tmpdir(), `protected-${id}`);
      const keys: string[] = [];
      for (const [i, segment] of segments.slice(0, 3).entries()) {
        const stored = Buffer.from(await (await fetch(at(segment.uri, rungUrl))).arrayBuffer());
        await writeFile(`${scratch}-${i}.enc`, Buffer.concat([init, stored]));
        expect(await decodedFrames(`${scratch}-${i}.enc`, format), "frames decoded from an encrypted segment").toBe(0);

        const keyUrl = at(segment.keyUri, rungUrl);
        const keyRes = await fetch(keyUrl);
        expect(keyRes.status).toBe(200);
        expect(keyRes.headers.get("cache-control")).toBe("private, no-store");
        const key = Buffer.from(await keyRes.arrayBuffer());
        expect(key.byteLength).toBe(16);
        keys.push(key.toString("hex"));
        expect(segment.iv).toBe(i.toString(16).padStart(32, "0"));
        const decipher = createDecipheriv("aes-128-cbc", key, Buffer.from(segment.iv, "hex"));
        await writeFile(`${scratch}-${i}.dec`, Buffer.concat([init, decipher.update(stored), decipher.final()]));
        // Every frame of it (the first segment is the short one: segments.ts).
        expect(await decodedFrames(`${scratch}-${i}.dec`, format)).toBe(i === 0 ? 25 : 50);

        // The key needs this video's token: none, another video's, or a forged one is refused.
        const bare = keyUrl.split("?")[0]!;
        expect((await fetch(bare)).status).toBe(403);
        const other = tokens.issue("00000000-0000-4000-8000-00000000abcd");
        expect((await fetch(`${bare}?token=${encodeURIComponent(other)}`)).status).toBe(403);
        expect((await fetch(`${bare}?token=o.9999999999.${"A".repeat(43)}`)).status).toBe(403);
        expect((await fetch(bare, { method: "POST" })).status).toBe(405);
      }
      expect(new Set(keys).size).toBe(keyRotationSegments === 1 ? 3 : 1);

      // Nothing stored beside the segments names or holds a key.
      const stored = await filesUnder(path.join(t.dataDir, "videos", id));
      for (const file of stored) {
        const bytes = await readFile(file);
        for (const key of keys) expect(bytes.includes(Buffer.from(key, "hex")), file).toBe(false);
        if (file.endsWith(".m3u8")) expect(bytes.toString()).not.toContain("EXT-X-KEY");
      }

      const { url, server } = await servePage(page(master));
      const tab = await browser.newPage();
      try {
        await tab.goto(url);
        await tab.waitForFunction(() => (document.querySelector("video")?.currentTime ?? 0) >= 4, null, {
          timeout: 30_000,
        });
        const errors = await tab.evaluate(() => (window as unknown as { hlsErrors: { fatal: boolean }[] }).hlsErrors);
        expect(errors.filter((e) => e.fatal)).toEqual([]);
      } finally {
        await tab.close();
        server.close();
      }
    },
    120_000,
  );

  it("an instant clip keeps each segment's key and IV, a clip (createClip) gets a key of its own, a PUBLIC " +
    "video's keys still need the session token its playlists carry, and static renditions, DASH and on-request " +
    "images are refused with a reason", async () => {
    const id = await protectedVideo("TS", 2, "PUBLIC");
    const { video } = (await t.gql(VIDEO, { id })).data;
    const rungUrl = at(video!.variants.find((v) => v.kind === "VIDEO")!.playlistUrl!, t.url);
    const whole = keyedSegments(await (await fetch(rungUrl)).text());
    // A public video's playlist URLs carry no token: the served playlist gives one to the key URIs.
    expect(rungUrl).not.toContain("token=");
    expect(whole[0]!.keyUri).toMatch(/^\.\.\/\.\.\/keys\/0\.key\?token=s\./);
    expect((await fetch(at(whole[0]!.keyUri, rungUrl).split("?")[0]!)).status).toBe(403);

    const clipped = keyedSegments(await (await fetch(`${rungUrl}?asset_start_time=4.5`)).text());
    expect(clipped.length).toBeLessThan(whole.length);
    const first = whole.find((s) => s.uri.split("?")[0] === clipped[0]!.uri.split("?")[0])!;
    expect(clipped[0]!.iv).toBe(first.iv);
    expect(clipped[0]!.keyUri.split("?")[0]).toBe(first.keyUri.split("?")[0]);
    // Two segments a key: segment 2 is in key group 1.
    expect(whole[2]!.keyUri.split("?")[0]).toBe("../../keys/1.key");

    const withMp4 = await t.gql(CREATE, {
      input: { title: "mp4", contentProtection: { method: "AES_128" }, staticRenditions: ["HIGHEST"] },
    });
    expect(withMp4.data.createUpload.__typename).toBe("ValidationError");
    expect((await t.gql(REQUEST_MP4, { id })).data.requestStaticRenditions).toMatchObject({
      __typename: "ValidationError",
      message: expect.stringContaining("without the encryption"),
    });
    const badRotation = await t.gql(CREATE, {
      input: { title: "rotation", contentProtection: { method: "AES_128", keyRotationSegments: 0 } },
    });
    expect(badRotation.data.createUpload.__typename).toBe("ValidationError");

    // A clip is protected as its source is, with a key of its own; or unprotected when it says so.
    const clip = await t.gql(CLIP, { input: { sourceVideoId: id, start: 1, end: 4 } });
    expect(clip.data.createClip).toMatchObject({
      __typename: "CreateClipSuccess",
      video: { contentProtection: { method: "AES_128", keyRotationSegments: 2 } },
    });
    const clipId = (clip.data.createClip as { video: { id: string } }).video.id;
    const rows = await t.app.services.db.contentKey.findMany({ where: { videoId: { in: [id, clipId] } } });
    expect(rows).toHaveLength(2);
    expect(Buffer.from(rows[0]!.keyId).equals(Buffer.from(rows[1]!.keyId))).toBe(false);
    const clearClip = await t.gql(CLIP, { input: { sourceVideoId: id, start: 1, end: 4, contentProtection: null } });
    expect(clearClip.data.createClip).toMatchObject({ video: { contentProtection: null } });

    const mpd = await fetch(`${t.url}/media/videos/${id}/hls/manifest.mpd`);
    expect(mpd.status).toBe(404);
    expect(await mpd.text()).toContain("encrypted");
    const thumbnail = await fetch(`${t.url}/media/videos/${id}/thumbnail.jpg?time=1`);
    expect(thumbnail.status).toBe(409);
  }, 120_000);
});
