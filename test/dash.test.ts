import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withMediaGroup } from "../src/storage/playlists.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { type MotoS3, startAppOnMotoS3 } from "./support/moto-s3.ts";
import { createUpload, finalState } from "./support/uploads.ts";

const SHAKA = fileURLToPath(import.meta.resolve("shaka-player/dist/shaka-player.compiled.js"));
const ADD_CAPTION = graphql(`
  mutation($input: AddCaptionInput!) {
    addCaption(input: $input) { __typename ... on AddCaptionSuccess { caption { id } } }
  }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { status dashUrl playbackUrl variants { name kind height playlistUrl } } }`);
const CUES = "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nhello\n";

/** Uploads a `seconds`-long 320x180 clip with sound and waits for READY; its id. */
async function readyVideo(t: TestApp, title: string, input: { segmentFormat: "TS" | "FMP4"; signed?: boolean }) {
  const clip = await makeClip({ width: 320, height: 180, seconds: 3, audio: true });
  const { id, uploadUrl } = await createUpload(t, title, {
    segmentFormat: input.segmentFormat,
    ...(input.signed ? { playbackPolicy: "SIGNED" as const } : {}),
  });
  const final = finalState(t, id);
  expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
  expect((await final).status).toBe("READY");
  return id;
}

/** Every match of the attribute `name` in `xml`'s elements called `element`, unescaped. */
function attributeValues(xml: string, element: string, name: string): string[] {
  const values: string[] = [];
  for (const tag of xml.match(new RegExp(`<${element}\\b[^>]*>`, "g")) ?? []) {
    const value = new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];
    if (value !== undefined) values.push(value.replaceAll("&amp;", "&"));
  }
  return values;
}

/** The adaptation sets of an MPD, each with its text. */
const adaptationSets = (xml: string) =>
  [...xml.matchAll(/<AdaptationSet\b([^>]*)>([\s\S]*?)<\/AdaptationSet>/g)].map((m) => ({
    attributes: m[1]!,
    contentType: /contentType="([^"]+)"/.exec(m[1]!)?.[1],
    lang: /lang="([^"]+)"/.exec(m[1]!)?.[1],
    body: m[2]!,
  }));

/** A page that plays `mpd` with Shaka Player, muted, and keeps its errors. */
const playerPage = (mpd: string) => `<!doctype html><video muted autoplay playsinline></video>
<script src="/shaka.js"></script><script>
window.shakaErrors = [];
shaka.polyfill.installAll();
const video = document.querySelector("video");
const player = new shaka.Player();
window.player = player;
player.addEventListener("error", (e) => window.shakaErrors.push(String(e.detail && e.detail.code)));
player.attach(video)
  .then(() => player.load(${JSON.stringify(mpd)}))
  .then(() => player.selectTextTrack(player.getTextTracks()[0]))
  .then(() => video.play())
  .catch((e) => window.shakaErrors.push(String(e && (e.code || e.message))));
</script>`;

interface Played {
  currentTime: number;
  duration: number;
  /** Where the media starts on the element's timeline: 0 when presentationTimeOffset is right. */
  firstBuffered: number | null;
  /** The start and end of each cue of the text track shown (the first, selected once loaded). */
  shownCues: number[][];
  videoHeight: number;
  activeHeight: number | null;
  texts: { language: string; label: string | null }[];
  audios: { language: string; label: string | null }[];
  errors: string[];
}

