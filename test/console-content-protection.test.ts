import { readFile } from "node:fs/promises";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";

const PROTECTION = graphql(`query ($id: ID!) {
  video(id: $id) { status playbackPolicy contentProtection { method keyRotationSegments } }
}`);

/**
 * Content protection through the console: the upload form's option makes an encrypted SIGNED video
 * (a real worker encodes it), the video page says how it is protected, and the console's player
 * (hls.js in Chromium) plays it, fetching its keys (AES-128) or its ClearKey licence (CENC, through
 * EME) with the session's token.
 */
/**
 * The player's time, after play() again if it is paused: polled until it takes, since the player may
 * load its source again meanwhile (its playback URL refreshed, EME's keys attached), which
 * interrupts a play() under way.
 */
const playingAt = (video: Locator) =>
  video.evaluate((v: HTMLVideoElement) => {
    v.muted = true;
    if (v.paused) v.play().catch(() => {});
    return v.currentTime;
  });

describe("content protection in the console", () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    await buildConsole();
    [t, browser] = await Promise.all([startTestApp(), launchChromium()]);
    const ctx = await browser.newContext();
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    page = await ctx.newPage();
    await page.goto(`${t.url}/`);
    await page.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Videos" }).waitFor();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("uploads with encryption and key rotation chosen, shows the protection, and the player plays it", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 8, audio: true });
    await page.goto(`${t.url}/upload`);
    await page.getByText("Video options").click();
    await page.getByLabel("Playback").selectOption("SIGNED");
    await page.getByLabel(/Encrypt the segments/).check();
    await page.getByLabel(/New key every/).fill("2");
    await page
      .getByTestId("file-input")
      .setInputFiles({ name: "protected.mp4", mimeType: "video/mp4", buffer: await readFile(clip) });
    const open = page.getByRole("link", { name: "Open the video" });
    await open.waitFor();
    const id = (await open.getAttribute("href"))!.split("/").at(-1)!;
    await expect
      .poll(async () => (await t.gql(PROTECTION, { id })).data.video?.status, { timeout: 60_000 })
      .toBe("READY");
    expect((await t.gql(PROTECTION, { id })).data.video).toEqual({
      status: "READY",
      playbackPolicy: "SIGNED",
      contentProtection: { method: "AES_128", keyRotationSegments: 2 },
    });

    const keyRequests: { url: string; status: number }[] = [];
    page.on("response", (res) => {
      if (res.url().includes(`/media/videos/${id}/keys/`)) keyRequests.push({ url: res.url(), status: res.status() });
    });
    await page.goto(`${t.url}/videos/${id}`);
    await expect
      .poll(() => page.getByTestId("content-protection").textContent())
      .toContain("a new key every 2 segments");
    const video = page.locator("video");
    await expect.poll(() => playingAt(video), { timeout: 30_000 }).toBeGreaterThan(5);
    // Segments 0-1, 2-3 and 4-5 are three key groups: each key fetched with the session's token.
    const groups = new Set(keyRequests.map((r) => new URL(r.url).pathname.split("/").at(-1)));
    expect(groups.size).toBeGreaterThanOrEqual(3);
    for (const r of keyRequests) {
      expect(r.status).toBe(200);
      expect(new URL(r.url).searchParams.get("token")).toMatch(/^s\./);
    }
  }, 120_000);

  it("uploads with CENC chosen (fMP4), shows it, and the player plays it through EME's ClearKey, its licence asked for with the session's token", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 8, audio: true });
    await page.goto(`${t.url}/upload`);
    await page.getByText("Video options").click();
    await page.getByLabel("Segment format").selectOption("FMP4");
    await page.getByLabel("Playback").selectOption("SIGNED");
    await page.getByLabel(/Encrypt the segments/).check();
    await page.getByLabel("Encryption").selectOption("CENC");
    await expect.poll(() => page.getByLabel(/New key every/).count()).toBe(0);
    await page
      .getByTestId("file-input")
      .setInputFiles({ name: "cenc.mp4", mimeType: "video/mp4", buffer: await readFile(clip) });
    const open = page.getByRole("link", { name: "Open the video" });
    await open.waitFor();
    const id = (await open.getAttribute("href"))!.split("/").at(-1)!;
    await expect
      .poll(async () => (await t.gql(PROTECTION, { id })).data.video?.status, { timeout: 60_000 })
      .toBe("READY");
    expect((await t.gql(PROTECTION, { id })).data.video).toMatchObject({
      playbackPolicy: "SIGNED",
      contentProtection: { method: "CENC", keyRotationSegments: null },
    });

    const licences: { url: string; method: string; status: number }[] = [];
    page.on("response", (res) => {
      if (res.url().includes(`/media/videos/${id}/keys/clearkey`)) {
        licences.push({ url: res.url(), method: res.request().method(), status: res.status() });
      }
    });
    await page.goto(`${t.url}/videos/${id}`);
    await expect.poll(() => page.getByTestId("content-protection").textContent()).toContain("CENC (ClearKey)");
    const video = page.locator("video");
    await expect.poll(() => playingAt(video), { timeout: 30_000 }).toBeGreaterThan(4);
    expect(licences.length).toBeGreaterThanOrEqual(1);
    for (const r of licences) {
      expect(r).toMatchObject({ method: "POST", status: 200 });
      expect(new URL(r.url).searchParams.get("token")).toMatch(/^s\./);
    }
  }, 120_000);
});
