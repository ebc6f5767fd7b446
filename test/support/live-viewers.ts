import { createRequire } from "node:module";
import type { Browser } from "playwright-core";
import { expect } from "vitest";
import { liveViewerLatencySeconds } from "../../src/metrics.ts";
import { ANALYTICS_PATHS } from "../../src/shared/analytics-beacons.ts";
import type { TestApp } from "./app.ts";
import { waitFor } from "./wait-for.ts";

// Viewers of a broadcast on air in Chromium (live-broadcast, live-srt): the console's watch page,
// and an integrator's page with hls.js and the beacon script; what their players report.

const require = createRequire(import.meta.url);

/** What viewers' players reported of their live latency so far (`videograph_live_viewer_latency_seconds`). */
async function viewerLatency(): Promise<{ count: number; sum: number }> {
  const values = (await liveViewerLatencySeconds.get()).values;
  const of = (name: string) => values.find((v) => v.metricName === name)?.value ?? 0;
  return {
    count: of("videograph_live_viewer_latency_seconds_count"),
    sum: of("videograph_live_viewer_latency_seconds_sum"),
  };
}

/**
 * The watch page (the console's player, hls.js in Chromium) plays the video a second; then
 * `meanwhile` checks; then the player's blocking reloads and its live latency report are checked:
 * more than nothing, and less than the broadcast's age (`publisher` on air since its `startedAt`).
 */
export async function playsInWatchPage(
  t: TestApp,
  browser: Browser,
  videoId: string,
  publisher: { startedAt: number },
  meanwhile: () => Promise<void>,
): Promise<void> {
  const page = await browser.newPage();
  // The statuses of the player's blocking playlist reloads (`_HLS_msn`: docs/live.md, "Latency").
  const blocking: number[] = [];
  // The player's analytics requests: what each sent and how it was answered (said on a timeout).
  const analytics: string[] = [];
  let viewStarted = false;
  page.on("response", (res) => {
    if (res.url().includes("_HLS_msn=")) blocking.push(res.status());
    const path = new URL(res.url()).pathname;
    if (path === ANALYTICS_PATHS.views || path === ANALYTICS_PATHS.beacons) {
      analytics.push(`${path} ${res.status()} ${(res.request().postData() ?? "").slice(0, 300)}`);
      if (path === ANALYTICS_PATHS.views && res.status() === 201) viewStarted = true;
    }
  });
  page.on("requestfailed", (req) => analytics.push(`${req.url()} failed: ${req.failure()?.errorText}`));
  // A batch sent at the page's exit goes by sendBeacon, whose body the response above does not show.
  await page.exposeFunction("beaconSent", (body: string) => analytics.push(`sendBeacon ${body.slice(0, 300)}`));
  await page.addInitScript(() => {
    const send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => {
      if (data instanceof Blob)
        void data.text().then((body) => (window as unknown as { beaconSent(b: string): void }).beaconSent(body));
      return send(url, data);
    };
  });
  const before = await viewerLatency();
  try {
    await page.goto(`${t.url}/watch/${videoId}?autoplay=1`);
    await page.waitForFunction(() => (document.querySelector("video")?.currentTime ?? 0) >= 1, undefined, {
      timeout: 20_000,
    });
    await meanwhile();
    // hls.js asks for each next segment with a blocking reload, and is answered when it is listed.
    await waitFor(
      "a blocking playlist reload",
      async () => blocking,
      (b) => b.includes(200),
      10_000,
    );
    expect(blocking.filter((status) => status !== 200)).toEqual([]);
    // The player reports its live latency with its analytics beacons once its view has started;
    // the page hidden sends them at once.
    await waitFor(
      "the player's view to start",
      async () => analytics,
      () => viewStarted,
      20_000,
    );
    await page.evaluate(() => window.dispatchEvent(new Event("pagehide")));
    const reported = await waitFor(
      "the viewer's live latency report",
      async () => ({ ...(await viewerLatency()), analytics }),
      (now) => now.count > before.count,
      20_000,
    );
    const seconds = (reported.sum - before.sum) / (reported.count - before.count);
    expect(seconds, JSON.stringify(analytics)).toBeGreaterThan(0);
    // No player is further behind than the broadcast is old (a loaded host's stalls make it more
    // than the few segments hls.js starts behind the live edge).
    expect(seconds).toBeLessThan((Date.now() - publisher.startedAt) / 1000);
  } finally {
    await page.close();
  }
}

