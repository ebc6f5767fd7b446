import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { fixturesDir, runFfmpeg } from "./support/media-fixtures.ts";
import { createUpload } from "./support/uploads.ts";

const OPTIONS = graphql(`query ($id: ID!) { video(id: $id) {
  title segmentFormat playbackPolicy loudness { integratedLufs truePeakDb lra }
  watermark { position opacity widthFraction } staticRenditions { name status }
} }`);
const DETAILS = graphql(
  `query ($id: ID!) { video(id: $id) { title description tags externalId metadata { key value } } }`,
);
const CAPTIONS = graphql(
  `query ($id: ID!) { video(id: $id) { captions { name language default hearingImpaired cueCount } } }`,
);
const ADD_CAPTION = graphql(`mutation ($input: AddCaptionInput!) { addCaption(input: $input) { __typename } }`);
const CAPTION_NAMES = graphql(`query ($id: ID!) { video(id: $id) { captions { name default } } }`);
const STATIC_RENDITIONS = graphql(`query ($id: ID!) { video(id: $id) { staticRenditions { name status } } }`);
const CLIP = graphql(`query ($id: ID!) { video(id: $id) { title source clip { start end sourceVideo { id } } } }`);
const THUMBNAIL_URL = graphql(`query ($id: ID!) { video(id: $id) { thumbnailUrl(time: 2.5, width: 160) } }`);
const WEBHOOK_ENDPOINTS = graphql(`{ webhookEndpoints { url events } }`);
const CREATE_HOOK = graphql(`
  mutation($input: CreateWebhookEndpointInput!) {
    createWebhookEndpoint(input: $input) { __typename ... on CreateWebhookEndpointSuccess { endpoint { id } } } }`);
const DELIVERY_PAYLOAD = graphql(`query ($id: ID!) { webhookDelivery(id: $id) { payload } }`);

const SET_CHAPTERS = graphql(`
  mutation ($input: SetChaptersInput!) { setChapters(input: $input) { __typename } }`);
const CHAPTERS = graphql(`query ($id: ID!) { video(id: $id) { chapters { startSeconds title } } }`);

/**
 * Makes a video READY with one published 320×180 rung of 4 s (MPEG-TS, 1 s segments, made here by
 * ffmpeg and written to storage as the worker would), so the API can make images from it. No worker.
 */
async function publishReadyVideo(t: TestApp, title: string, options: { storyboardVtt?: string } = {}): Promise<string> {
  const { id } = await createUpload(t, title);
  const dir = path.join(fixturesDir(), `console-rung-${id}`);
  await mkdir(dir, { recursive: true });
  await runFfmpeg([
    ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10:duration=4", "-c:v", "libx264", "-g", "10"],
    ...["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"],
    ...["-hls_segment_filename", path.join(dir, "seg-%d.ts"), path.join(dir, "index.m3u8")],
  ]);
  const storage = t.app.services.storage;
  for (const name of await readdir(dir)) {
    const body = await readFile(path.join(dir, name));
    const contentType = name.endsWith(".ts") ? "video/mp2t" : "application/vnd.apple.mpegurl";
    await storage.write(`videos/${id}/hls/180p/${name}`, Readable.from([body]), { limit: body.length, contentType });
  }
  const db = t.app.services.db;
  if (options.storyboardVtt !== undefined) {
    // One sheet of 2×2 tiles of 80×45, a tile a second, as the worker lays them out.
    const sheet = path.join(dir, "sheet-0.jpg");
    await runFfmpeg([
      ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=1:duration=4"],
      ...["-vf", "scale=80:45,tile=2x2", "-frames:v", "1", sheet],
    ]);
    const files: [string, Buffer, string][] = [
      ["sheet-0.jpg", await readFile(sheet), "image/jpeg"],
      ["storyboard.vtt", Buffer.from(options.storyboardVtt), "text/vtt"],
    ];
    for (const [name, body, contentType] of files) {
      await storage.write(`videos/${id}/storyboard/${name}`, Readable.from([body]), {
        limit: body.length,
        contentType,
      });
    }
    await db.video.update({
      where: { id },
      data: {
        storyboard: {
          vttKey: `videos/${id}/storyboard/storyboard.vtt`,
          sheetKeys: [`videos/${id}/storyboard/sheet-0.jpg`],
          intervalSeconds: 1,
          tileWidth: 80,
          tileHeight: 45,
          columns: 2,
          rows: 2,
          tileCount: 4,
        },
      },
    });
  }
  await db.variant.create({
    data: {
      videoId: id,
      name: "180p",
      kind: "VIDEO",
      width: 320,
      height: 180,
      bandwidth: 300_000,
      codecs: "avc1.64000d",
      status: "READY",
      progress: 1,
      playlistKey: `videos/${id}/hls/180p/index.m3u8`,
    },
  });
  await db.video.update({
    where: { id },
    data: {
      status: "READY",
      duration: 4,
      width: 320,
      height: 180,
      playable: true,
      masterKey: `videos/${id}/hls/master.m3u8`,
    },
  });
  return id;
}

