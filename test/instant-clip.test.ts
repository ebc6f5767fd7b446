import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clipMediaPlaylist } from "../src/http/instant-clip.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const SIGNING_SECRET = "test-signing-secret-test-signing-secret-0123";
const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const URLS = graphql(`query($id: ID!) { video(id: $id) { duration playbackUrl variants { name } } }`);
const ADD_CAPTION = graphql(`
  mutation($id: ID!) { addCaption(input: { videoId: $id, language: "en", name: "English",
    text: "WEBVTT\\n\\n00:00:01.000 --> 00:00:02.000\\nhello\\n" }) { __typename } }`);

/** The URI lines of a playlist, and the `URI="…"` attributes of its tags. */
function urisOf(text: string): string[] {
  return [
    ...text.split("\n").filter((l) => l && !l.startsWith("#")),
    ...[...text.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]!),
  ];
}

function extinfs(text: string): number[] {
  return [...text.matchAll(/^#EXTINF:([\d.]+)/gm)].map((m) => Number(m[1]));
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const run = promisify(execFile);

/** How long a stream of an MPEG-TS file lasts, as ffprobe reads it (its last packet's end less its first's start). */
async function streamSeconds(file: string, stream: "v" | "a"): Promise<number> {
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-select_streams",
    `${stream}:0`,
    "-show_entries",
    "stream=start_time,duration",
    "-of",
    "json",
    file,
  ]);
  const [probed] = JSON.parse(stdout).streams;
  return Number(probed.duration);
}

describe("instant clips: playback URLs over a range of a video (asset_start_time, asset_end_time)", () => {
  let t: TestApp;
  let publicVideo: { id: string; duration: number; playbackUrl: string; variants: { name: string }[] };
  const get = (p: string) => fetch(new URL(p, t.url));
  const videoRung = () => publicVideo.variants.find((v) => v.name !== "audio")!.name;
  const withRange = (p: string, query: string) => `${p}${p.includes("?") ? "&" : "?"}${query}`;

  async function readyVideo(policy: "PUBLIC" | "SIGNED", audio = true) {
    const clip = await makeClip({ width: 320, height: 180, seconds: 10, audio });
    const created = await createUpload(t, `clip source ${policy}`, { playbackPolicy: policy });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    const put = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(put.status).toBe(200);
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const video = (await t.gql(URLS, { id: created.id })).data.video!;
    // READY: its duration and playback URL are known.
    return { id: created.id, ...video, duration: video.duration!, playbackUrl: video.playbackUrl! };
  }

  beforeAll(async () => {
    t = await startTestApp({ env: { SIGNING_SECRET } });
    publicVideo = await readyVideo("PUBLIC");
  });

  /** The segments of a clip's rung playlist `uri` (relative to the master at `masterUrl`), joined into one file. */
  async function downloadClipRung(masterUrl: URL, uri: string, dir: string): Promise<{ file: string; text: string }> {
    const url = new URL(uri, masterUrl);
    const res = await get(url.href);
    expect(res.status, url.href).toBe(200);
    const text = await res.text();
    const bytes: Buffer[] = [];
    for (const segment of urisOf(text))
      bytes.push(Buffer.from(await (await get(new URL(segment, url).href)).arrayBuffer()));
    const file = path.join(dir, `${uri.split("/")[0]}.ts`);
    await writeFile(file, Buffer.concat(bytes));
    return { file, text };
  }

  /** A 12 s video (segments cut at 1, 3, 5, 7, 9 and 11 s) and the start of each of its audio segments. */
  let twelve: Promise<{ playbackUrl: string; audioStarts: number[] }> | undefined;
  function twelveSeconds() {
    twelve ??= (async () => {
      const clip = await makeClip({ width: 320, height: 180, seconds: 12, audio: true });
      const created = await createUpload(t, "twelve seconds", { playbackPolicy: "PUBLIC" });
      const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
      await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
      expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
      const playbackUrl = (await t.gql(URLS, { id: created.id })).data.video!.playbackUrl!;
      const audio = await (await get(new URL("audio/index.m3u8", new URL(playbackUrl, t.url)).href)).text();
      const durations = extinfs(audio);
      return { playbackUrl, audioStarts: durations.map((_, i) => sum(durations.slice(0, i))) };
    })();
    return twelve;
  }

  it(`a clip whose end (or start) falls on a segment boundary, or tens of ms from it, has as much audio as video \
(ffprobe of its downloaded segments)`, async () => {
    const { playbackUrl, audioStarts } = await twelveSeconds();
    // The audio rung is cut on AAC frames: its boundaries sit a few ms before the video's (1, 3, 5, 7, 9, 11 s).
    const audioNine = audioStarts.find((at) => Math.abs(at - 9) < 0.1)!;
    const audioThree = audioStarts.find((at) => Math.abs(at - 3) < 0.1)!;
    expect(audioNine).toBeLessThan(9);
    expect(audioThree).toBeLessThan(3);
    const dir = await mkdtemp(path.join(tmpdir(), "instant-clip-"));
    try {
      for (const [query, videoSeconds] of [
        ["asset_start_time=3&asset_end_time=9", 6],
        [`asset_start_time=3&asset_end_time=${((audioNine + 9) / 2).toFixed(4)}`, 6],
        ["asset_start_time=3&asset_end_time=9.03", 8],
        [`asset_start_time=${((audioThree + 3) / 2).toFixed(4)}&asset_end_time=9`, 8],
        ["asset_start_time=2.97&asset_end_time=8.97", 8],
      ] as const) {
        const masterUrl = new URL(withRange(playbackUrl, query), t.url);
        const children = urisOf(await (await get(masterUrl.href)).text());
        const audioUri = children.find((c) => c.startsWith("audio/"))!;
        const videoUri = children.find((c) => !c.startsWith("audio/"))!;
        const video = await downloadClipRung(masterUrl, videoUri, dir);
        const audio = await downloadClipRung(masterUrl, audioUri, dir);
        const seconds = { video: await streamSeconds(video.file, "v"), audio: await streamSeconds(audio.file, "a") };
        const what = `${query}: ${JSON.stringify(seconds)}\n${video.text}\n${audio.text}`;
        expect(Math.abs(seconds.video - videoSeconds), what).toBeLessThan(0.05);
        // Within the AAC encoder's priming (and the last frame's rounding): far less than a segment.
        expect(Math.abs(seconds.audio - seconds.video), what).toBeLessThan(0.1);
        expect(audio.text.match(/#EXT-X-MEDIA-SEQUENCE:\d+/)![0], what).toBe(
          video.text.match(/#EXT-X-MEDIA-SEQUENCE:\d+/)![0],
        );
        expect(audio.text.trimEnd().endsWith("#EXT-X-ENDLIST"), what).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  afterAll(() => t?.stop());

  it("serves the master with every variant, carrying the range to each rung playlist", async () => {
    const full = await (await get(publicVideo.playbackUrl)).text();
    const res = await get(withRange(publicVideo.playbackUrl, "asset_start_time=3.5&asset_end_time=6.2"));
    expect(res.status).toBe(200);
    const master = await res.text();
    expect(master.match(/#EXT-X-STREAM-INF/g)?.length).toBe(full.match(/#EXT-X-STREAM-INF/g)?.length);
    const children = urisOf(master);
    expect(children.length).toBe(publicVideo.variants.length);
    for (const child of children) expect(child).toMatch(/index\.m3u8\?asset_start_time=3\.5&asset_end_time=6\.2$/);
  });

  it("lists only the segments that overlap the range, numbered as in the whole video, and ends the list", async () => {
    // HLS_SEGMENT_SECONDS=2 in tests: a 1 s first segment, then 2 s ones: 0 [0,1), 1 [1,3), 2 [3,5), 3 [5,7)…
    const master = await (
      await get(withRange(publicVideo.playbackUrl, "asset_start_time=3.5&asset_end_time=6.2"))
    ).text();
    for (const child of urisOf(master)) {
      const url = new URL(child, new URL(publicVideo.playbackUrl, t.url)).href;
      const whole = await (await get(url.split("?")[0]!)).text();
      const res = await get(url);
      expect(res.status).toBe(200);
      const text = await res.text();
      const segments = urisOf(text);
      expect(segments).toEqual(["seg_00002.ts", "seg_00003.ts"]);
      expect(text).toContain("#EXT-X-MEDIA-SEQUENCE:2\n");
      expect(text.trimEnd().endsWith("#EXT-X-ENDLIST")).toBe(true);
      expect(text).toContain(whole.match(/#EXT-X-TARGETDURATION:\d+/)![0]);
      // The EXTINF of each listed segment is the whole video's, and they cover the range.
      const wholeDurations = extinfs(whole);
      expect(extinfs(text)).toEqual(wholeDurations.slice(2, 4));
      const from = sum(wholeDurations.slice(0, 2));
      expect(from).toBeLessThanOrEqual(3.5);
      expect(from + sum(extinfs(text))).toBeGreaterThanOrEqual(6.2 - 0.05);
      for (const segment of segments) {
        const res = await get(new URL(segment, url).href);
        expect(res.status).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
      }
    }
  });

  it("clips from a start to the end, or from the beginning to an end", async () => {
    const rung = `/media/videos/${publicVideo.id}/hls/${videoRung()}/index.m3u8`;
    const whole = await (await get(rung)).text();
    const count = urisOf(whole).length;
    const tail = await (await get(withRange(rung, "asset_start_time=7"))).text();
    expect(urisOf(tail)).toEqual(urisOf(whole).slice(4));
    expect(tail).toContain(`#EXT-X-MEDIA-SEQUENCE:4\n`);
    expect(tail).toContain("#EXT-X-ENDLIST");
    const head = await (await get(withRange(rung, "asset_end_time=1"))).text();
    expect(urisOf(head)).toEqual(["seg_00000.ts"]);
    expect(head).toContain("#EXT-X-MEDIA-SEQUENCE:0\n");
    expect(head).toContain("#EXT-X-ENDLIST");
    expect(count).toBe(6);
  });

  it("refuses hostile ranges with 400 on the master and the rung playlists", async () => {
    const rung = `/media/videos/${publicVideo.id}/hls/${videoRung()}/index.m3u8`;
    for (const query of [
      "asset_start_time=-1",
      "asset_start_time=NaN",
      "asset_end_time=Infinity",
      "asset_start_time=1e3",
      "asset_start_time=0x10",
      "asset_start_time=",
      "asset_start_time=%201",
      "asset_start_time=5&asset_end_time=5",
      "asset_start_time=6&asset_end_time=2",
      "asset_end_time=0",
      "asset_start_time=10",
      "asset_start_time=99999",
      "asset_start_time=123456789012",
    ]) {
      for (const p of [publicVideo.playbackUrl, rung]) {
        const res = await get(withRange(p, query));
        expect(res.status, `${p} ${query}`).toBe(400);
        expect(await res.text()).toMatch(/^Bad request: /);
      }
    }
    // An end past the video's end is the rest of the video.
    expect(urisOf(await (await get(withRange(rung, "asset_start_time=8&asset_end_time=500"))).text())).toEqual([
      "seg_00004.ts",
      "seg_00005.ts",
    ]);
  });

  it("a SIGNED video's clip needs its token, and carries it with the range", async () => {
    const signed = await readyVideo("SIGNED");
    const bare = signed.playbackUrl.split("?")[0]!;
    const refused = await get(withRange(bare, "asset_start_time=3"));
    expect(refused.status).toBe(403);
    await refused.text();
    const res = await get(withRange(signed.playbackUrl, "asset_start_time=3&asset_end_time=5"));
    expect(res.status).toBe(200);
    const children = urisOf(await res.text());
    for (const child of children) expect(child).toMatch(/asset_start_time=3&asset_end_time=5&token=s\./);
    const url = new URL(children[0]!, new URL(signed.playbackUrl, t.url)).href;
    const rung = await (await get(url)).text();
    expect(urisOf(rung).map((u) => u.split("?")[0])).toEqual(["seg_00002.ts"]);
    for (const segment of urisOf(rung)) {
      expect(segment).toMatch(/\?token=s\./);
      const res = await get(new URL(segment, url).href);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // The rung playlist without its token is refused before its range is looked at.
    const noToken = await get(withRange(url.split("?")[0]!, "asset_start_time=-1"));
    expect(noToken.status).toBe(403);
    await noToken.text();
  });

  it("a silent video with a caption track: its clip carries the range to the subtitles; a start past its end is refused", async () => {
    // No audio rung: the subtitle playlist is the master's first child playlist.
    const video = await readyVideo("PUBLIC", false);
    const added = await t.gql(ADD_CAPTION, { id: video.id });
    expect(added.data.addCaption.__typename).toBe("AddCaptionSuccess");
    const master = await (await get(withRange(video.playbackUrl, "asset_start_time=3&asset_end_time=5"))).text();
    const subtitles = /TYPE=SUBTITLES.*URI="([^"]+)"/.exec(master)?.[1];
    expect(subtitles).toMatch(/captions\/.+\/index\.m3u8\?asset_start_time=3&asset_end_time=5$/);
    // The subtitle playlist, listed before the variants, is not what tells the video's length.
    const beyond = await get(withRange(video.playbackUrl, "asset_start_time=99"));
    expect(beyond.status).toBe(400);
    expect(await beyond.text()).toMatch(/^Bad request: /);
  });

  describe("in Chromium + hls.js", () => {
    let browser: Browser;
    let player: Server;
    let playerUrl: string;
    beforeAll(async () => {
      browser = await launchChromium();
      player = createServer(async (req, res) => {
        if (req.url === "/hls.js") return res.writeHead(200).end(await readFile(HLS_JS));
        res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      });
      await new Promise<void>((resolve) => player.listen(0, "127.0.0.1", resolve));
      playerUrl = `http://127.0.0.1:${(player.address() as AddressInfo).port}/`;
    });
    afterAll(async () => {
      await browser?.close();
      await new Promise((resolve) => player?.close(resolve));
    });

    it("plays only the clip's segments, from its start to its end", async () => {
      const page = await browser.newPage();
      const requested: string[] = [];
      page.on("request", (r) => {
        if (r.url().includes("/media/")) requested.push(new URL(r.url()).pathname.split("/").slice(-2).join("/"));
      });
      try {
        const source = new URL(withRange(publicVideo.playbackUrl, "asset_start_time=3.5&asset_end_time=6.2"), t.url);
        await page.goto(`${playerUrl}?src=${encodeURIComponent(source.href)}`);
        await page.waitForFunction(() => document.querySelector("video")?.ended === true, null, { timeout: 30_000 });
        const played = await page.evaluate(() => ({
          duration: document.querySelector("video")!.duration,
          currentTime: document.querySelector("video")!.currentTime,
          fatal: (window as unknown as { hlsErrors: string[] }).hlsErrors,
          fragments: (window as unknown as { fragments: number[] }).fragments,
        }));
        expect(played.fatal).toEqual([]);
        expect(new Set(played.fragments)).toEqual(new Set([2, 3]));
        // Two 2 s segments: the clip lasts 4 s (give or take the first frame's offset), and played to its end.
        expect(played.duration).toBeGreaterThan(3.8);
        expect(played.duration).toBeLessThan(4.2);
        expect(played.currentTime).toBeGreaterThan(3.8);
        const segments = requested.filter((r) => r.endsWith(".ts")).map((r) => r.split("/")[1]);
        expect(new Set(segments)).toEqual(new Set(["seg_00002.ts", "seg_00003.ts"]));
      } finally {
        await page.close();
      }
    });

    it("plays a clip ending on a segment boundary to its end without a stall or a frozen picture", async () => {
      const { playbackUrl } = await twelveSeconds();
      const page = await browser.newPage();
      try {
        const source = new URL(withRange(playbackUrl, "asset_start_time=3&asset_end_time=9"), t.url);
        await page.goto(`${playerUrl}?src=${encodeURIComponent(source.href)}`);
        await page.waitForFunction(() => document.querySelector("video")?.ended === true, null, { timeout: 30_000 });
        const played = await page.evaluate(() => {
          const video = document.querySelector("video")!;
          const w = window as unknown as { hlsErrors: string[]; allErrors: string[]; lastFrameAt: number };
          return {
            duration: video.duration,
            currentTime: video.currentTime,
            fatal: w.hlsErrors,
            errors: w.allErrors,
            // Media time between the last new picture and the end: the picture stood still that long.
            frozen: video.currentTime - w.lastFrameAt,
          };
        });
        expect(played.fatal).toEqual([]);
        expect(played.errors).not.toContain("bufferStalledError");
        // Three 2 s segments of video, and no more audio than that.
        expect(played.duration, JSON.stringify(played)).toBeGreaterThan(5.8);
        expect(played.duration, JSON.stringify(played)).toBeLessThan(6.2);
        expect(played.frozen, JSON.stringify(played)).toBeLessThan(0.5);
      } finally {
        await page.close();
      }
    });
  });
});

/**
 * hls.js plays `?src=` muted, recording the sequence numbers of the fragments it loaded, its errors
 * (fatal ones apart) and the media time of the last picture shown.
 */
const PAGE = `<!doctype html><video muted autoplay playsinline></video><script src="/hls.js"></script><script>
window.hlsErrors = [];
window.fragments = [];
const video = document.querySelector("video");
const hls = new Hls({ debug: false });
window.allErrors = [];
window.lastFrameAt = 0;
hls.on(Hls.Events.ERROR, (_, data) => {
  window.allErrors.push(data.details);
  if (data.fatal) window.hlsErrors.push(data.details);
});
hls.on(Hls.Events.FRAG_LOADED, (_, data) => window.fragments.push(data.frag.sn));
hls.loadSource(new URLSearchParams(location.search).get("src"));
hls.attachMedia(video);
video.play().catch(() => {});
const onFrame = (_now, frame) => { window.lastFrameAt = frame.mediaTime; video.requestVideoFrameCallback(onFrame); };
video.requestVideoFrameCallback(onFrame);
</script>`;

describe("an instant clip of a video still encoding (its rung playlists growing)", () => {
  const growing = (durations: number[], endList = false) =>
    [
      "#EXTM3U",
      "#EXT-X-VERSION:6",
      "#EXT-X-TARGETDURATION:2",
      "#EXT-X-MEDIA-SEQUENCE:0",
      "#EXT-X-PLAYLIST-TYPE:EVENT",
      ...durations.flatMap((d, i) => [`#EXTINF:${d.toFixed(6)},`, `seg_${String(i).padStart(5, "0")}.ts`]),
      ...(endList ? ["#EXT-X-ENDLIST"] : []),
      "",
    ].join("\n");
  const range = { start: 3.5, end: 6.2 };

  it("lists nothing and no end before the range is published, the range so far, then ends at the range's end", () => {
    const before = clipMediaPlaylist(growing([1, 2]), range);
    expect(before).toEqual({ text: expect.not.stringContaining("#EXTINF") });
    expect((before as { text: string }).text).not.toContain("#EXT-X-ENDLIST");

    const partly = (clipMediaPlaylist(growing([1, 2, 2]), range) as { text: string }).text;
    expect(urisOf(partly)).toEqual(["seg_00002.ts"]);
    expect(partly).toContain("#EXT-X-MEDIA-SEQUENCE:2\n");
    expect(partly).not.toContain("#EXT-X-ENDLIST");

    const reached = (clipMediaPlaylist(growing([1, 2, 2, 2]), range) as { text: string }).text;
    expect(urisOf(reached)).toEqual(["seg_00002.ts", "seg_00003.ts"]);
    expect(reached.trimEnd().endsWith("#EXT-X-ENDLIST")).toBe(true);
    // Later segments never join a clip whose list has ended.
    expect((clipMediaPlaylist(growing([1, 2, 2, 2, 2]), range) as { text: string }).text).toBe(reached);
  });

  it("an audio rendition lists the audio segments of the video's clip, and ends with it", () => {
    // Audio segments are cut a few ms before the video's boundaries (AAC frames): 0.98, 2.99, 4.98, 6.98.
    const audio = [0.98, 2.01, 1.99, 2.0, 2.0];
    const clip = (audioSegments: number[], videoSegments: number[], end = false) =>
      clipMediaPlaylist(growing(audioSegments, end), range, growing(videoSegments, end)) as { text: string };
    expect(clip(audio.slice(0, 3), [1, 2]).text).not.toContain("#EXTINF");
    expect(clip(audio.slice(0, 3), [1, 2]).text).not.toContain("#EXT-X-ENDLIST");
    // The video's clip has its first segment: the audio's first, not the next (already published).
    const partly = clip(audio.slice(0, 4), [1, 2, 2]).text;
    expect(urisOf(partly)).toEqual(["seg_00002.ts"]);
    expect(partly).toContain("#EXT-X-MEDIA-SEQUENCE:2\n");
    expect(partly).not.toContain("#EXT-X-ENDLIST");
    // The video's clip has ended at 7 s; the audio that reaches it ends too, without its segment starting at 6.98 s.
    const ended = clip(audio, [1, 2, 2, 2]).text;
    expect(urisOf(ended)).toEqual(["seg_00002.ts", "seg_00003.ts"]);
    expect(ended.trimEnd().endsWith("#EXT-X-ENDLIST")).toBe(true);
    expect(clip(audio, [1, 2, 2, 2, 2], true).text).toBe(ended);
    // Audio published behind the video's clip: not ended yet.
    expect(clip(audio.slice(0, 3), [1, 2, 2, 2]).text).not.toContain("#EXT-X-ENDLIST");
    // A range the video refuses is refused for its audio too.
    expect(clipMediaPlaylist(growing(audio, true), { start: 50, end: null }, growing([1, 2, 2, 2, 2], true))).toEqual({
      problem: expect.stringMatching(/not before the video's end \(9\.000 s\)/),
    });
  });

  it("refuses a start past the end only once the video's length is known", () => {
    expect(clipMediaPlaylist(growing([1, 2]), { start: 50, end: null })).not.toHaveProperty("problem");
    expect(clipMediaPlaylist(growing([1, 2], true), { start: 50, end: null })).toEqual({
      problem: expect.stringMatching(/not before the video's end \(3\.000 s\)/),
    });
  });
});
