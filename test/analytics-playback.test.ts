import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { graphql } from "./support/graphql.ts";
import { fixturesDir, runFfmpeg } from "./support/media-fixtures.ts";
import { createUpload } from "./support/uploads.ts";

const SEGMENTS = 6;
const STARTUP_DELAY_MS = 1500;
const STALL_MS = 1500;
/** The segment held back until playback has stalled for STALL_MS: one second each, so it starts at 2 s. */
const HELD_SEGMENT = 2;

const ANALYTICS = graphql(`
  query ($id: ID!, $from: DateTime!, $to: DateTime!) { video(id: $id) { analytics(from: $from, to: $to) {
    views watchTimeSeconds startupTimeP50Ms rebufferCount rebufferSeconds failureRate completionRate
    topRenditions { height }
  } } }`);

/**
 * A READY video with one 320×180 rung of SEGMENTS one-second segments and its master playlist,
 * made once by ffmpeg and written to storage as the worker would. No worker.
 */
async function publishVideo(t: TestApp): Promise<string> {
  const { id } = await createUpload(t, "watched in Chromium");
  const dir = path.join(fixturesDir(), `analytics-rung-${id}`);
  await mkdir(dir, { recursive: true });
  await runFfmpeg([
    ...["-f", "lavfi", "-i", `testsrc2=size=320x180:rate=10:duration=${SEGMENTS}`, "-c:v", "libx264", "-g", "10"],
    ...["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"],
    ...["-hls_segment_filename", path.join(dir, "seg-%d.ts"), path.join(dir, "index.m3u8")],
  ]);
  const files: [string, Buffer][] = [
    [
      "master.m3u8",
      Buffer.from(
        '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.64000d"\n180p/index.m3u8\n',
      ),
    ],
  ];
  for (const name of await readdir(dir)) files.push([`180p/${name}`, await readFile(path.join(dir, name))]);
  for (const [name, body] of files) {
    const contentType = name.endsWith(".ts") ? "video/mp2t" : "application/vnd.apple.mpegurl";
    await t.app.services.storage.write(`videos/${id}/hls/${name}`, Readable.from([body]), {
      limit: body.length,
      contentType,
    });
  }
  await t.app.services.db.video.update({
    where: { id },
    data: {
      status: "READY",
      playable: true,
      duration: SEGMENTS,
      width: 320,
      height: 180,
      masterKey: `videos/${id}/hls/master.m3u8`,
    },
  });
  return id;
}

/**
 * The embed (the watch page) plays a video in Chromium with hls.js while the test holds its
 * segments back (`page.route`): the first for STARTUP_DELAY_MS, the third until playback has stalled
 * for STALL_MS. The player's own beacons must then show in `Video.analytics` as one completed view
 * with a startup time and a stall of what was imposed.
 */