/**
 * The API's features on the console's pages (a video's details, captions, downloads and clips; the
 * creation options of the upload and sources forms; a webhook endpoint's event types), through the
 * real UI in Chromium at a phone's width, each checked by reading the API's state afterwards. No
 * worker: videos are made with createUpload and put in the states a test needs through the database.
 */
describe("the API's features on the console's pages: the video page, creation options, webhook events", () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    await buildConsole();
    [t, browser] = await Promise.all([startTestApp({ worker: false }), launchChromium()]);
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    page = await ctx.newPage();
    await page.goto(`${t.url}/`);
    await page.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Videos" }).waitFor();
    page.on("dialog", (dialog) => void dialog.accept());
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("edits title, description, tags and metadata (updateVideo), and shows a refusal beside its field", async () => {
    const { id } = await createUpload(t, "before", { tags: ["old"], metadata: [{ key: "drop", value: "me" }] });
    await page.goto(`${t.url}/videos/${id}`);
    await page.getByLabel("Title", { exact: true }).waitFor();
    expect(await page.getByLabel("Tags (comma-separated)").inputValue()).toBe("old");
    expect(await page.getByLabel("Key 1").inputValue()).toBe("drop");

    await page.getByLabel("Title", { exact: true }).fill("after");
    await page.getByLabel("Description").fill("two\nlines");
    await page.getByLabel("Tags (comma-separated)").fill("Math, intro ");
    await page.getByRole("button", { name: "Remove metadata entry 1" }).click();
    await page.getByRole("button", { name: "Add metadata entry" }).click();
    await page.getByLabel("Key 1").fill("course");
    await page.getByLabel("Value 1").fill("algebra 1");
    await page.getByRole("button", { name: "Save details" }).click();
    await page.getByText("Saved.").waitFor();
    expect((await t.gql(DETAILS, { id })).data.video).toEqual({
      title: "after",
      description: "two\nlines",
      tags: ["math", "intro"],
      externalId: null,
      metadata: [{ key: "course", value: "algebra 1" }],
    });
    // The page's heading follows the saved title, and the form shows what the API stored.
    await page.getByRole("heading", { name: "after", level: 1 }).waitFor();
    expect(await page.getByLabel("Tags (comma-separated)").inputValue()).toBe("math, intro");

    // A refusal (a tag over 64 characters) is shown under the tags, which name it, and nothing changes.
    await page.getByLabel("Tags (comma-separated)").fill(`ok, ${"x".repeat(65)}`);
    await page.getByRole("button", { name: "Save details" }).click();
    const tags = page.getByLabel("Tags (comma-separated)");
    await expect.poll(() => tags.getAttribute("aria-invalid")).toBe("true");
    const error = page.locator(`#${await tags.getAttribute("aria-describedby")}`);
    expect(await error.textContent()).toMatch(/longer than 64 characters/);
    expect(await page.getByLabel("Title", { exact: true }).getAttribute("aria-invalid")).toBeNull();
    expect((await t.gql(DETAILS, { id })).data.video!.tags).toEqual(["math", "intro"]);
    // Nothing is wider than the phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("takes creation options at upload and on the sources forms, from one options component", async () => {
    const png = path.join(fixturesDir(), "console-logo.png");
    await runFfmpeg(["-f", "lavfi", "-i", "color=white:size=64x64", "-frames:v", "1", png]);

    await page.goto(`${t.url}/upload`);
    await page.getByText("Video options").click();
    await page.getByLabel("Segment format").selectOption("FMP4");
    await page.getByLabel("Playback").selectOption("SIGNED");
    await page.getByLabel("MP4, full size").check();
    await page.getByLabel("M4A, audio only").check();
    await page.getByLabel("Normalize loudness (EBU R128)").check();
    await page.getByLabel("Integrated (LUFS)").fill("-20");
    await page
      .getByLabel("Upload a watermark image")
      .setInputFiles({ name: "logo.png", mimeType: "image/png", buffer: await readFile(png) });
    await expect.poll(() => page.getByLabel("Watermark image", { exact: true }).inputValue()).not.toBe("");
    await page.getByLabel("Corner").selectOption("TOP_LEFT");
    await page.getByLabel("Opacity (0 to 1)").fill("0.5");
    await page
      .getByTestId("file-input")
      .setInputFiles({ name: "with-options.mp4", mimeType: "video/mp4", buffer: Buffer.alloc(4096, 1) });
    const open = page.getByRole("link", { name: "Open the video" });
    await open.waitFor();
    const uploaded = (await open.getAttribute("href"))!.split("/").at(-1)!;
    expect((await t.gql(OPTIONS, { id: uploaded })).data.video).toEqual({
      title: "with-options",
      segmentFormat: "FMP4",
      playbackPolicy: "SIGNED",
      loudness: { integratedLufs: -20, truePeakDb: -1.5, lra: 11 },
      watermark: { position: "TOP_LEFT", opacity: 0.5, widthFraction: 0.15 },
      staticRenditions: [
        { name: "HIGHEST", status: "PREPARING" },
        { name: "AUDIO", status: "PREPARING" },
      ],
    });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

    // The URL import's form has the same fields, its own; the watermark uploaded above is offered.
    await page.goto(`${t.url}/sources`);
    const form = page.locator("form", { has: page.locator("#url-title") });
    await form.getByText("Video options").click();
    await form.getByLabel("Segment format").selectOption("FMP4");
    await form.getByLabel("MP4, small").check();
    await form.getByLabel("Watermark image", { exact: true }).selectOption({ label: "logo.png" });
    await form.getByLabel("Public http(s) URL of a video file").fill("https://example.com/video.mp4");
    await form.getByRole("button", { name: "Import" }).click();
    await page.waitForURL(/\/videos\//);
    const imported = new URL(page.url()).pathname.split("/").at(-1)!;
    expect((await t.gql(OPTIONS, { id: imported })).data.video).toEqual({
      title: "Imported video",
      segmentFormat: "FMP4",
      playbackPolicy: "PUBLIC",
      loudness: null,
      watermark: { position: "BOTTOM_RIGHT", opacity: 0.8, widthFraction: 0.15 },
      staticRenditions: [{ name: "LOW", status: "PREPARING" }],
    });

    // The quiz form keeps its options in its draft, like its other fields.
    await page.goto(`${t.url}/sources`);
    const quiz = page.locator("form", { has: page.locator("#quiz-title") });
    await quiz.getByText("Video options").click();
    await quiz.getByLabel("Playback").selectOption("SIGNED");
    await quiz.getByLabel("M4A, audio only").check();
    await page.reload();
    await quiz.getByText("Video options").click();
    expect(await quiz.getByLabel("M4A, audio only").isChecked()).toBe(true);
    await quiz.getByRole("button", { name: "Render quiz" }).click();
    await page.waitForURL((url) => url.pathname !== "/sources");
    const quizVideo = new URL(page.url()).pathname.split("/").at(-1)!;
    expect((await t.gql(OPTIONS, { id: quizVideo })).data.video).toMatchObject({
      segmentFormat: "TS",
      playbackPolicy: "SIGNED",
      staticRenditions: [{ name: "AUDIO", status: "PREPARING" }],
    });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("lists, adds (addCaption) and removes (removeCaption) caption tracks, showing a refusal", async () => {
    const { id } = await createUpload(t, "captioned");
    const captions = async () => (await t.gql(CAPTIONS, { id })).data.video!.captions;
    await page.goto(`${t.url}/videos/${id}`);
    await page.getByText("No caption tracks.").waitFor();
    const vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello\n\n00:00:01.000 --> 00:00:02.000\nWorld\n";
    await page
      .getByLabel("Caption file (WebVTT or SRT, at most 1 MiB)")
      .setInputFiles({ name: "English.vtt", mimeType: "text/vtt", buffer: Buffer.from(vtt) });
    // The name is taken from the file's.
    expect(await page.getByLabel("Track name (as players list it)").inputValue()).toBe("English");
    await page.getByLabel("Language (BCP-47, e.g. en, de-CH)").fill("en");
    await page.getByLabel("Default track (players show it unless the viewer chose otherwise)").check();
    await page.getByLabel("For the deaf and hard of hearing (SDH)").check();
    await page.getByRole("button", { name: "Add caption" }).click();
    await page.getByTestId("caption").getByText("2 cues · SDH").waitFor();
    expect(await page.getByTestId("caption").getByTestId("default-caption").textContent()).toBe("default");
    expect(await captions()).toEqual([
      { name: "English", language: "en", default: true, hearingImpaired: true, cueCount: 2 },
    ]);

    // A file that is not WebVTT or SRT: the API's reason is shown, nothing is added.
    await page
      .getByLabel("Caption file (WebVTT or SRT, at most 1 MiB)")
      .setInputFiles({ name: "notes.srt", mimeType: "text/plain", buffer: Buffer.from("just some words") });
    await page.getByLabel("Language (BCP-47, e.g. en, de-CH)").fill("de");
    await page.getByRole("button", { name: "Add caption" }).click();
    expect(await page.getByRole("alert").textContent()).toMatch(/^Line 1: Expected a subtitle/);
    expect(await captions()).toHaveLength(1);

    await page.getByRole("button", { name: "Remove caption English" }).click();
    await page.getByText("No caption tracks.").waitFor();
    expect(await captions()).toEqual([]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it(`offers "Generate captions", showing the API's refusal with no asr worker, and shows a generated track's \
source and progress`, async () => {
    const { id } = await createUpload(t, "spoken");
    await page.goto(`${t.url}/videos/${id}`);
    await page.getByText("No caption tracks.").waitFor();
    await page.getByRole("button", { name: "Generate captions" }).click();
    expect(await page.getByRole("alert").textContent()).toMatch(
      /^No worker can generate captions now: no worker with the asr/,
    );
    // A generated track part-way through its transcription, as a worker with asr leaves it.
    await t.app.services.db.caption.create({
      data: {
        videoId: id,
        language: "en",
        name: "English (generated)",
        source: "GENERATED",
        status: "PROCESSING",
        progress: 0.4,
        key: "",
        cueCount: 0,
        lastCueEnd: 0,
        size: 0,
      },
    });
    await page.reload();
    const track = page.getByTestId("caption");
    expect(await track.getByTestId("generated-caption").textContent()).toBe("generated");
    expect(await track.getByTestId("caption-progress").textContent()).toBe(" transcribing 40 %");
    await t.app.services.db.caption.updateMany({
      where: { videoId: id },
      data: { status: "FAILED", error: "The video has no audio to transcribe" },
    });
    // The section reads its tracks again while one is PROCESSING.
    await track.getByTestId("caption-failed").getByText("failed: The video has no audio to transcribe").waitFor();
  });

  it("makes a track the default and renames one (updateCaption), showing a refusal", async () => {
    const { id } = await createUpload(t, "two tracks");
    const vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHi\n";
    for (const [name, language, isDefault] of [
      ["English", "en", true],
      ["Deutsch", "de", false],
    ] as const) {
      const added = await t.gql(ADD_CAPTION, {
        input: { videoId: id, name, language, text: vtt, default: isDefault },
      });
      expect(added.data.addCaption.__typename).toBe("AddCaptionSuccess");
    }
    const captions = async () => (await t.gql(CAPTION_NAMES, { id })).data.video!.captions;
    await page.goto(`${t.url}/videos/${id}`);
    const track = (name: string) => page.getByTestId("caption").filter({ has: page.getByRole("link", { name }) });
    // The default track is marked and has no "Make default"; the other has one.
    await track("English").getByTestId("default-caption").waitFor();
    expect(await page.getByRole("button", { name: "Make English the default track" }).count()).toBe(0);

    await page.getByRole("button", { name: "Make Deutsch the default track" }).click();
    await track("Deutsch").getByTestId("default-caption").waitFor();
    expect(await track("English").getByTestId("default-caption").count()).toBe(0);
    expect(await captions()).toEqual([
      { name: "English", default: false },
      { name: "Deutsch", default: true },
    ]);

    // A name another track has is refused with the API's reason; a free one is saved.
    await page.getByRole("button", { name: "Rename caption English" }).click();
    await page.getByLabel("New name for English").fill("Deutsch");
    await page.getByRole("button", { name: "Save name" }).click();
    // The refusal is shown under the name it refuses.
    const newName = page.getByLabel("New name for English");
    await expect.poll(() => newName.getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator(`#${await newName.getAttribute("aria-describedby")}`).textContent()).toBe(
      'The video already has a caption track named "Deutsch"',
    );
    await page.getByLabel("New name for English").fill("English (US)");
    await page.getByRole("button", { name: "Save name" }).click();
    await page.getByRole("link", { name: "English (US)" }).waitFor();
    expect(await captions()).toEqual([
      { name: "English (US)", default: false },
      { name: "Deutsch", default: true },
    ]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("lists static renditions with their state and a download once READY, and requests more", async () => {
    const { id } = await createUpload(t, "downloads", { staticRenditions: ["HIGHEST"] });
    // The HIGHEST file is made: READY in the database, as the worker leaves it (its file need not exist).
    await t.app.services.db.staticRendition.update({
      where: { videoId_name: { videoId: id, name: "HIGHEST" } },
      data: { status: "READY", key: `videos/${id}/static/highest.mp4`, width: 1280, height: 720, sizeBytes: 3_145_728 },
    });
    await page.goto(`${t.url}/videos/${id}`);
    const highest = page.locator('[data-testid="static-rendition"][data-name="HIGHEST"]');
    await highest.getByText("MP4, full size: ready · 1280×720 · 3.0 MiB").waitFor();
    expect(await highest.getByRole("link", { name: "Download" }).getAttribute("href")).toMatch(/highest/);

    await page.getByLabel("M4A, audio only").check();
    await page.getByRole("button", { name: "Request downloads" }).click();
    await page.locator('[data-testid="static-rendition"][data-name="AUDIO"]').getByText("preparing").waitFor();
    const { data } = await t.gql(STATIC_RENDITIONS, { id });
    expect(data.video!.staticRenditions).toEqual(
      expect.arrayContaining([
        { name: "HIGHEST", status: "READY" },
        { name: "AUDIO", status: "PREPARING" },
      ]),
    );
    expect(data.video!.staticRenditions).toHaveLength(2);
    // Those asked for are no longer offered; the one left is.
    expect(await page.getByLabel("M4A, audio only").count()).toBe(0);
    expect(await page.getByLabel("MP4, small").count()).toBe(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("cuts a clip (createClip) from a range set at the player's current time", async () => {
    const { id, uploadUrl } = await createUpload(t, "source talk");
    // Its source file is stored (no worker encodes it), then it is made READY and playable.
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: Buffer.alloc(4096, 7) })).status).toBe(200);
    await t.app.services.db.video.update({
      where: { id },
      data: { status: "READY", duration: 10, playable: true, masterKey: `videos/${id}/hls/master.m3u8` },
    });
    await page.goto(`${t.url}/videos/${id}`);
    const seek = (seconds: number) =>
      page.evaluate((at) => {
        (document.querySelector("video") as HTMLVideoElement).currentTime = at;
      }, seconds);
    await page.getByRole("button", { name: "Set start" }).waitFor();
    await seek(2.5);
    await page.getByRole("button", { name: "Set start" }).click();
    await seek(6);
    await page.getByRole("button", { name: "Set end" }).click();
    expect(await page.getByLabel("Start (seconds)").inputValue()).toBe("2.5");
    expect(await page.getByLabel("End (seconds)").inputValue()).toBe("6");

    // An end past the video's is refused beside the end.
    await page.getByLabel("End (seconds)").fill("12");
    await page.getByRole("button", { name: "Create clip" }).click();
    await expect.poll(() => page.getByLabel("End (seconds)").getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#clip-end-error").textContent()).toMatch(/at most the video's duration/);

    await seek(6);
    await page.getByRole("button", { name: "Set end" }).click();
    await page.getByRole("button", { name: "Create clip" }).click();
    await page.waitForURL((url) => !url.pathname.endsWith(id));
    const clipId = new URL(page.url()).pathname.split("/").at(-1)!;
    const { data } = await t.gql(CLIP, { id: clipId });
    expect(data.video).toEqual({
      title: "source talk (clip)",
      source: "CLIP",
      clip: { start: 2.5, end: 6, sourceVideo: { id } },
    });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("a SIGNED video's player opens a new session when its session ends while it plays, and plays on", async () => {
    const id = await publishReadyVideo(t, "a session that ends");
    await t.app.services.db.video.update({ where: { id }, data: { playbackPolicy: "SIGNED" } });
    const master =
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.64000d"\n180p/index.m3u8\n';
    await t.app.services.storage.write(`videos/${id}/hls/master.m3u8`, Readable.from([Buffer.from(master)]), {
      limit: master.length,
      contentType: "application/vnd.apple.mpegurl",
    });
    // The API refuses a session's requests once it has ended (PLAYBACK_SESSION_SECONDS, a minute at
    // least): here the first session ends a second in, after its first segment. (A session's token
    // is named by when it ends, to the second: one opened later is another.)
    const masters: string[] = [];
    let firstSession: string | null = null;
    const route = `**/media/videos/${id}/**`;
    await page.route(route, async (request) => {
      const url = new URL(request.request().url());
      const token = url.searchParams.get("token") ?? "";
      if (url.pathname.endsWith("/master.m3u8")) masters.push(token);
      if (url.pathname.endsWith(".ts")) {
        firstSession ??= token;
        if (token === firstSession && !url.pathname.endsWith("/seg-0.ts")) {
          await new Promise((resolve) => setTimeout(resolve, 1100));
          return request.fulfill({ status: 403, contentType: "text/plain", body: "playback session ended" });
        }
      }
      return request.continue();
    });
    try {
      await page.goto(`${t.url}/videos/${id}`);
      // A new session: the master again, with a fresh opening token from the API.
      await expect.poll(() => masters.length, { timeout: 20_000 }).toBe(2);
      expect(masters[1]).not.toBe(masters[0]);
      const video = page.locator("video");
      await video.evaluate((v: HTMLVideoElement) => {
        v.muted = true;
        return v.play();
      });
      await expect
        .poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 20_000 })
        .toBeGreaterThan(3);
      expect(await page.getByText(/cannot be played|session ended/).count()).toBe(0);
    } finally {
      await page.unroute(route);
    }
  });

  it("shows a thumbnail and an animated preview and their URLs, at the player's time; the API's refusals", async () => {
    const id = await publishReadyVideo(t, "images");
    await page.goto(`${t.url}/videos/${id}`);
    const seek = (seconds: number) =>
      page.evaluate((at) => {
        (document.querySelector("video") as HTMLVideoElement).currentTime = at;
      }, seconds);
    const thumbnail = page.getByRole("region", { name: "Thumbnail" });
    await thumbnail.waitFor();
    await seek(2.5);
    await thumbnail.getByRole("button", { name: "Use the player's time" }).click();
    expect(await thumbnail.getByLabel("Time (seconds, 0 to 4)").inputValue()).toBe("2.5");

    // Out of range: the API's rule, under the field it names.
    const width = thumbnail.getByLabel("Width (pixels, even, 16 to 1920)");
    await width.fill("17");
    await thumbnail.getByRole("button", { name: "Show thumbnail" }).click();
    await expect.poll(() => width.getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#thumbnail-width-error").textContent()).toBe(
      "width must be an even number of pixels from 16 to 1920",
    );
    await thumbnail.getByLabel("Time (seconds, 0 to 4)").fill("9");
    await width.fill("160");
    await thumbnail.getByRole("button", { name: "Show thumbnail" }).click();
    await page.locator("#thumbnail-time-error").getByText("time must be within the video (0 to 4 s)").waitFor();
    expect(await width.getAttribute("aria-invalid")).toBeNull();

    await thumbnail.getByLabel("Time (seconds, 0 to 4)").fill("2.5");
    await thumbnail.getByRole("button", { name: "Show thumbnail" }).click();
    const image = thumbnail.getByRole("img", { name: "The frame at 2.5 s, 160 px wide" });
    await expect.poll(() => image.evaluate((img: HTMLImageElement) => img.naturalWidth), { timeout: 20_000 }).toBe(160);
    const url = await thumbnail.getByLabel("Thumbnail URL").inputValue();
    const api = (await t.gql(THUMBNAIL_URL, { id })).data.video!.thumbnailUrl;
    expect(url).toBe(new URL(api!, t.url).href);
    const jpeg = await fetch(url);
    expect([jpeg.status, jpeg.headers.get("content-type")]).toEqual([200, "image/jpeg"]);

    const animated = page.getByRole("region", { name: "Animated preview" });
    await seek(1);
    await animated.getByRole("button", { name: "Start at the player's time" }).click();
    expect(await animated.getByLabel("Preview start, in seconds").inputValue()).toBe("1");
    expect(await animated.getByLabel("Preview end, in seconds").inputValue()).toBe("4");
    await animated.getByLabel("Preview end, in seconds").fill("7");
    await animated.getByRole("button", { name: "Show animated preview" }).click();
    await page.locator("#animated-end-error").getByText("end must be within the video (0 to 4 s)").waitFor();
    // Width × seconds over the bound (480 px for 4 s) is the request's, not one field's.
    await animated.getByLabel("Preview start, in seconds").fill("0");
    await animated.getByLabel("Preview end, in seconds").fill("4");
    await animated.getByLabel("Width (pixels, even, 16 to 480)").fill("480");
    await animated.getByRole("button", { name: "Show animated preview" }).click();
    await animated
      .getByRole("alert")
      .getByText(/^an animated preview 480 px wide lasts at most 3\.3 s/)
      .waitFor();

    await animated.getByLabel("Preview start, in seconds").fill("1");
    await animated.getByLabel("Width (pixels, even, 16 to 480)").fill("160");
    await animated.getByLabel("Format").selectOption("GIF");
    await animated.getByRole("button", { name: "Show animated preview" }).click();
    const gif = animated.getByRole("img", { name: "GIF of 1 s to 4 s" });
    await expect.poll(() => gif.evaluate((img: HTMLImageElement) => img.naturalWidth), { timeout: 30_000 }).toBe(160);
    const gifUrl = new URL(await animated.getByLabel("Animated preview URL").inputValue());
    expect(gifUrl.pathname).toBe(`/media/videos/${id}/animated.gif`);
    expect(Object.fromEntries(gifUrl.searchParams)).toEqual({ start: "1", end: "4", width: "160" });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("scrubs by the storyboard: hover and drag show the tile for the time, a click and the keys seek", async () => {
    const vtt =
      "WEBVTT\n\n" +
      [0, 1, 2, 3]
        .map(
          (i) =>
            `00:00:0${i}.000 --> 00:00:0${i + 1}.000\n` +
            `sheet-0.jpg#xywh=${(i % 2) * 80},${Math.floor(i / 2) * 45},80,45\n`,
        )
        .join("\n");
    const id = await publishReadyVideo(t, "storyboard", { storyboardVtt: vtt });
    await page.goto(`${t.url}/videos/${id}`);
    const slider = page.getByRole("slider", { name: "Seek (storyboard)" });
    await slider.waitFor();
    expect(await slider.getAttribute("aria-valuemin")).toBe("0");
    expect(await slider.getAttribute("aria-valuemax")).toBe("4");
    expect(await slider.getAttribute("aria-valuenow")).toBe("0");
    expect(await slider.getAttribute("aria-valuetext")).toBe("0:00 of 0:04");
    const box = (await slider.boundingBox())!;
    const xAt = (seconds: number) => box.x + (box.width * seconds) / 4;
    const y = box.y + box.height / 2;
    const preview = page.getByTestId("scrubber-preview");
    /** Where the preview's tile sits in the sheet, once the sheet has loaded. */
    const shownTile = async () => {
      const img = preview.locator(".scrubber-tile img");
      await expect.poll(() => img.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth)).toBe(160);
      return img.evaluate((i: HTMLImageElement) => [i.style.left, i.style.top]);
    };

    // Hover: the tile of 2.5 s (the third: left column, second row) and the time; nothing seeks.
    await page.mouse.move(xAt(2.5), y);
    await preview.getByText("0:02").waitFor();
    expect(await shownTile()).toEqual(["0px", "-45px"]);
    const currentTime = () => page.evaluate(() => (document.querySelector("video") as HTMLVideoElement).currentTime);
    expect(await currentTime()).toBe(0);
    // Leaving the bar hides it; a click seeks.
    await page.mouse.move(xAt(2.5), box.y + box.height + 200);
    await preview.waitFor({ state: "detached" });
    await page.mouse.click(xAt(1.5), y);
    await expect.poll(currentTime).toBe(1.5);
    await expect.poll(() => slider.getAttribute("aria-valuenow")).toBe("1.5");

    // A finger: touching shows the tile under it, dragging follows, lifting seeks and hides it.
    const touch = (type: string, seconds: number) =>
      slider.dispatchEvent(type, { pointerType: "touch", pointerId: 7, button: 0, clientX: xAt(seconds), clientY: y });
    await touch("pointerdown", 0.5);
    expect(await shownTile()).toEqual(["0px", "0px"]);
    await touch("pointermove", 3.5);
    expect(await shownTile()).toEqual(["-80px", "-45px"]);
    await touch("pointerup", 3.5);
    await expect.poll(currentTime).toBe(3.5);
    await preview.waitFor({ state: "detached" });

    // The keyboard: a tile's interval per arrow, Home and End.
    await slider.focus();
    await page.keyboard.press("ArrowLeft");
    await expect.poll(currentTime).toBe(2.5);
    expect(await slider.getAttribute("aria-valuetext")).toBe("0:02 of 0:04");
    expect(await shownTile()).toEqual(["0px", "-45px"]);
    await page.keyboard.press("Home");
    await expect.poll(currentTime).toBe(0);
    await page.keyboard.press("End");
    await expect.poll(currentTime).toBe(4);
    expect(await slider.getAttribute("aria-valuenow")).toBe("4");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

    // A video without a storyboard has no scrub bar.
    const plain = await publishReadyVideo(t, "no storyboard");
    await page.goto(`${t.url}/videos/${plain}`);
    await page.getByRole("heading", { name: "no storyboard", level: 1 }).waitFor();
    await page.getByRole("region", { name: "Thumbnail" }).waitFor();
    expect(await page.getByRole("slider", { name: "Seek (storyboard)" }).count()).toBe(0);
  });

  it("shows a video's chapters on the scrub bar and under the player, seeks to one, and edits them (setChapters)", async () => {
    const vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:04.000\nsheet-0.jpg#xywh=0,0,80,45\n";
    const id = await publishReadyVideo(t, "chaptered", { storyboardVtt: vtt });
    const set = await t.gql(SET_CHAPTERS, {
      input: {
        videoId: id,
        chapters: [
          { startSeconds: 0, title: "Intro" },
          { startSeconds: 2.5, title: "Main <part>" },
        ],
      },
    });
    expect(set.data.setChapters.__typename).toBe("SetChaptersSuccess");
    await page.goto(`${t.url}/videos/${id}`);
    const chapters = page.getByRole("navigation", { name: "Chapters" });
    await chapters.waitFor();
    // Listed under the player, the first playing; a tick on the scrub bar where the second starts.
    expect(await chapters.getByRole("button").allInnerTexts()).toEqual(["0:00 Intro", "0:02 Main <part>"]);
    expect(await chapters.getByRole("button", { name: "0:00 Intro" }).getAttribute("aria-current")).toBe("true");
    const tick = page.getByTestId("scrubber-chapter");
    expect(await tick.getAttribute("title")).toBe("Main <part>");
    expect(await tick.evaluate((e) => (e as HTMLElement).style.left)).toBe("62.5%");
    const slider = page.getByRole("slider", { name: "Seek (storyboard)" });
    expect(await slider.getAttribute("aria-valuetext")).toBe("0:00 of 0:04 · Intro");
    // The browser has the WebVTT as a chapters track.
    const track = page.locator('video track[kind="chapters"]');
    expect(await (await fetch(new URL((await track.getAttribute("src"))!, t.url))).text()).toContain(
      "Main &lt;part&gt;",
    );

    // A chapter's button seeks to its start, and it becomes the one playing.
    await chapters.getByRole("button", { name: "0:02 Main <part>" }).click();
    const currentTime = () => page.evaluate(() => (document.querySelector("video") as HTMLVideoElement).currentTime);
    await expect.poll(currentTime).toBe(2.5);
    await expect
      .poll(() => chapters.getByRole("button", { name: "0:02 Main <part>" }).getAttribute("aria-current"))
      .toBe("true");
    // The scrub bar names the chapter of the time it shows (no media plays here: it follows its own seeks).
    await slider.focus();
    await page.keyboard.press("End");
    await expect.poll(() => slider.getAttribute("aria-valuetext")).toBe("0:04 of 0:04 · Main <part>");

    // Edited as lines: a refusal names its chapter; a good text is saved and shown.
    const text = page.getByTestId("chapters-text");
    expect(await text.inputValue()).toBe("0:00 Intro\n0:02.500 Main <part>");
    await text.fill("0:00 Start\n0:09 Past the end");
    await page.getByRole("button", { name: "Save chapters" }).click();
    await expect
      .poll(() => page.getByTestId("chapters-message").innerText())
      .toMatch(/^Chapter 2 starts at 9 s, outside/);
    await text.fill("0:00 Start\n1.25 Then");
    await page.getByRole("button", { name: "Save chapters" }).click();
    await page.getByTestId("chapters-message").getByText("Saved.").waitFor();
    await expect.poll(() => chapters.getByRole("button").allInnerTexts()).toEqual(["0:00 Start", "0:01 Then"]);
    const saved = await t.gql(CHAPTERS, { id });
    expect(saved.data.video!.chapters).toEqual([
      { startSeconds: 0, title: "Start" },
      { startSeconds: 1.25, title: "Then" },
    ]);
  });

  it("adds a webhook endpoint for the event types checked", async () => {
    await page.goto(`${t.url}/webhooks`);
    await page.getByLabel("Endpoint URL").fill("http://127.0.0.1:9/hooks");
    await page.getByLabel("video.ready").check();
    await page.getByLabel("job.failed").check();
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await page.getByText("Signing secret, shown once").waitFor();
    const { data } = await t.gql(WEBHOOK_ENDPOINTS);
    expect(data.webhookEndpoints).toEqual([{ url: "http://127.0.0.1:9/hooks", events: ["VIDEO_READY", "JOB_FAILED"] }]);
    await page.getByText("video_ready, job_failed").waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });

  it("opens a webhook delivery: its body as indented text (never HTML) and its attempts", async () => {
    const created = await t.gql(CREATE_HOOK, { input: { url: "http://127.0.0.1:9/deliveries" } });
    const endpointId = expectTypename(created.data.createWebhookEndpoint, "CreateWebhookEndpointSuccess").endpoint.id;
    // A title is the tenant's own text: markup in it must reach the page as text.
    const payload = { type: "video.ready", data: { title: '<img src=x onerror="window.__injected=1">' } };
    const db = t.app.services.db;
    const delivery = await db.webhookDelivery.create({
      data: {
        endpointId,
        eventId: crypto.randomUUID(),
        eventType: "video.ready",
        payload,
        status: "FAILED",
        attemptCount: 2,
        nextAttemptAt: null,
        giveUpAt: new Date(Date.now() + 3600_000),
        lastStatusCode: 503,
      },
    });
    await db.webhookAttempt.createMany({
      data: [
        { deliveryId: delivery.id, at: new Date(Date.now() - 60_000), error: "connect ECONNREFUSED", durationMs: 3 },
        { deliveryId: delivery.id, at: new Date(), statusCode: 503, responseBody: "busy", durationMs: 41 },
      ],
    });
    await page.goto(`${t.url}/webhooks`);
    const endpoint = page.getByRole("article", { name: "Endpoint http://127.0.0.1:9/deliveries" });
    const open = endpoint.getByRole("button", { name: /^video_ready delivery of .*: body and attempts$/ });
    expect(await open.getAttribute("aria-expanded")).toBe("false");
    await open.click();
    const detail = endpoint.getByTestId("delivery-detail");
    await detail.waitFor();
    expect(await open.getAttribute("aria-expanded")).toBe("true");
    // The body as the API gives it (Postgres keeps JSON's keys in its own order), indented.
    const sent = (await t.gql(DELIVERY_PAYLOAD, { id: delivery.id })).data.webhookDelivery!.payload;
    expect(JSON.parse(sent)).toEqual(payload);
    expect(await detail.getByTestId("delivery-payload").textContent()).toBe(JSON.stringify(JSON.parse(sent), null, 2));
    expect(await detail.getByTestId("delivery-payload").textContent()).toContain('"<img src=x onerror=\\"window');
    expect(await detail.locator("img").count()).toBe(0);
    expect(await page.evaluate(() => (window as any).__injected)).toBeUndefined();
    const attempts = await detail.getByTestId("delivery-attempt").allTextContents();
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatch(/ · no answer · 3 ms · connect ECONNREFUSED$/);
    expect(attempts[1]).toMatch(/ · HTTP 503 · 41 ms$/);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    // Closed again, the details go.
    await open.click();
    await detail.waitFor({ state: "detached" });
  });
});
