import { execFile } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
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
const SIGNING_SECRET = "content-protection-cenc-test-signing-secret-0123456789";
const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));
const VIDEO = graphql(`
  query($id: ID!) {
    video(id: $id) {
      playbackUrl dashUrl
      contentProtection { method keyRotationSegments }
      variants { kind playlistUrl }
    }
  }`);
const CLIP = graphql(`
  mutation($input: CreateClipInput!) {
    createClip(input: $input) {
      __typename
      ... on CreateClipSuccess { video { id contentProtection { method keyRotationSegments } } }
      ... on Error { message }
    }
  }`);
const CREATE = graphql(`
  mutation($input: CreateUploadInput!) { createUpload(input: $input) { __typename ... on Error { message } } }`);

/**
 * hls.js plays `master` muted in Chromium through EME's built-in ClearKey; the licence is asked of
 * the URI of the playlist's `EXT-X-KEY` (it carries the playback token). Its errors are kept.
 */
const page = (master: string) => `<!doctype html><video muted autoplay playsinline></video>
<script src="/hls.js"></script><script>
window.hlsErrors = [];
window.licences = 0;
const video = document.querySelector("video");
const hls = new Hls({
  debug: false,
  emeEnabled: true,
  drmSystems: { "org.w3.clearkey": { licenseUrl: ${JSON.stringify(new URL("/media/", master).href)} } },
  licenseXhrSetup: (xhr, _url, context) => {
    window.licences += 1;
    xhr.open("POST", context.decryptdata.uri, true);
  },
});
hls.on(Hls.Events.ERROR, (_, d) => window.hlsErrors.push({ details: d.details, fatal: d.fatal, error: String(d.error) }));
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

/** ffmpeg decodes `file` (with `-decryption_key` when given): its frames' md5 lines, and whether it said nothing. */
async function decoded(file: string, key?: Buffer): Promise<{ frames: string[]; quiet: boolean }> {
  const keyArgs = key ? ["-decryption_key", key.toString("hex")] : [];
  try {
    const { stdout, stderr } = await run(
      "ffmpeg",
      ["-nostdin", "-v", "error", ...keyArgs, "-i", file, "-map", "0:v", "-f", "framemd5", "-"],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    return { frames: stdout.split("\n").filter((l) => l && !l.startsWith("#")), quiet: stderr === "" };
  } catch {
    return { frames: [], quiet: false };
  }
}

/** POSTs a licence request `body` to `url`. */
const askLicence = (url: string, body: unknown, init: RequestInit = {}) =>
  fetch(url, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), ...init });

describe("content protection: CENC (ClearKey) fMP4, licences only with the video's playback token", () => {
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

  it("an fMP4 video's samples are encrypted (encv, tenc), the served playlists name the ClearKey licence, the " +
    "licence decrypts the segments to every frame, is refused without the video's token, and hls.js plays the " +
    "video in Chromium through EME", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 7, audio: true });
    const { id, uploadUrl } = await createUpload(t, "cenc", {
      segmentFormat: "FMP4",
      playbackPolicy: "SIGNED",
      contentProtection: { method: "CENC" },
    });
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    expect((await final).status).toBe("READY");

    const { video } = (await t.gql(VIDEO, { id })).data;
    expect(video!.contentProtection).toEqual({ method: "CENC", keyRotationSegments: null });
    expect(video!.dashUrl).toBeNull();
    const master = at(video!.playbackUrl!, t.url);
    const rungUrl = at(video!.variants.find((v) => v.kind === "VIDEO")!.playlistUrl!, t.url);
    const playlist = await (await fetch(rungUrl)).text();
    const keyLines = playlist.split("\n").filter((l) => l.startsWith("#EXT-X-KEY:"));
    expect(keyLines.length).toBeGreaterThanOrEqual(3);
    const m = /^#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey",KEYFORMATVERSIONS="1",URI="([^"]+)"$/.exec(
      keyLines[0]!,
    );
    expect(m, keyLines[0]).not.toBeNull();
    expect(m![1]).toMatch(/^\.\.\/\.\.\/keys\/clearkey\?token=/);
    const licenceUrl = at(m![1]!, rungUrl);

    const init = Buffer.from(
      await (await fetch(at(/URI="([^"]+)"/.exec(playlist.split("#EXT-X-MAP:")[1]!)![1]!, rungUrl))).arrayBuffer(),
    );
    expect(init.includes("encv")).toBe(true);
    const tenc = init.indexOf("tenc");
    const kid = init.subarray(tenc + 12, tenc + 28);

    const licence = await askLicence(licenceUrl, { kids: [kid.toString("base64url")], type: "temporary" });
    expect(licence.status).toBe(200);
    expect(licence.headers.get("cache-control")).toBe("private, no-store");
    const answer = (await licence.json()) as { keys: { kty: string; kid: string; k: string }[]; type: string };
    expect(answer.type).toBe("temporary");
    expect(answer.keys).toHaveLength(1);
    expect(answer.keys[0]!).toMatchObject({ kty: "oct", kid: kid.toString("base64url") });
    const key = Buffer.from(answer.keys[0]!.k, "base64url");
    expect(key.byteLength).toBe(16);

    const segmentUris = playlist.split("\n").filter((l) => l && !l.startsWith("#"));
    const scratch = path.join(tmpdir(), `cenc-${id}`);
    try {
      for (const [i, uri] of segmentUris.slice(0, 3).entries()) {
        const stored = Buffer.from(await (await fetch(at(uri, rungUrl))).arrayBuffer());
        await writeFile(`${scratch}-${i}.mp4`, Buffer.concat([init, stored]));
        const withKey = await decoded(`${scratch}-${i}.mp4`, key);
        // Every frame of it (the first segment is the short one: segments.ts), without a word from the decoder.
        expect(withKey).toMatchObject({ quiet: true });
        expect(withKey.frames).toHaveLength(i === 0 ? 25 : 50);
        const withoutKey = await decoded(`${scratch}-${i}.mp4`);
        expect(withoutKey.quiet && withoutKey.frames.join() === withKey.frames.join()).toBe(false);
      }
    } finally {
      await rm(`${scratch}-0.mp4`, { force: true });
      await rm(`${scratch}-1.mp4`, { force: true });
      await rm(`${scratch}-2.mp4`, { force: true });
    }

    // The licence needs this video's token: none, another video's, or a forged one is refused; and only for its key id.
    const asked = { kids: [kid.toString("base64url")] };
    const bare = licenceUrl.split("?")[0]!;
    expect((await askLicence(bare, asked)).status).toBe(403);
    const other = tokens.issue("00000000-0000-4000-8000-00000000abcd");
    expect((await askLicence(`${bare}?token=${encodeURIComponent(other)}`, asked)).status).toBe(403);
    expect((await askLicence(`${bare}?token=o.9999999999.${"A".repeat(43)}`, asked)).status).toBe(403);
    expect((await fetch(licenceUrl)).status).toBe(405);
    expect((await askLicence(licenceUrl, { kids: [Buffer.alloc(16, 1).toString("base64url")] })).status).toBe(404);
    expect((await askLicence(licenceUrl, "not json")).status).toBe(400);
    expect((await askLicence(licenceUrl, { kids: ["x".repeat(5000)] })).status).toBe(413);

    // Nothing stored beside the segments holds the key.
    for (const file of await filesUnder(path.join(t.dataDir, "videos", id))) {
      const bytes = await readFile(file);
      expect(bytes.includes(key), file).toBe(false);
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
      expect(await tab.evaluate(() => (window as unknown as { licences: number }).licences)).toBeGreaterThanOrEqual(1);
    } finally {
      await tab.close();
      server.close();
    }
  }, 120_000);

  it("a PUBLIC CENC video's licence still needs the session token its playlists carry, an instant clip keeps the key " +
    "lines, and a clip (createClip) is CENC with a content key of its own, or a ValidationError when it asks for TS", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 7, audio: true });
    const { id, uploadUrl } = await createUpload(t, "public cenc", {
      segmentFormat: "FMP4",
      playbackPolicy: "PUBLIC",
      contentProtection: { method: "CENC" },
    });
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
    expect((await final).status).toBe("READY");
    const { video } = (await t.gql(VIDEO, { id })).data;
    const rungUrl = at(video!.variants.find((v) => v.kind === "VIDEO")!.playlistUrl!, t.url);
    expect(rungUrl).not.toContain("token=");
    const playlist = await (await fetch(rungUrl)).text();
    const licenceUri = /#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,.*URI="([^"]+)"/.exec(playlist)![1]!;
    expect(licenceUri).toMatch(/^\.\.\/\.\.\/keys\/clearkey\?token=s\./);
    const init = Buffer.from(
      await (await fetch(at(/#EXT-X-MAP:URI="([^"]+)"/.exec(playlist)![1]!, rungUrl))).arrayBuffer(),
    );
    const kid = init.subarray(init.indexOf("tenc") + 12, init.indexOf("tenc") + 28).toString("base64url");
    expect((await askLicence(at(licenceUri, rungUrl), { kids: [kid] })).status).toBe(200);
    expect((await askLicence(at(licenceUri, rungUrl).split("?")[0]!, { kids: [kid] })).status).toBe(403);

    const clipped = await (await fetch(`${rungUrl}?asset_start_time=4.5`)).text();
    const clippedSegments = clipped.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(clippedSegments.length).toBeGreaterThan(0);
    expect(clipped.split("\n").filter((l) => l.startsWith("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR"))).toHaveLength(
      clippedSegments.length,
    );

    const made = await t.gql(CLIP, { input: { sourceVideoId: id, start: 1, end: 4 } });
    expect(made.data.createClip).toMatchObject({
      __typename: "CreateClipSuccess",
      video: { contentProtection: { method: "CENC", keyRotationSegments: null } },
    });
    const clipId = (made.data.createClip as { video: { id: string } }).video.id;
    const rows = await t.app.services.db.contentKey.findMany({ where: { videoId: { in: [id, clipId] } } });
    expect(rows).toHaveLength(2);
    const asTs = await t.gql(CLIP, { input: { sourceVideoId: id, start: 1, end: 4, segmentFormat: "TS" } });
    expect(asTs.data.createClip).toMatchObject({
      __typename: "ValidationError",
      message: expect.stringContaining("fMP4"),
    });
  }, 120_000);

  it("CENC is refused for TS segments and with key rotation, with a reason", async () => {
    const ts = await t.gql(CREATE, { input: { title: "ts", contentProtection: { method: "CENC" } } });
    expect(ts.data.createUpload).toMatchObject({
      __typename: "ValidationError",
      message: expect.stringContaining("fMP4"),
    });
    const rotated = await t.gql(CREATE, {
      input: { title: "rotated", segmentFormat: "FMP4", contentProtection: { method: "CENC", keyRotationSegments: 5 } },
    });
    expect(rotated.data.createUpload).toMatchObject({
      __typename: "ValidationError",
      message: expect.stringContaining("not supported with CENC yet"),
    });
  });
});
