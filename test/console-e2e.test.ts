import { createCipheriv, createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SignJWT } from "jose";
import type { Browser, BrowserContext, FileChooser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY, tenantKeySecret } from "./support/auth.ts";
import { buildConsole, launchChromium, screenshotsDir } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { makeAudioOnly, makeClip } from "./support/media-fixtures.ts";

const JWT_SECRET = "a-shared-hs256-secret-of-at-least-32-chars";
const DESKTOP = { width: 1280, height: 860 };
const PROGRESS_EVENTS = graphql(`
  subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status }
    ... on VariantProgressEvent { variant { progress } } } }`);
const VIDEO_ID = graphql(`query($id: ID!) { video(id: $id) { id } }`);
const VIDEO_STATUS = graphql(`query($id: ID!) { video(id: $id) { status } }`);
const VIDEO_SOURCE = graphql(`query($id: ID!) { video(id: $id) { source } }`);
const CANCEL = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename } }`);
const UPLOADED_VIDEOS = graphql(`{ videos(first: 20) { edges { node { id title uploadSize uploadedBytes } } } }`);
const VIDEO_CURSORS = graphql(`{ videos(first: 50) { edges { cursor } } }`);
const FIRST_CURSOR = graphql(`{ videos(first: 1) { edges { cursor } } }`);
const NEWEST = graphql(`{ videos(first: 5) { edges { node { id } } } }`);
const LISTED = graphql(`{ videos(first: 50) { edges { node { id status } } } }`);

/** One page state as the video page rendered it, recorded on every DOM change. */
interface Rendered {
  status: string;
  playable: boolean;
  progress: number[];
}

describe("the console in real Chromium: sign in, upload, live progress, playback, watch page, sources", () => {
  let t: TestApp;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let clip: string;
  let uploadedId: string;
  /**
   * The clip of the tests that need a READY video only for what comes after it (a token, a webhook), or
   * play it for a second: 4 s at 360p, encoded in under half the time of the 10 s one.
   */
  const shortClip = () => makeClip({ width: 640, height: 360, seconds: 4, audio: true });

  /** A browser context that reaches nothing but the API under test (offline, like a laptop on a plane). */
  async function localContext(viewport = DESKTOP): Promise<BrowserContext> {
    const ctx = await browser.newContext({ viewport });
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    return ctx;
  }

  async function signIn(target: Page): Promise<void> {
    await target.goto(`${t.url}/`);
    await target.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
    await target.getByRole("button", { name: "Sign in" }).click();
    await target.getByRole("heading", { name: "Videos" }).waitFor();
  }

  /** Plays `video` from where it is until it has played `seconds` more; returns the decoded frame height. */
  async function playFor(target: Page, seconds: number): Promise<number> {
    const video = target.getByTestId("player");
    const start = await video.evaluate((v: HTMLVideoElement) => {
      v.muted = true;
      void v.play();
      return v.currentTime;
    });
    await target.waitForFunction(
      ({ start, seconds }) => {
        const v = document.querySelector("video")!;
        // A play() before hls.js attached its source is aborted by the load that attaching starts
        // (the element stays paused), so ask again until it plays, as a viewer clicks again.
        if (v.paused) void v.play().catch(() => undefined);
        return v.currentTime >= start + seconds && v.videoHeight > 0;
      },
      { start, seconds },
      { timeout: 60_000, polling: 100 },
    );
    return video.evaluate((v: HTMLVideoElement) => v.videoHeight);
  }

  beforeAll(async () => {
    await buildConsole();
    [t, browser, clip] = await Promise.all([
      // The last test's encode goes on after its check: handed back at the end, not given 5 s more.
      startTestApp({ env: { JWT_SECRET }, workerEnv: { SHUTDOWN_GRACE_SECONDS: "0" } }),
      launchChromium(),
      makeClip({ width: 640, height: 360, seconds: 10, audio: true }),
    ]);
    context = await localContext();
    page = await context.newPage();
    page.on("dialog", (dialog) => void dialog.accept());
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("signs in with an API key kept in the tab's sessionStorage only", async () => {
    await page.goto(`${t.url}/`);
    await page.getByRole("heading", { name: "Sign in to videograph" }).waitFor();
    await page.screenshot({ path: `${await screenshotsDir()}/sign-in.png` });
    await page.getByLabel("API key or viewer JWT").fill("vg_not_a_key_at_all_0000000000");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    await signIn(page);
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("videograph.authorization"),
      local: Object.keys(localStorage).length,
    }));
    expect(stored).toEqual({ session: `Bearer ${TEST_ADMIN_KEY}`, local: 0 });
  });

  it("uploads a lavfi clip through the page; progress bars move and playable shows before READY", async () => {
    await page.getByRole("link", { name: "Upload", exact: true }).first().click();
    await page.getByRole("heading", { name: "Upload" }).waitFor();
    await page.getByTestId("file-input").setInputFiles(clip);
    await page.getByRole("link", { name: "Open the video" }).waitFor({ timeout: 60_000 });
    // Record every state the video page renders from here on.
    await page.getByRole("link", { name: "Open the video" }).click();
    uploadedId = new URL(page.url()).pathname.split("/").pop()!;
    await page.getByTestId("video-status").waitFor();
    await page.evaluate(() => {
      const seen: Rendered[] = [];
      (window as unknown as { rendered: Rendered[] }).rendered = seen;
      const record = () =>
        seen.push({
          status: document.querySelector("[data-testid=video-status]")?.textContent ?? "",
          playable: document.querySelector("[data-testid=playable]") !== null,
          progress: [...document.querySelectorAll<HTMLProgressElement>("[data-testid=variant-progress]")].map(
            (p) => p.value,
          ),
        });
      record();
      // A bar's value is a property (no mutation to observe): every value the page sets on a bar is
      // recorded where it is set, so a value replaced before the next sample (two events in one
      // task, CI of 2026-11-29) still counts; the page is also sampled every 20 ms.
      const set: number[] = [];
      (window as unknown as { barValues: number[] }).barValues = set;
      const value = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value")!;
      Object.defineProperty(HTMLProgressElement.prototype, "value", {
        ...value,
        set(this: HTMLProgressElement, v: number) {
          value.set!.call(this, v);
          if (this.dataset.testid === "variant-progress") set.push(this.value);
        },
      });
      new MutationObserver(record).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
      setInterval(record, 20);
    });
    // What the API sends from here on, followed beside the page: the progress the page can show.
    const sent = collectSubscription(t.wsClient(), PROGRESS_EVENTS, { id: uploadedId });
    await page.waitForFunction(
      () => document.querySelector("[data-testid=video-status]")?.textContent === "ready",
      undefined,
      { timeout: 120_000, polling: 100 },
    );
    const rendered = await page.evaluate(() => (window as unknown as { rendered: Rendered[] }).rendered);
    const firstReady = rendered.findIndex((r) => r.status === "ready");
    const playableBefore = rendered.findIndex((r) => r.playable && r.status !== "ready");
    expect(playableBefore, JSON.stringify(rendered.slice(0, 40))).toBeGreaterThanOrEqual(0);
    expect(playableBefore).toBeLessThan(firstReady);
    // Bars grew over time, and a bar showed a value strictly between 0 and 1 whenever the API sent one
    // (on a loaded machine a short encode can end between two progress writes, and then no event has
    // one to show).
    await expect.poll(() => sent.events.some((e) => e.videoEvents.video.status === "READY")).toBe(true);
    const sentPartial = sent.events.some(({ videoEvents: e }) => {
      const progress = e.__typename === "VariantProgressEvent" ? e.variant.progress : undefined;
      return progress !== undefined && progress > 0 && progress < 1;
    });
    const barValues = await page.evaluate(() => (window as unknown as { barValues: number[] }).barValues);
    const partial = [...rendered.flatMap((r) => r.progress), ...barValues].filter((v) => v > 0 && v < 1);
    if (sentPartial) expect(partial.length, JSON.stringify(rendered.map((r) => r.progress))).toBeGreaterThan(0);
    const distinct = new Set(rendered.map((r) => r.progress.join(",")));
    expect(distinct.size).toBeGreaterThan(2);
    await page.screenshot({ path: `${await screenshotsDir()}/video.png`, fullPage: true });
  });

  it("the upload page follows the encode with one bar and each rung's segments, and plays once playable", async () => {
    await page.goto(`${t.url}/upload`);
    await page.getByTestId("file-input").setInputFiles(await shortClip());
    const item = page.locator(".upload-item").last();
    await item.getByTestId("player").waitFor({ timeout: 120_000 });
    // Once playable, no rung reads as if it had nothing: each has its first segment at least.
    const rungs = await item.getByTestId("rung").allTextContents();
    expect(rungs.length).toBeGreaterThan(1);
    for (const rung of rungs) expect(rung).toMatch(/: (first segment ready|\d+ segments? ready|done)$/);
    // One bar for the encode (the rungs go in step), none per variant.
    expect(await item.getByTestId("encode-progress").count()).toBe(1);
    expect(await item.getByTestId("variant-progress").count()).toBe(0);
    await item.getByTestId("video-status").getByText("ready").waitFor({ timeout: 120_000 });
    expect(await item.getByTestId("encode-progress").evaluate((bar: HTMLProgressElement) => bar.value)).toBe(1);
  });

  it("plays at least 3 s at two qualities, chosen in the quality menu", async () => {
    await page.goto(`${t.url}/videos/${uploadedId}`);
    const quality = page.getByLabel("Quality");
    await page.locator("select option", { hasText: "240p" }).waitFor({ state: "attached" });
    const options = await quality.locator("option").allTextContents();
    expect(options.some((o) => o.startsWith("360p"))).toBe(true);
    await quality.selectOption({ label: options.find((o) => o.startsWith("360p"))! });
    expect(await playFor(page, 3)).toBe(360);
    await quality.selectOption({ label: options.find((o) => o.startsWith("240p"))! });
    await page.waitForFunction(() => document.querySelector("video")!.videoHeight === 240, undefined, {
      timeout: 30_000,
    });
    expect(await playFor(page, 3)).toBe(240);
    await page.getByTestId("player").evaluate((v: HTMLVideoElement) => v.pause());
    await page.screenshot({ path: `${await screenshotsDir()}/player.png`, fullPage: true });
  });

  it("lists videos newest first with status and poster, at desktop and phone widths", async () => {
    await page.getByRole("link", { name: "Videos" }).click();
    const card = page.locator(`[data-video-id="${uploadedId}"]`);
    await card.getByTestId("status").getByText("ready").waitFor();
    await card.locator("img").evaluate((img: HTMLImageElement) => img.decode());
    await page.screenshot({ path: `${await screenshotsDir()}/videos.png` });
    const phone = await (await localContext({ width: 390, height: 844 })).newPage();
    await signIn(phone);
    await phone.locator(`[data-video-id="${uploadedId}"] img`).evaluate((img: HTMLImageElement) => img.decode());
    // Nothing wider than the phone's screen.
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: `${await screenshotsDir()}/videos-phone.png` });
    await phone.context().close();
  });

  it("signs in with a viewer JWT: sees the tenant's videos, and deleting is refused with the API's reason", async () => {
    const viewerJwt = await new SignJWT({ tenant_id: "default" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("viewer-1")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(JWT_SECRET));
    const viewerContext = await localContext();
    const viewer = await viewerContext.newPage();
    viewer.on("dialog", (dialog) => void dialog.accept());
    await viewer.goto(`${t.url}/`);
    await viewer.getByLabel("API key or viewer JWT").fill(viewerJwt);
    await viewer.getByRole("button", { name: "Sign in" }).click();
    await viewer.getByRole("button", { name: /Sign out \(viewer JWT\)/ }).waitFor();
    await viewer.locator(`[data-video-id="${uploadedId}"]`).getByRole("link").click();
    await viewer.getByTestId("video-status").getByText("ready").waitFor();
    await viewer.getByRole("button", { name: "Delete" }).click();
    await viewer
      .getByRole("alert")
      .getByText(/^Delete: /)
      .waitFor();
    expect((await t.gql(VIDEO_ID, { id: uploadedId })).data.video).not.toBeNull();
    await viewerContext.close();
  });

  it("opens the watch page of a public video signed out, and it plays", async () => {
    const outsider = await localContext();
    const watch = await outsider.newPage();
    await watch.goto(`${t.url}/watch/${uploadedId}`);
    expect(await playFor(watch, 1)).toBeGreaterThan(0);
    expect(await watch.evaluate(() => sessionStorage.length)).toBe(0);
    await watch.getByTestId("player").evaluate((v: HTMLVideoElement) => v.pause());
    await watch.screenshot({ path: `${await screenshotsDir()}/watch.png` });
    await outsider.close();
  });

  it("an audio-only video's page names its rungs by bitrate in the quality menu and plays", async () => {
    const { uploadUrl, id: videoId } = await createUpload(t, "podcast");
    const done = finalState(t, videoId);
    const put = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(await makeAudioOnly(3)) });
    expect(put.status).toBe(200);
    expect((await done).status).toBe("READY");
    await page.goto(`${t.url}/videos/${videoId}`);
    await page.locator("select option", { hasText: "kb/s" }).first().waitFor({ state: "attached" });
    const options = await page.getByLabel("Quality").locator("option").allTextContents();
    const levels = options.filter((o) => o.includes("kb/s"));
    expect(levels.length).toBeGreaterThan(0);
    for (const level of levels) expect(level).toMatch(/^audio · \d+ kb\/s$/);
    // The player's <video> element plays the audio: time moves on, with no picture.
    await page.getByTestId("player").evaluate((v: HTMLVideoElement) => {
      v.muted = true;
      void v.play().catch(() => undefined);
    });
    await page.waitForFunction(
      () => {
        const v = document.querySelector("video")!;
        if (v.paused) void v.play().catch(() => undefined);
        return v.currentTime >= 1;
      },
      undefined,
      { timeout: 60_000, polling: 100 },
    );
    expect(await page.getByTestId("player").evaluate((v: HTMLVideoElement) => v.videoHeight)).toBe(0);
    await page.getByTestId("player").evaluate((v: HTMLVideoElement) => v.pause());
  });

  it("a SIGNED video does not play on the watch page without its token, and does with the share link's", async () => {
    const { uploadUrl, id: videoId } = await createUpload(t, "signed", { playbackPolicy: "SIGNED" });
    const done = finalState(t, videoId);
    const put = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(await shortClip()) });
    expect(put.status).toBe(200);
    expect((await done).status).toBe("READY");

    const outsider = await localContext();
    const watch = await outsider.newPage();
    await watch.goto(`${t.url}/watch/${videoId}`);
    await watch.getByRole("alert").getByText("without a valid playback token").waitFor({ timeout: 30_000 });
    expect(await watch.getByTestId("player").evaluate((v: HTMLVideoElement) => v.currentTime)).toBe(0);

    // The console's share link carries a token from the API: that one plays.
    await page.goto(`${t.url}/videos/${videoId}`);
    const link = await page.getByTestId("watch-link").getAttribute("href");
    expect(link).toMatch(/\?token=/);
    // Its stream URLs for a player of one's own: HLS, with a token; no DASH for MPEG-TS segments.
    expect(await page.getByTestId("hls-url").textContent()).toMatch(/\/hls\/master\.m3u8\?token=/);
    await page.locator(".stream-urls").getByText("needs fMP4 segments").waitFor();
    await watch.goto(link!);
    expect(await playFor(watch, 1)).toBeGreaterThan(0);
    await outsider.close();
  });

  it("cancels and deletes a video from its page", async () => {
    const { id } = await createUpload(t, "to cancel");
    await page.goto(`${t.url}/videos/${id}`);
    await page.getByTestId("video-status").getByText("waiting for upload").waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByTestId("video-status").getByText("canceled").waitFor();
    expect((await t.gql(VIDEO_STATUS, { id })).data.video!.status).toBe("CANCELED");
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("heading", { name: "Videos" }).waitFor();
    expect((await t.gql(VIDEO_ID, { id })).data.video).toBeNull();
  });

  it("an upload resumes after a page reload and after a dropped connection, asking the server where", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "console-resume-"));
    // Three chunks of 8 MiB and a bit; not a video (it fails at the probe), the bytes are what is checked.
    // The same bytes every run (a fixed keystream): fresh random bytes once probed as an LRC lyrics file,
    // which is refused by its format's name instead.
    const chunk = 8 * 1024 * 1024;
    const bytes = patternlessBytes(3 * chunk + 12345);
    const file = path.join(dir, "resumed.mp4");
    await writeFile(file, bytes);
    // The network is played by the test, not by timing: the second chunk's first PUT is held until the
    // reload cuts it, the third chunk's first PUT finds the network gone, and it stays gone (every PUT
    // fails) until the page has said so. Every PUT's Content-Range is recorded.
    const ranges: string[] = [];
    let offline = false;
    let droppedThird = false;
    let secondHeld: () => void = () => {};
    const secondInFlight = new Promise<void>((resolve) => {
      secondHeld = resolve;
    });
    let heldOnce = false;
    await page.route("**/*", async (route) => {
      const request = route.request();
      const range = request.headers()["content-range"];
      if (request.method() !== "PUT" || range === undefined) return route.continue();
      ranges.push(range);
      if (range.startsWith(`bytes ${2 * chunk}-`) && !droppedThird) {
        droppedThird = true;
        offline = true;
      }
      if (offline) return route.abort("internetdisconnected");
      if (range.startsWith(`bytes ${chunk}-`) && !heldOnce) {
        heldOnce = true;
        secondHeld();
        return; // never answered: the reload ends it
      }
      return route.continue();
    });
    try {
      await page.goto(`${t.url}/upload`);
      await page.getByTestId("file-input").setInputFiles(file);
      await secondInFlight;
      // Reload mid-upload: the tab keeps the idempotency key, the same file resumes on the same video.
      await page.reload();
      await page.getByTestId("file-input").setInputFiles(file);
      await page.getByText("resuming…").waitFor();
      // Unplugged at the third chunk: the page says so and retries, then goes on from where the server is.
      await page.getByText(/connection lost: resuming in/).waitFor({ timeout: 30_000 });
      expect(Number(await page.locator(".upload-item progress").getAttribute("value"))).toBeGreaterThanOrEqual(
        2 * chunk,
      );
      await page.screenshot({ path: `${await screenshotsDir()}/upload.png` });
      offline = false;
      await page.getByRole("link", { name: "Open the video" }).waitFor({ timeout: 60_000 });

      // What the page sent: after the reload and after the drop it asked the server first (bytes */N)
      // and went on from the server's answer, never from 0.
      const total = bytes.length;
      const status = `bytes */${total}`;
      const data = ranges.filter((r) => r !== status && !r.startsWith(`bytes ${2 * chunk}-`));
      expect(data).toEqual([
        `bytes 0-${chunk - 1}/${total}`,
        `bytes ${chunk}-${2 * chunk - 1}/${total}`, // held, cut by the reload
        `bytes ${chunk}-${2 * chunk - 1}/${total}`,
        `bytes ${3 * chunk}-${total - 1}/${total}`,
      ]);
      const second = `bytes ${chunk}-${2 * chunk - 1}/${total}`;
      const afterReload = ranges.indexOf(second, ranges.indexOf(second) + 1);
      expect(ranges[afterReload - 1]).toBe(status);
      const lastDrop = ranges.lastIndexOf(`bytes ${2 * chunk}-${3 * chunk - 1}/${total}`);
      expect(ranges.slice(lastDrop - 1, lastDrop + 1)).toEqual([
        status,
        `bytes ${2 * chunk}-${3 * chunk - 1}/${total}`,
      ]);

      const videos = await t.gql(UPLOADED_VIDEOS);
      const resumed = videos.data.videos.edges.map((e) => e.node).filter((v) => v.title === "resumed");
      expect(resumed).toHaveLength(1);
      expect(resumed[0]).toMatchObject({ uploadSize: bytes.length, uploadedBytes: bytes.length });
      const stored = await readFile(path.join(t.dataDir, "videos", resumed[0]!.id, "source", "upload"));
      const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      expect(sha(stored)).toBe(sha(bytes));

      // Not a video: it fails at the probe, and the operator's view shows the run's command and stderr.
      await page.goto(`${t.url}/videos/${resumed[0]!.id}`);
      await page.getByTestId("video-status").getByText("failed").waitFor({ timeout: 60_000 });
      const job = page.locator("details.job").first();
      await job.locator("summary").click();
      await job
        .locator("pre")
        .first()
        .getByText(/^ffprobe /)
        .waitFor();
      // The reason, in the job opened (once failed in a CI run, not since: what the page showed then is kept).
      await job
        .getByText("Invalid data found when processing input")
        .first()
        .waitFor()
        .catch(async (err: Error) => {
          const shown = await page.locator("section.operators").innerText();
          throw new Error(`${err.message}\nthe page's jobs:\n${shown}`);
        });
      await page.screenshot({ path: `${await screenshotsDir()}/failed-video.png`, fullPage: true });
    } finally {
      await page.unrouteAll({ behavior: "ignoreErrors" });
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a file that is not a video with a clear message, before sending it", async () => {
    await page.goto(`${t.url}/upload`);
    await page
      .getByTestId("file-input")
      .setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hi") });
    await page.getByRole("alert").getByText("Refused: notes.txt is not a video file (text/plain).").waitFor();
  });

  it("submits a quiz composition and follows its render live", async () => {
    await page.getByRole("link", { name: "Sources" }).click();
    await page.getByRole("heading", { name: "Quiz composition" }).waitFor();
    await page.screenshot({ path: `${await screenshotsDir()}/sources.png`, fullPage: true });
    await page.getByLabel("Title").first().fill("console quiz");
    await page.getByRole("button", { name: "Render quiz" }).click();
    await page.waitForURL(/\/videos\/[\w-]+$/);
    await page.getByRole("heading", { name: "console quiz" }).waitFor();
    const id = new URL(page.url()).pathname.split("/").pop()!;
    // The render's progress, then the ladder's: the page follows it without a reload.
    await page.getByTestId("render-progress").or(page.getByTestId("variant")).first().waitFor({ timeout: 90_000 });
    const video = (await t.gql(VIDEO_SOURCE, { id })).data.video!;
    expect(video.source).toBe("COMPOSITION");
    // Nothing after this reads the quiz: canceled, its render and ladder leave the one worker slot (and
    // the CPU) to the uploads of the tests that follow.
    const canceled = await t.gql(CANCEL, { id });
    expect(canceled.data.cancelVideo.__typename).toBe("CancelVideoSuccess");
  });

  it("the URL import form shows the API's refusal (credentials in the URL), and makes no video", async () => {
    await page.goto(`${t.url}/sources`);
    const before = (await t.gql(VIDEO_CURSORS)).data.videos.edges.length;
    await page.getByLabel("Public http(s) URL of a video file").fill("http://user:secret@127.0.0.1:9/clip.mp4");
    await page.getByRole("button", { name: "Import" }).click();
    await page
      .getByRole("alert")
      .getByText("url: Cannot be imported: credentials in the URL are not allowed")
      .waitFor();
    expect(new URL(page.url()).pathname).toBe("/sources");
    expect((await t.gql(VIDEO_CURSORS)).data.videos.edges.length).toBe(before);
  });

  it("lists webhook endpoints with their deliveries, and resends one", async () => {
    const received: { id: string; type: string }[] = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const event = JSON.parse(body);
        received.push({ id: event.id, type: event.type });
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = receiver.address() as AddressInfo;
      await page.goto(`${t.url}/webhooks`);
      await page.getByLabel("Endpoint URL").fill(`http://127.0.0.1:${port}/hooks`);
      await page.getByRole("button", { name: "Add endpoint" }).click();
      await page.getByText("Signing secret, shown once").waitFor();
      // An event for it: a new upload reaching READY sends video.playable and video.ready (and variant.ready).
      const { uploadUrl, id: videoId } = await createUpload(t, "hooked");
      const done = finalState(t, videoId);
      await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(await shortClip()) });
      expect((await done).status).toBe("READY");
      await expect.poll(() => received.some((r) => r.type === "video.ready"), { timeout: 30_000 }).toBe(true);
      await page.reload();
      // Newest first: the first video.ready row is one the receiver got.
      const row = () => page.getByRole("row").filter({ hasText: "video_ready" }).first();
      await row().getByText("delivered").waitFor();
      const sent = received.filter((r) => r.type === "video.ready");
      await row().getByRole("button", { name: "Resend" }).click();
      await expect
        .poll(() => received.filter((r) => r.type === "video.ready").length, { timeout: 30_000 })
        .toBe(sent.length + 1);
      // The same event again (the receiver dedupes on its id).
      expect(sent.map((r) => r.id)).toContain(received.filter((r) => r.type === "video.ready").at(-1)!.id);
      await page.reload();
      await row().getByRole("cell", { name: "2", exact: true }).waitFor();
      await page.screenshot({ path: `${await screenshotsDir()}/webhooks.png`, fullPage: true });
    } finally {
      receiver.close();
    }
  }, 150_000);

  it("makes an API key (its secret shown once, and it works), rotates it and revokes it; the API's refusal is shown", async () => {
    await page.goto(`${t.url}/keys`);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByLabel("Name").fill("cms from the console");
    await page.getByLabel("videos:write").check();
    await page.getByLabel("Expires after (days; empty: never)").fill("30");
    await page.getByRole("button", { name: "Create key" }).click();
    const shown = page.getByRole("status").filter({ hasText: "shown once" });
    const secretOf = async () => (await shown.locator("code").textContent())!;
    const first = await secretOf();
    expect((await t.gql(FIRST_CURSOR, {}, `Bearer ${first}`)).data).toBeDefined();
    const row = () => page.getByRole("row").filter({ hasText: "cms from the console" });
    await row().getByRole("cell", { name: "videos:read, videos:write", exact: true }).waitFor();
    await row().getByRole("cell", { name: "active", exact: true }).waitFor();
    await page.screenshot({ path: `${await screenshotsDir()}/keys.png`, fullPage: true });

    await row().getByRole("button", { name: "Rotate cms from the console" }).click();
    await expect.poll(secretOf).not.toBe(first);
    const second = await secretOf();
    expect((await t.gql(FIRST_CURSOR, {}, `Bearer ${first}`)).errors?.[0]?.message).toBe(
      "Unauthenticated: the API key was revoked",
    );
    // The new key is the active row; revoke it.
    const active = () => row().filter({ has: page.getByRole("cell", { name: "active", exact: true }) });
    await active().getByRole("button", { name: "Revoke cms from the console" }).click();
    await expect.poll(() => active().count()).toBe(0);
    expect((await t.gql(FIRST_CURSOR, {}, `Bearer ${second}`)).errors).toBeDefined();

    // More than the signed-in key holds: the API's reason on the page. (The admin key holds every scope,
    // so sign in with a narrower manager for this.)
    const db = t.app.services.db;
    const manager = await tenantKeySecret(db, "default", ["videos:read", "keys:admin"], "manager");
    const narrow = await context.newPage();
    try {
      await narrow.goto(`${t.url}/`);
      await narrow.getByLabel("API key or viewer JWT").fill(manager);
      await narrow.getByRole("button", { name: "Sign in" }).click();
      await narrow.getByRole("heading", { name: "Videos" }).waitFor();
      await narrow.getByRole("link", { name: "API keys" }).click();
      await narrow.getByLabel("Name").fill("escalation");
      await narrow.getByLabel("jobs:admin").check();
      await narrow.getByRole("button", { name: "Create key" }).click();
      await narrow
        .getByRole("alert")
        .getByText("A key can hand out only scopes it holds; yours lacks jobs:admin")
        .waitFor();
    } finally {
      await narrow.close();
    }
  });

  it("GraphiQL works offline with the signed-in key already in its headers", async () => {
    await page.goto(`${t.url}/graphql`);
    await page.locator(".graphiql-container").first().waitFor({ timeout: 60_000 });
    await page.getByText(TEST_ADMIN_KEY).first().waitFor({ timeout: 30_000 });
    // The key is used: a query for the tenant's videos answers with them.
    await page.keyboard.press("Escape");
    const answer = page.waitForResponse(
      (res) => res.url().endsWith("/graphql") && (res.request().postData() ?? "").includes("NewestVideos"),
    );
    await page.getByRole("button", { name: /Execute query/ }).click();
    const body = JSON.parse(await (await answer).text());
    const newest = await t.gql(NEWEST);
    expect(body.data.videos.edges.map((e: any) => e.node.id)).toEqual(newest.data.videos.edges.map((e) => e.node.id));
    // The result pane shows the answer (its first lines: the editor renders only what is in view).
    await page.getByText(body.data.videos.edges[0].node.id).first().waitFor();
    await page.screenshot({ path: `${await screenshotsDir()}/graphiql.png` });

    // A subscription goes over graphql-ws with the Headers tab's credential as the connection's
    // parameters: a READY video's events start with its state (refused, it would be an error).
    const listed = await t.gql(LISTED);
    const ready = listed.data.videos.edges.find((e) => e.node.status === "READY")!.node.id;
    const subscription = `subscription Follow { videoEvents(videoId: "${ready}") { __typename ... on VideoStatusEvent { status } } }`;
    await page.evaluate((text) => {
      // CodeMirror 5 keeps its editor object on its element.
      (document.querySelector(".graphiql-query-editor .CodeMirror") as any).CodeMirror.setValue(text);
    }, subscription);
    // GraphiQL reads the operation's name from the editor a moment later (debounced): its tab shows it.
    await page.locator(".graphiql-tab").getByText("Follow", { exact: true }).waitFor();
    const socket = page.waitForEvent("websocket");
    await page.getByRole("button", { name: /Execute query/ }).click();
    expect(new URL((await socket).url()).pathname).toBe("/graphql");
    const response = async () => (await page.locator(".graphiql-response").first().innerText()).replace(/\s+/g, "");
    await expect.poll(response, { timeout: 15_000 }).toContain('"__typename":"VideoStatusEvent"');
    expect(await response()).toContain('"status":"READY"');

    // On a phone the response sits under the editor, each the screen's width, and nothing overflows.
    const phone = await (await localContext({ width: 390, height: 844 })).newPage();
    try {
      await signIn(phone);
      await phone.goto(`${t.url}/graphql`);
      await phone.locator(".graphiql-container").first().waitFor({ timeout: 60_000 });
      await phone.getByText(TEST_ADMIN_KEY).first().waitFor({ timeout: 30_000 });
      await phone.keyboard.press("Escape");
      const phoneAnswer = phone.waitForResponse(
        (res) => res.url().endsWith("/graphql") && (res.request().postData() ?? "").includes("NewestVideos"),
      );
      await phone.getByRole("button", { name: /Execute query/ }).click();
      await phoneAnswer;
      // The response wraps long lines on a phone (a UUID breaks at its hyphens): read it without them.
      const shown = async () => (await phone.locator(".graphiql-response").first().innerText()).replace(/\s+/g, "");
      await expect.poll(shown, { timeout: 10_000 }).toContain(body.data.videos.edges[0].node.id);
      const box = (selector: string) => phone.locator(selector).first().boundingBox();
      const [editors, response] = [(await box(".graphiql-editors"))!, (await box(".graphiql-response"))!];
      for (const pane of [editors, response]) {
        expect(pane.width).toBeGreaterThan(280);
        expect(pane.x + pane.width).toBeLessThanOrEqual(390);
      }
      expect(response.y).toBeGreaterThanOrEqual(editors.y + editors.height);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: `${await screenshotsDir()}/graphiql-phone.png` });
    } finally {
      await phone.context().close();
    }
  });

  it("keyboard only: from the library to Upload, a file chosen, and the video played, no mouse", async () => {
    const clip = await shortClip();
    await page.goto(`${t.url}/`);
    await page.getByRole("heading", { name: "Videos" }).waitFor();
    /** Presses Tab until `focused` holds for the focused element; fails after `max` presses. */
    const tabTo = async (what: string, focused: (e: Element) => boolean, max = 60) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press("Tab");
        const here = await page.evaluateHandle(() => document.activeElement);
        if (await here.evaluate(focused)) return;
      }
      throw new Error(`${what} is not reachable with Tab (${max} presses)`);
    };
    await tabTo("the Upload link", (e) => e.tagName === "A" && e.textContent?.trim() === "Upload");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Upload" }).waitFor();
    await tabTo("the file input", (e) => e.getAttribute("data-testid") === "file-input");
    // Chromium opens a file chooser only with a fresh user activation; once, on a starved CI machine,
    // Space opened none within 30 s. A keyboard user presses it again; so does the test, twice at most.
    let chooser: FileChooser | undefined;
    for (let press = 1; !chooser; press++) {
      const shown = page.waitForEvent("filechooser", { timeout: 10_000 });
      await page.keyboard.press("Space");
      chooser = await shown.catch((error) => {
        if (press === 3) throw error;
        return undefined;
      });
    }
    await chooser.setFiles(clip);
    const item = page.locator(".upload-item").last();
    await item.getByTestId("player").waitFor({ timeout: 120_000 });
    await tabTo("the player", (e) => e.tagName === "VIDEO");
    const video = item.locator("video");
    // Space before hls.js has attached its source is undone by the media element's load (HTML's
    // load algorithm pauses it again): a user sees the player come alive first, and so waits the test.
    await expect
      .poll(() => video.evaluate((v: HTMLVideoElement) => v.readyState), { timeout: 30_000 })
      .toBeGreaterThan(0);
    await page.keyboard.press("Space");
    await expect
      .poll(() => video.evaluate((v: HTMLVideoElement) => (v.paused ? -1 : v.currentTime)), { timeout: 30_000 })
      .toBeGreaterThan(0.5);
  });
});

/**
 * `length` bytes without structure, the same every time: AES-256-CTR's keystream under a fixed key and
 * counter. A SHA-256 per 32 bytes made the same kind of bytes on about 10 CPU-s for these 24 MiB.
 */
function patternlessBytes(length: number): Buffer {
  const keystream = createCipheriv("aes-256-ctr", Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  return Buffer.concat([keystream.update(Buffer.alloc(length)), keystream.final()]);
}