describe("viewer analytics from a real player (Chromium + hls.js, the embed)", () => {
  let t: TestApp;
  let browser: Browser;

  beforeAll(async () => {
    await buildConsole();
    [t, browser] = await Promise.all([startTestApp({ worker: false }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("reports a view's startup time, its stall and its watch time within tolerance of the delays imposed", async () => {
    const id = await publishVideo(t);
    const ctx = await browser.newContext();
    await ctx.route(
      (url) => url.hostname !== "127.0.0.1",
      (route) => route.abort(),
    );
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    await ctx.route(/\/180p\/seg-0\.ts/, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, STARTUP_DELAY_MS));
      await route.continue();
    });
    await ctx.route(new RegExp(`/180p/seg-${HELD_SEGMENT}\\.ts`), async (route) => {
      await released;
      await route.continue();
    });
    // What the page saw, for the comparison: when the player started its view (it posts it in the same
    // moment it starts its startup clock), played, stalled and ended, with the video's position then
    // (media events do not bubble: capture).
    await ctx.addInitScript(() => {
      const seen: { type: string; at: number; time?: number }[] = [];
      (window as unknown as { seen: typeof seen }).seen = seen;
      for (const type of ["playing", "waiting", "ended"]) {
        document.addEventListener(
          type,
          (e) => seen.push({ type, at: performance.now(), time: (e.target as HTMLVideoElement).currentTime }),
          true,
        );
      }
      const send = window.fetch;
      window.fetch = (input, init) => {
        if (String(input instanceof Request ? input.url : input).endsWith("/analytics/v1/views"))
          seen.push({ type: "view", at: performance.now() });
        return send(input, init);
      };
    });
    const page = await ctx.newPage();
    type Seen = { type: string; at: number; time?: number };
    const seen = () => page.evaluate(() => (window as unknown as { seen: Seen[] }).seen);
    // The stall at the held segment: not one before it, which a loaded machine can add (a segment
    // before it late), nor a `waiting` an autoplaying element may fire before its first frame.
    const heldStall = (events: Seen[]) => events.find((e) => e.type === "waiting" && e.time! > HELD_SEGMENT - 0.5);
    try {
      await page.goto(`${t.url}/watch/${id}?autoplay=1`);
      // Playback runs into the held segment and stalls; once it has stalled for STALL_MS the segment comes.
      await expect.poll(async () => heldStall(await seen()) !== undefined, { timeout: 20_000 }).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, STALL_MS));
      release();
      await expect.poll(async () => (await seen()).some((e) => e.type === "ended"), { timeout: 30_000 }).toBe(true);
      const events = await seen();
      // Every stall the page saw, as the player's beacons count them: a `waiting` after the first
      // frame, to the `playing` after it.
      const firstFrame = events.find((e) => e.type === "playing")!;
      const stallsMs = events
        .filter((e) => e.type === "waiting" && e.at > firstFrame.at)
        .map((waiting) => events.find((e) => e.type === "playing" && e.at > waiting.at)!.at - waiting.at);
      const held = heldStall(events)!;
      expect(events.find((e) => e.type === "playing" && e.at > held.at)!.at - held.at).toBeGreaterThanOrEqual(STALL_MS);

      const range = {
        from: new Date(Date.now() - 3600_000).toISOString(),
        to: new Date(Date.now() + 3600_000).toISOString(),
      };
      // The player sends its batch when playback ends (or as soon as its view has started, if later:
      // on a loaded machine the start can answer after the end).
      await expect
        .poll(async () => (await t.gql(ANALYTICS, { id, ...range })).data?.video?.analytics.completionRate, {
          timeout: 20_000,
        })
        .toBe(1);
      const a = (await t.gql(ANALYTICS, { id, ...range })).data.video!.analytics;
      expect(a).toMatchObject({
        views: 1,
        rebufferCount: stallsMs.length,
        failureRate: 0,
        topRenditions: [{ height: 180 }],
      });
      // Startup: the first segment was held STARTUP_DELAY_MS, so at least that; and what the page
      // itself saw from the view's start (an autoplaying player starts it with the source, so loading
      // the playlists counts; seconds on a loaded machine) to the first frame, to within the width of
      // the histogram's bucket there (250 ms at most below 5 s).
      const viewStart = events.find((e) => e.type === "view")!;
      const pageStartupMs = firstFrame.at - viewStart.at;
      expect(a.startupTimeP50Ms).toBeGreaterThanOrEqual(STARTUP_DELAY_MS);
      expect(pageStartupMs).toBeLessThan(5000);
      expect(Math.abs(a.startupTimeP50Ms! - pageStartupMs)).toBeLessThanOrEqual(260);
      // The stalls the API reports are the ones the page saw (the held one alone where nothing else
      // stalled), to a fifth of a second each.
      const pageStallSeconds = stallsMs.reduce((sum, ms) => sum + ms, 0) / 1000;
      expect(a.rebufferSeconds).toBeGreaterThanOrEqual(STALL_MS / 1000);
      expect(Math.abs(a.rebufferSeconds - pageStallSeconds)).toBeLessThan(0.2 * stallsMs.length);
      // Every second of the video was watched, once.
      expect(a.watchTimeSeconds).toBeGreaterThan(SEGMENTS - 1);
      expect(a.watchTimeSeconds).toBeLessThanOrEqual(SEGMENTS + 0.25);

      // The console shows it on the video's page (its own player does not autoplay: no second view),
      // and on the library's overview.
      await page.goto(`${t.url}/`);
      await page.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Videos" }).waitFor();
      await page.getByText("Viewers of all videos, last 30 days").click();
      await expect
        .poll(() => page.getByTestId("tenant-analytics").getByTestId("analytics-views").textContent())
        .toBe("1");
      await page.goto(`${t.url}/videos/${id}`);
      const section = page.getByRole("region", { name: "Viewers, last 30 days" });
      await expect.poll(() => section.getByTestId("analytics-views").textContent()).toBe("1");
      await expect.poll(() => section.getByTestId("viewers-now").textContent()).toMatch(/^\d+$/);
      expect(await section.getByRole("img", { name: "Views per day" }).locator("rect").count()).toBe(1);
      expect(await section.textContent()).toContain("Rebuffering");
    } finally {
      await ctx.close();
    }
  });

  it("plays to the end while the analytics endpoint is down, and sends nothing under Do Not Track", async () => {
    const id = await publishVideo(t);
    const seenBy = (page: Page) => page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    const record = () => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      for (const type of ["playing", "ended", "error"]) document.addEventListener(type, () => seen.push(type), true);
    };

    // The endpoint unreachable: every analytics request fails at the network.
    const down = await browser.newContext();
    const refused: string[] = [];
    await down.route(/\/analytics\//, (route) => {
      refused.push(route.request().url());
      return route.abort("connectionrefused");
    });
    await down.addInitScript(record);
    try {
      const page = await down.newPage();
      await page.goto(`${t.url}/watch/${id}?autoplay=1`);
      await expect.poll(() => seenBy(page), { timeout: 30_000 }).toContain("ended");
      expect(await seenBy(page)).not.toContain("error");
      expect(refused.some((url) => url.endsWith("/analytics/v1/views"))).toBe(true);
    } finally {
      await down.close();
    }

    // Do Not Track: the page plays and the player asks the endpoint nothing.
    const private_ = await browser.newContext();
    const asked: string[] = [];
    private_.on("request", (request) => {
      if (request.url().includes("/analytics/")) asked.push(request.url());
    });
    await private_.addInitScript(() => Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" }));
    await private_.addInitScript(record);
    try {
      const page = await private_.newPage();
      await page.goto(`${t.url}/watch/${id}?autoplay=1`);
      // An autoplaying player starts its view with its source: by its first frame it would have asked.
      await expect.poll(() => seenBy(page), { timeout: 30_000 }).toContain("playing");
      await page.waitForTimeout(500);
      expect(asked).toEqual([]);
    } finally {
      await private_.close();
    }
    const range = {
      from: new Date(Date.now() - 3600_000).toISOString(),
      to: new Date(Date.now() + 3600_000).toISOString(),
    };
    expect((await t.gql(ANALYTICS, { id, ...range })).data.video!.analytics.views).toBe(0);
  });

  it("serves the standalone beacon script to any page", async () => {
    const res = await fetch(`${t.url}/analytics/v1/beacons.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const script = await res.text();
    expect(script).toContain("videographAnalytics");
    // The player's module alone: no schema library, no hls.js.
    expect(script.length).toBeLessThan(8 * 1024);
  });
});