/** Plays `mpd` in Chromium with Shaka Player until `seconds` played (or 30 s passed). */
async function playWithShaka(browser: Browser, mpd: string, seconds: number): Promise<Played> {
  const server = createServer(async (req, res) => {
    if (req.url === "/shaka.js") return res.writeHead(200).end(await readFile(SHAKA));
    res.writeHead(200, { "content-type": "text/html" }).end(playerPage(mpd));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page
      .waitForFunction((s) => (document.querySelector("video")?.currentTime ?? 0) >= s, seconds, { timeout: 30_000 })
      .catch(() => {});
    return await page.evaluate(() => {
      type Track = { active: boolean; height: number | null; language: string; label: string | null };
      const w = window as unknown as {
        player: { getVariantTracks(): Track[]; getTextTracks(): Track[]; getAudioTracks(): Track[] };
        shakaErrors: string[];
      };
      const video = document.querySelector("video")!;
      return {
        currentTime: video.currentTime,
        videoHeight: video.videoHeight,
        activeHeight: w.player.getVariantTracks().find((track) => track.active)?.height ?? null,
        texts: w.player.getTextTracks().map((track) => ({ language: track.language, label: track.label })),
        audios: w.player.getAudioTracks().map((track) => ({ language: track.language, label: track.label })),
        errors: w.shakaErrors,
        duration: video.duration,
        firstBuffered: video.buffered.length > 0 ? video.buffered.start(0) : null,
        shownCues: [...video.textTracks]
          .filter((track) => track.mode === "showing")
          .flatMap((track) => [...(track.cues ?? [])].map((cue) => [cue.startTime, cue.endTime])),
      };
    });
  } finally {
    await page.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** The URIs of a media playlist, in order. */
const uriLines = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#"));

describe("DASH: an MPD over an fMP4 video's HLS segments (public API, real worker, Chromium + Shaka Player)", () => {
  let t: TestApp;
  let browser: Browser;
  /** The video the first test played, which the next one gives an audio track. */
  let playedVideo = "";
  beforeAll(async () => {
    t = await startTestApp();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("lists every rung, the audio and a caption track over the HLS segments; Shaka Player plays it", async () => {
    const id = await readyVideo(t, "dash", { segmentFormat: "FMP4" });
    playedVideo = id;
    const caption = { videoId: id, language: "en", name: "English <CC> & more", text: CUES, default: true };
    expect((await t.gql(ADD_CAPTION, { input: caption })).data.addCaption.__typename).toBe("AddCaptionSuccess");
    const video = (await t.gql(VIDEO, { id })).data.video!;
    expect(video.dashUrl).toBe(`/media/videos/${id}/hls/manifest.mpd`);

    const mpdUrl = new URL(video.dashUrl!, t.url).href;
    const res = await fetch(mpdUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/dash+xml");
    const mpd = await res.text();
    expect(mpd).toContain('type="static"');
    const sets = adaptationSets(mpd);
    expect(sets.map((s) => s.contentType)).toEqual(["video", "audio", "text"]);

    // Each video rung is a representation of its height, naming the rung's own init and segments.
    const rungs = video.variants.filter((v) => v.kind === "VIDEO");
    expect(attributeValues(sets[0]!.body, "Representation", "height").map(Number).sort()).toEqual(
      rungs.map((r) => r.height).sort(),
    );
    for (const rung of video.variants) {
      const playlist = await (await fetch(new URL(rung.playlistUrl!, t.url))).text();
      const set = sets[rung.kind === "VIDEO" ? 0 : 1]!;
      const representation = new RegExp(`<Representation id="${rung.name}"[\\s\\S]*?</Representation>`).exec(
        set.body,
      )?.[0];
      expect(representation, rung.name).toBeDefined();
      expect(representation).toContain(`<BaseURL>${rung.name}/</BaseURL>`);
      expect(attributeValues(representation!, "Initialization", "sourceURL")).toEqual(["init.mp4"]);
      expect(attributeValues(representation!, "SegmentURL", "media")).toEqual(uriLines(playlist));
    }
    const firstSegment = new URL(`${rungs[0]!.name}/seg_00000.m4s`, mpdUrl);
    expect((await fetch(firstSegment)).status).toBe(200);

    // The caption: a WebVTT sidecar with its language and its name, escaped.
    expect(sets[2]!.lang).toBe("en");
    expect(sets[2]!.body).toContain("<Label>English &lt;CC&gt; &amp; more</Label>");
    expect(sets[2]!.attributes).toContain('mimeType="text/vtt"');
    const vtt = /<BaseURL>([^<]+)<\/BaseURL>/.exec(sets[2]!.body)![1]!;
    const vttRes = await fetch(new URL(vtt, mpdUrl));
    expect(vttRes.status).toBe(200);
    expect(await vttRes.text()).toContain("hello");

    const played = await playWithShaka(browser, mpdUrl, 2);
    expect(played.errors).toEqual([]);
    expect(played.currentTime).toBeGreaterThanOrEqual(2);
    expect(played.activeHeight).toBe(played.videoHeight);
    expect(rungs.map((r) => r.height)).toContain(played.activeHeight);
    expect(played.texts).toEqual([{ language: "en", label: "English <CC> & more" }]);
    // The presentation starts at 0 and lasts the clip, and the cue sits where the file puts it.
    expect(played.firstBuffered).toBeLessThan(0.2);
    expect(Math.abs(played.duration - 3)).toBeLessThan(0.2);
    expect(played.shownCues).toEqual([[0.5, 2]]);
    expect(played.audios).toEqual([{ language: "und", label: "default" }]);
  });

  it("an audio rendition the master lists beside the ladder's (as audio tracks are) is an audio set Shaka offers", async () => {
    // The master as an audio track would make it per request, stored here instead: a German
    // rendition of the group every variant plays (over the ladder's own audio playlist).
    const masterFile = path.join(t.dataDir, "videos", playedVideo, "hls", "master.m3u8");
    const master = await readFile(masterFile, "utf8");
    const german = ['NAME="Deutsch"', 'LANGUAGE="de"', "DEFAULT=NO", "AUTOSELECT=YES", 'URI="audio/index.m3u8"'];
    await writeFile(masterFile, withMediaGroup(master, { type: "AUDIO", groupId: "audio", renditions: [german] }));
    const mpdUrl = `${t.url}/media/videos/${playedVideo}/hls/manifest.mpd`;
    const sets = adaptationSets(await (await fetch(mpdUrl)).text());
    expect(sets.map((s) => [s.contentType, s.lang ?? null])).toEqual([
      ["video", null],
      ["audio", null],
      ["audio", "de"],
      ["text", "en"],
    ]);
    const played = await playWithShaka(browser, mpdUrl, 1);
    expect(played.errors).toEqual([]);
    expect(played.currentTime).toBeGreaterThanOrEqual(1);
    expect(played.audios).toEqual([
      { language: "und", label: "default" },
      { language: "de", label: "Deutsch" },
    ]);
  });

  it("a SIGNED video: the MPD needs its token and hands a session token to every URL; Shaka plays it", async () => {
    const id = await readyVideo(t, "dash signed", { segmentFormat: "FMP4", signed: true });
    const other = await readyVideo(t, "other signed", { segmentFormat: "FMP4", signed: true });
    const { dashUrl } = (await t.gql(VIDEO, { id })).data.video!;
    const otherUrl = (await t.gql(VIDEO, { id: other })).data.video!.dashUrl!;
    expect(dashUrl).toMatch(/\/manifest\.mpd\?token=o\./);
    const bare = new URL(dashUrl!.split("?")[0]!, t.url);
    expect((await fetch(bare)).status).toBe(403);
    // Another video's token opens only that video.
    const otherToken = new URL(otherUrl, t.url).searchParams.get("token")!;
    expect((await fetch(`${bare.href}?token=${encodeURIComponent(otherToken)}`)).status).toBe(403);

    const mpdUrl = new URL(dashUrl!, t.url).href;
    const mpd = await (await fetch(mpdUrl)).text();
    const urls = [
      ...attributeValues(mpd, "SegmentURL", "media"),
      ...attributeValues(mpd, "Initialization", "sourceURL"),
      ...(/<BaseURL>([^<]+\.vtt[^<]*)<\/BaseURL>/.exec(mpd)?.slice(1) ?? []),
    ];
    expect(urls.length).toBeGreaterThan(4);
    for (const url of urls) expect(new URL(url, mpdUrl).searchParams.get("token")).toMatch(/^s\./);
    const segment = new URL(`${/<BaseURL>([^<]+)<\/BaseURL>/.exec(mpd)![1]!}${urls[0]!}`, mpdUrl);
    expect((await fetch(segment)).status).toBe(200);
    segment.search = "";
    expect((await fetch(segment)).status).toBe(403);
    // A session token plays on, but cannot open the MPD again.
    const session = new URL(urls[0]!, mpdUrl).searchParams.get("token")!;
    expect((await fetch(`${bare.href}?token=${encodeURIComponent(session)}`)).status).toBe(403);

    const played = await playWithShaka(browser, mpdUrl, 2);
    expect(played.errors).toEqual([]);
    expect(played.currentTime).toBeGreaterThanOrEqual(2);
  });

  it("an MPEG-TS video has no DASH: dashUrl is null and its MPD is a 404 that says why", async () => {
    const id = await readyVideo(t, "ts", { segmentFormat: "TS" });
    const video = (await t.gql(VIDEO, { id })).data.video!;
    expect(video.playbackUrl).toBeTruthy();
    expect(video.dashUrl).toBeNull();
    const res = await fetch(`${t.url}/media/videos/${id}/hls/manifest.mpd`);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/fMP4/);
  });
});

describe("DASH with bucket storage (moto's S3 server): the MPD names init and segments by presigned URL", () => {
  let moto: MotoS3;
  let t: TestApp;
  let stop = async () => {};
  beforeAll(async () => {
    ({ t, moto, stop } = await startAppOnMotoS3());
  });
  afterAll(() => stop());

  it("a SIGNED video: the MPD comes from the API with its token, every segment URL presigned and XML-escaped", async () => {
    const id = await readyVideo(t, "dash s3", { segmentFormat: "FMP4", signed: true });
    const { dashUrl } = (await t.gql(VIDEO, { id })).data.video!;
    // From the API, which makes it, not a presigned URL of the bucket, which has no such object.
    expect(dashUrl).toMatch(new RegExp(`^/media/videos/${id}/hls/manifest\\.mpd\\?token=`));
    const mpdUrl = new URL(dashUrl!, t.url);
    expect((await fetch(mpdUrl.href.split("?")[0]!)).status).toBe(403);
    const mpd = await (await fetch(mpdUrl)).text();
    const urls = [
      ...attributeValues(mpd, "SegmentURL", "media"),
      ...attributeValues(mpd, "Initialization", "sourceURL"),
    ];
    expect(urls.length).toBeGreaterThan(4);
    // Signed URLs have several query parameters: written as &amp; in the MPD.
    expect(mpd).toContain("&amp;X-Amz-");
    for (const url of urls) {
      expect(new URL(url).origin).toBe(moto.endpoint);
      expect(new URL(url).searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    }
    expect((await fetch(urls[0]!)).status).toBe(200);
  });
});