/**
 * A player that has not measured its latency yet reports none (hls.js's `latency` is 0 until it
 * has; the first batch of a loaded host's viewers said 0). A page of its own, as an integrator's: a
 * real hls.js and the standalone beacon script. hls.js loads the live playlist before it has the
 * element (it measures on the element's time), the element is told to play and the page is hidden:
 * the batch that goes carries what the page had to say (a media error dispatched for it) and no
 * latency. That a playing player reports one above 0: `playsInWatchPage`.
 */
export async function reportsLatencyOnceMeasured(t: TestApp, browser: Browser, playbackUrl: string): Promise<void> {
  const page = await browser.newPage();
  try {
    // A page of the API's origin, holding nothing of the console.
    await page.goto(`${t.url}${ANALYTICS_PATHS.script}`);
    await page.setContent("<!doctype html><title>An integrator's player</title><body></body>");
    await page.addScriptTag({ path: require.resolve("hls.js/dist/hls.min.js") });
    await page.addScriptTag({ url: `${t.url}${ANALYTICS_PATHS.script}` });
    type Page = typeof window & {
      Hls: typeof import("hls.js").default;
      videographAnalytics: { track(video: HTMLVideoElement, url: string, hls: unknown): unknown };
      hls: InstanceType<typeof import("hls.js").default>;
      video: HTMLVideoElement;
      hidden(): Promise<{ type: string; latencyMs?: number }[]>;
    };
    const master = new URL(playbackUrl, t.url).href;
    const atExit = await page.evaluate(async (url) => {
      const w = window as Page;
      // What the beacon module hands to sendBeacon at the page's exit, as each batch's events.
      const sent: Promise<string>[] = [];
      const send = navigator.sendBeacon.bind(navigator);
      navigator.sendBeacon = (to, data) => {
        if (data instanceof Blob) sent.push(data.text());
        return send(to, data);
      };
      w.hidden = async () => {
        const from = sent.length;
        window.dispatchEvent(new Event("pagehide"));
        const texts = await Promise.all(sent.slice(from));
        return texts.flatMap((text) => JSON.parse(text).events);
      };
      w.video = document.createElement("video");
      w.video.muted = true;
      document.body.append(w.video);
      w.hls = new w.Hls();
      const loaded = new Promise((resolve) => w.hls.once(w.Hls.Events.LEVEL_UPDATED, resolve));
      w.hls.loadSource(url);
      await loaded;
      void w.video.play().catch(() => {});
      // Its view started (the module's answer handled) before the page hides.
      const views = window.fetch;
      let answered!: () => void;
      const started = new Promise<void>((resolve) => {
        answered = resolve;
      });
      window.fetch = async (input, init) => {
        const res = await views(input, init);
        if (String(input).endsWith("/views")) setTimeout(answered, 100);
        return res;
      };
      w.videographAnalytics.track(w.video, url, w.hls);
      await started;
      // Something to send, so that the page's exit sends a batch whatever the latency.
      w.video.dispatchEvent(new Event("error"));
      return { live: w.hls.latestLevelDetails?.live, paused: w.video.paused, events: await w.hidden() };
    }, master);
    expect(atExit.live).toBe(true);
    expect(atExit.paused).toBe(false);
    expect(atExit.events.map((e) => e.type)).toEqual(["failure"]);
  } finally {
    await page.close();
  }
}
