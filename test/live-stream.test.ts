import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import { type AddressInfo, connect } from "node:net";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import {
  liveBehindSeconds,
  liveBroadcasts,
  liveEncodeSpeed,
  liveIngestBytes,
  liveIngestClosed,
  liveViewerLatencySeconds,
} from "../src/metrics.ts";
import { LiveFeed } from "../src/live/feed.ts";
import { relayPath } from "../src/live/relay.ts";
import { srtGatewayBuilt } from "../src/live/srt-gateway-build.ts";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import { WATCH_BOUNDS } from "../src/analytics/batch-buffer.ts";
import { ANALYTICS_PATHS, BEACON_LIMITS } from "../src/shared/analytics-beacons.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { waitFor } from "./support/wait-for.ts";
import { killPublishersOnAir, publish, publishUntilStopped } from "./support/live-publisher.ts";
import { standInLiveWorker, workersReported } from "./support/live-slots.ts";
import { childrenOf } from "./support/process-scan.ts";
import { createTestEventIngestor } from "./support/event-ingestor.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { TEST_ADMIN_KEY, tenantKeySecret } from "./support/auth.ts";

// A real publisher (ffmpeg pushing a lavfi source over RTMP or SRT to the API's ingest on loopback), the
// local worker encoding the broadcast, and the HLS read back while live and after the end.

const require = createRequire(import.meta.url);
const LIVE_STREAM_FIELDS = "id status ingestUrl lastError streamKeyHint disabled";

let t: TestApp;
let browser: Browser;
/** The sliding window viewers of a broadcast on air get (LIVE_DVR_WINDOW_SECONDS). */
const DVR_WINDOW_SECONDS = 10;

beforeAll(async () => {
  await buildConsole();
  browser = await launchChromium();
  t = await startTestApp({
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      // Room for a reconnect on a loaded machine: 0.6 s from the publisher's stop to its broadcast
      // LIVE again beside four x264 encodes, over 3 s once in a full run beside one.
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      LIVE_DVR_WINDOW_SECONDS: String(DVR_WINDOW_SECONDS),
      LIVE_SRT_PORT: "0",
    },
    // Every broadcast here copies its top rung (the publisher's 320x240, a keyframe a second).
    workerEnv: { LIVE_PASSTHROUGH: "true" },
  });
  await workersReported(t);
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});
// A test that failed midway leaves no publisher on air to the next (whose checks count processes
// and broadcasts).
afterEach(killPublishersOnAir);

async function createLiveStream(
  title: string,
  playbackPolicy: "PUBLIC" | "SIGNED" = "PUBLIC",
  input: {
    description?: string;
    metadata?: { key: string; value: string }[];
    tags?: string[];
    endOnUnpublish?: boolean;
  } = {},
): Promise<{ id: string; key: string; ingestUrl: string; srtPassphrase: string; srtUrl: string | null }> {
  const res = await t.gql(
    `mutation ($input: CreateLiveStreamInput) {
      createLiveStream(input: $input) {
        ... on LiveStreamWithKey { streamKey srtPassphrase srtUrl liveStream { ${LIVE_STREAM_FIELDS} } }
      }
    }`,
    { input: { title, playbackPolicy, ...input } },
  );
  expect(res.errors).toBeUndefined();
  const { streamKey, srtPassphrase, srtUrl, liveStream } = res.data.createLiveStream;
  expect(liveStream.status).toBe("IDLE");
  expect(streamKey.endsWith(liveStream.streamKeyHint)).toBe(true);
  expect(srtPassphrase).toMatch(/^[A-Za-z0-9_-]{32}$/);
  // Published on loopback only: the URL says localhost, the publisher connects to 127.0.0.1.
  return {
    id: liveStream.id,
    key: streamKey,
    ingestUrl: liveStream.ingestUrl.replace("localhost", "127.0.0.1"),
    srtPassphrase,
    srtUrl: srtUrl?.replace("localhost", "127.0.0.1") ?? null,
  };
}

/** A live metric's value for one ingest protocol (and other labels); 0 where it has none yet. */
async function byProtocol(
  metric: typeof liveIngestBytes | typeof liveBroadcasts | typeof liveIngestClosed,
  protocol: "rtmp" | "srt" | "relay",
  labels: Record<string, string> = {},
): Promise<number> {
  const values = (await metric.get()).values as { value: number; labels: Record<string, string | number> }[];
  const wanted = { protocol, ...labels };
  return values.find((v) => Object.entries(wanted).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

async function streamState(id: string) {
  const res = await t.gql(
    `query ($id: ID!) { liveStream(id: $id) { ${LIVE_STREAM_FIELDS} activeVideo { id status source duration playbackUrl posterUrl } } }`,
    { id },
  );
  expect(res.errors).toBeUndefined();
  return res.data.liveStream;
}

/**
 * The moment a live stream's publisher goes (DISCONNECTED), watched from now while it still
 * broadcasts, so that the reconnect after it comes within the grace; a rejection is handled
 * where it is awaited.
 */
function disconnectOf(id: string): Promise<unknown> {
  const watched = waitFor(
    "the disconnect",
    () => streamState(id),
    (s) => s.status === "DISCONNECTED",
    20_000,
  );
  watched.catch(() => {});
  return watched;
}

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
async function playsInWatchPage(
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
async function reportsLatencyOnceMeasured(playbackUrl: string): Promise<void> {
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

/** The publisher's clean end, then its stream ENDED with a READY recording about `seconds` long. */
async function expectRecording(streamId: string, publisher: { exited: Promise<number | null> }, seconds: number) {
  expect(await publisher.exited).toBe(0);
  const ended = await waitFor(
    "the recording",
    () => streamState(streamId),
    (s) => s.status === "ENDED",
  );
  expect(ended.lastError).toBeNull();
  expect(ended.activeVideo.status).toBe("READY");
  expect(ended.activeVideo.duration).toBeGreaterThan(seconds - 0.5);
  expect(ended.activeVideo.duration).toBeLessThan(seconds + 1.5);
  return ended;
}

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return res.text();
}

const durationOf = (playlist: string) =>
  playlist
    .split("\n")
    .filter((line) => line.startsWith("#EXTINF:"))
    .reduce((sum, line) => sum + Number.parseFloat(line.slice("#EXTINF:".length)), 0);

/**
 * While a broadcast is on air: its rung playlists as viewers get them slide (the last
 * DVR_WINDOW_SECONDS of the stored playlist, numbered on, no EVENT type), and an instant clip of its
 * first seconds is a finished playlist of those segments.
 */
async function expectLiveWindowAndInstantClip(videoId: string, playbackUrl: string, master: string): Promise<void> {
  const masterUrl = new URL(playbackUrl, t.url);
  const rung = master.split("\n").find((line) => line.endsWith(".m3u8") && !line.startsWith("#"))!;
  const windowed = await waitFor(
    "the live window to slide",
    () => text(new URL(rung, masterUrl).toString()),
    (p) => /#EXT-X-MEDIA-SEQUENCE:[1-9]/.test(p) || p.includes("#EXT-X-ENDLIST"),
    20_000,
  );
  const stored = await readFile(path.join(t.dataDir, "videos", videoId, "hls", rung), "utf8");
  expect(stored).toContain("#EXT-X-PLAYLIST-TYPE:EVENT");
  expect(windowed).not.toContain("#EXT-X-ENDLIST");
  expect(windowed).not.toContain("#EXT-X-PLAYLIST-TYPE");
  expect(durationOf(windowed)).toBeGreaterThanOrEqual(DVR_WINDOW_SECONDS);
  expect(durationOf(windowed)).toBeLessThan(DVR_WINDOW_SECONDS + 1.5);
  const uris = (p: string) => p.split("\n").filter((line) => line.endsWith(".ts"));
  const first = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(windowed)![1]);
  // The window's segments are the stored ones from its first number on (the stored list has grown since, maybe).
  expect(uris(windowed)).toEqual(uris(stored).slice(first, first + uris(windowed).length));

  // An instant clip of seconds 1 to 3 while live: those segments, ended, from the whole broadcast.
  const clipMaster = await text(`${masterUrl}?asset_start_time=1&asset_end_time=3`);
  const clipRung = clipMaster.split("\n").find((line) => line.includes(".m3u8?") && !line.startsWith("#"))!;
  const clip = await text(new URL(clipRung, masterUrl).toString());
  expect(clip).toContain("#EXT-X-ENDLIST");
  expect(durationOf(clip)).toBeGreaterThanOrEqual(2 - 0.05);
  expect(durationOf(clip)).toBeLessThan(3.1);
}

/**
 * An ended broadcast's recording is a source like an upload: it has a storyboard (every tile inside
 * the recording), a clip can be cut from it (its own encode, the range's length, READY) and its
 * static renditions can be asked for.
 */
/** A stream's broadcast that continued across publishers: one video, READY, about `seconds` long. */
async function expectOneRecording(streamId: string, videoId: string, seconds: number): Promise<void> {
  const ended = await waitFor(
    "the recording",
    () => streamState(streamId),
    (s) => s.status === "ENDED",
  );
  expect(ended.activeVideo.id).toBe(videoId);
  expect(ended.activeVideo.status).toBe("READY");
  expect(ended.activeVideo.duration).toBeGreaterThan(seconds - 1.5);
  expect(ended.activeVideo.duration).toBeLessThan(seconds + 1.5);
  expect(await t.app.services.db.video.count({ where: { liveStreamId: streamId } })).toBe(1);
}

/**
 * The stream's line in costSummary: its broadcast's encode, and its viewers' egress estimated from
 * their players' reports: 10 s more watched at the video rung's height add exactly 10 s of that
 * rung's and the audio's average bit rates, measured once the recording is READY.
 */
async function expectViewerEgress(streamId: string, videoId: string): Promise<void> {
  const range = {
    from: new Date(Date.now() - 3600_000).toISOString(),
    to: new Date(Date.now() + 3600_000).toISOString(),
  };
  const streamCost = async () => {
    const res = await t.gql(
      `query ($from: DateTime!, $to: DateTime!) { costSummary(from: $from, to: $to) {
        egressBytes egressUsd liveStreams { liveStreamId broadcasts cpuSeconds actualUsd egressBytes egressUsd } } }`,
      range,
    );
    expect(res.errors).toBeUndefined();
    const line = res.data.costSummary.liveStreams.find((l: { liveStreamId: string }) => l.liveStreamId === streamId);
    return { summary: res.data.costSummary, line };
  };
  const before = await streamCost();
  expect(before.line).toMatchObject({ broadcasts: 1 });
  expect(before.line.cpuSeconds).toBeGreaterThan(1);
  expect(before.summary.egressBytes).toBeGreaterThanOrEqual(before.line.egressBytes);
  const variants = await t.app.services.db.variant.findMany({ where: { videoId } });
  const video = variants.find((v) => v.kind === "VIDEO")!;
  const audio = variants.find((v) => v.kind === "AUDIO")!;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${t.url}${path}`, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const view = await post(ANALYTICS_PATHS.views, { v: 1, videoId });
  expect(view.status).toBe(201);
  const batch = await post(ANALYTICS_PATHS.beacons, {
    v: 1,
    videoId,
    viewToken: view.body.viewToken,
    seq: 0,
    events: [{ type: "watch", at: 10_000, height: video.height, watchedMs: 10_000 }],
  });
  expect(batch).toMatchObject({ status: 202, body: { counted: true } });
  const after = await streamCost();
  // Each rendition's own average (the bounds would count the audio twice: a video rung's includes it).
  expect(video.averageBitRate).toBeGreaterThan(0);
  expect(audio.averageBitRate).toBeGreaterThan(0);
  const added = (10 * (video.averageBitRate! + audio.averageBitRate!)) / 8;
  expect(after.line.egressBytes - before.line.egressBytes).toBeCloseTo(added, 0);
  expect(after.line.egressUsd).toBeCloseTo((after.line.egressBytes / 1e9) * 0.12, 9);

  // A forged batch on a view a moment old (50 events of 1 h) adds the watch-time bound's worth at most:
  // 30 s and twice the time since the view started (docs/analytics.md, "What is protected").
  const startedAt = Date.now();
  const forged = await post(ANALYTICS_PATHS.views, { v: 1, videoId });
  const hours = Array.from({ length: BEACON_LIMITS.eventsPerBatch }, (_, i) => ({
    type: "watch",
    at: i,
    height: video.height,
    watchedMs: BEACON_LIMITS.maxDurationMs,
  }));
  const forgedBatch = await post(ANALYTICS_PATHS.beacons, {
    v: 1,
    videoId,
    viewToken: forged.body.viewToken,
    seq: 0,
    events: hours,
  });
  expect(forgedBatch).toMatchObject({ status: 202, body: { counted: true } });
  const elapsedSeconds = (Date.now() - startedAt) / 1000;
  const forgedCost = await streamCost();
  const perSecond = (video.averageBitRate! + audio.averageBitRate!) / 8;
  const forgedBytes = forgedCost.line.egressBytes - after.line.egressBytes;
  expect(forgedBytes).toBeGreaterThanOrEqual((WATCH_BOUNDS.allowanceMs / 1000) * perSecond - 1);
  expect(forgedBytes).toBeLessThanOrEqual(
    (WATCH_BOUNDS.allowanceMs / 1000 + WATCH_BOUNDS.playbackRate * elapsedSeconds) * perSecond + 1,
  );
}

async function expectRecordingIsASource(videoId: string, duration: number): Promise<void> {
  const res = await t.gql(
    `query ($id: ID!) { video(id: $id) { storyboard { vttUrl sheetUrls tileCount intervalSeconds } } }`,
    { id: videoId },
  );
  expect(res.errors).toBeUndefined();
  const storyboard = res.data.video.storyboard;
  expect(storyboard, "the recording's storyboard").not.toBeNull();
  expect(storyboard.tileCount).toBe(Math.ceil(duration / storyboard.intervalSeconds));
  const vtt = await text(new URL(storyboard.vttUrl, t.url).toString());
  expect(vtt.split("\n").filter((line) => line.includes(" --> "))).toHaveLength(storyboard.tileCount);
  const sheet = await fetch(new URL(storyboard.sheetUrls[0], t.url));
  expect(sheet.headers.get("content-type")).toBe("image/jpeg");
  expect((await sheet.arrayBuffer()).byteLength).toBeGreaterThan(1000);

  // Its encode's cost, measured as any job's: the CPU and wall time of its run, in costSummary.
  const job = await waitFor(
    "the broadcast's measured cost",
    () => t.app.services.db.job.findFirstOrThrow({ where: { videoId, kind: "LIVE" } }),
    (j) => j.actualCostUsd !== null,
  );
  expect(job.cpuSeconds).toBeGreaterThan(1);
  expect(job.wallSeconds).toBeGreaterThan(duration - 2);
  const summary = await t.gql(
    `query ($from: DateTime!, $to: DateTime!) { costSummary(from: $from, to: $to) { actualUsd jobCount } }`,
    { from: job.createdAt.toISOString(), to: new Date(Date.now() + 1000).toISOString() },
  );
  expect(summary.data.costSummary.actualUsd).toBeGreaterThanOrEqual(job.actualCostUsd!);

  const [start, end] = [2, 6];
  const clip = await t.gql(
    `mutation ($input: CreateClipInput!) {
      createClip(input: $input) { __typename ... on CreateClipSuccess { video { id source } } ... on Error { message } }
    }`,
    { input: { sourceVideoId: videoId, start, end } },
  );
  expect(clip.errors).toBeUndefined();
  expect(clip.data.createClip.__typename, clip.data.createClip.message).toBe("CreateClipSuccess");
  const renditions = await t.gql(
    `mutation ($id: ID!) { requestStaticRenditions(videoId: $id, names: [HIGHEST]) { __typename } }`,
    { id: videoId },
  );
  expect(renditions.data.requestStaticRenditions.__typename).toBe("RequestStaticRenditionsSuccess");
  const clipId = clip.data.createClip.video.id;
  const clipped = await waitFor(
    "the clip of the recording",
    async () =>
      (await t.gql(`query ($id: ID!) { video(id: $id) { status duration clip { start end } } }`, { id: clipId })).data
        .video,
    (v) => v.status === "READY" || v.status === "FAILED",
    60_000,
  );
  expect(clipped.status).toBe("READY");
  expect(clipped.clip).toEqual({ start, end });
  expect(Math.abs(clipped.duration - (end - start))).toBeLessThan(0.1);
  const highest = await waitFor(
    "the recording's static rendition",
    async () =>
      (
        await t.gql(`query ($id: ID!) { video(id: $id) { staticRenditions { name status sizeBytes } } }`, {
          id: videoId,
        })
      ).data.video.staticRenditions,
    (r) => r.some((x: { status: string }) => x.status === "READY" || x.status === "FAILED"),
  );
  expect(highest).toEqual([expect.objectContaining({ name: "HIGHEST", status: "READY" })]);

  // Its rungs were cut live on one timeline: a failed one is not encoded again from the recording.
  const db = t.app.services.db;
  const variant = await db.variant.findFirstOrThrow({ where: { videoId, kind: "VIDEO" } });
  await db.variant.update({ where: { id: variant.id }, data: { status: "FAILED", error: "lost" } });
  const retried = await t.gql(
    `mutation ($id: ID!) { retryVariant(id: $id) { __typename ... on ValidationError { message } } }`,
    { id: variant.id },
  );
  expect(retried.data.retryVariant).toEqual({
    __typename: "ValidationError",
    message: "A live recording's rendition cannot be encoded again",
  });
}

describe("live streams over RTMP", () => {
  it("a broadcast plays live in the watch page (hls.js in Chromium), slides its DVR window, clips instantly, reports its states, health and webhooks, and becomes a VOD recording with a storyboard, clips and static renditions", async () => {
    // The CMS's data on the stream: each broadcast's video starts with it.
    const stream = await createLiveStream("Morning show", "PUBLIC", {
      description: "Every weekday at seven",
      metadata: [{ key: "show", value: "am-7" }],
      tags: ["Morning", "news"],
    });
    // A CMS's endpoint for the stream's webhooks (its deliveries are read from the outbox below).
    const endpoint = await t.gql(
      `mutation { createWebhookEndpoint(input: { url: "http://127.0.0.1:9/hooks", events: [LIVE_STREAM_CONNECTED, LIVE_STREAM_LIVE, LIVE_STREAM_DISCONNECTED, LIVE_STREAM_ENDED, VIDEO_READY] }) { __typename } }`,
    );
    expect(endpoint.errors).toBeUndefined();
    const statuses: string[] = [];
    let health: {
      segments: number;
      speed: number | null;
      inputKeyframeInterval: number | null;
      inputFps: number | null;
      renditions: { name: string; segments: number; bitrate: number | null; copied: boolean }[];
    } | null = null;
    const measured: { input: { inputKeyframeInterval: number | null; inputFps: number | null } | null } = {
      input: null,
    };
    const client = t.wsClient();
    const unsubscribe = client.subscribe(
      {
        query: `subscription ($id: ID!) { liveStreamEvents(id: $id) { status health { segments speed fps mediaSeconds inputBitrate inputKeyframeInterval inputFps renditions { name segments bitrate copied } } } }`,
        variables: { id: stream.id },
      },
      {
        next: (msg) => {
          const event = (msg.data as any)?.liveStreamEvents;
          if (!event) return;
          if (statuses.at(-1) !== event.status) statuses.push(event.status);
          if (event.health) health = event.health;
          // The publisher's stream is measured while it is connected (the encode reports on after it left).
          if (event.health?.inputKeyframeInterval != null) measured.input = event.health;
        },
        error: () => {},
        complete: () => {},
      },
    );

    // On air until the window has slid (longer than the DVR window) and the watch page has played it
    // (a loaded 2-core machine took over 12 s from LIVE to a second played): stopped below.
    const publisher = publishUntilStopped(`${stream.ingestUrl}/${stream.key}`);
    const live = await waitFor(
      "the broadcast to be playable",
      () => streamState(stream.id),
      // The stream turns LIVE once the encode's first segments are out (video.playable).
      (s) => s.status === "LIVE",
    );
    expect(live.activeVideo.playbackUrl).not.toBeNull();
    expect(live.activeVideo.source).toBe("LIVE");
    const found = await t.gql(
      `{ videos(filter: { tags: ["morning"], metadata: [{ key: "show", value: "am-7" }] }) { edges { node { id description tags } } } }`,
    );
    expect(found.data.videos.edges.map((e: any) => e.node)).toEqual([
      { id: live.activeVideo.id, description: "Every weekday at seven", tags: ["morning", "news"] },
    ]);
    const master = await text(new URL(live.activeVideo.playbackUrl, t.url).toString());
    const rung = master.split("\n").find((line) => line.endsWith(".m3u8") && !line.startsWith("#"))!;
    const rungUrl = new URL(rung, new URL(live.activeVideo.playbackUrl, t.url)).toString();
    // The broadcast's feed is for its worker only: refused without the URL the API signed into its job.
    const feed = `${t.url}/live/v1/feeds/${live.activeVideo.id}.flv`;
    expect((await fetch(feed)).status).toBe(403);
    expect((await fetch(`${feed}?expires=${Math.floor(Date.now() / 1000) + 60}&sig=forged`)).status).toBe(403);
    // While live: segments out, the playlist still open.
    const whileLive = await text(rungUrl);
    expect(whileLive).toContain("#EXTINF:");
    expect(whileLive).not.toContain("#EXT-X-ENDLIST");
    // The window is watched from now on, beside the page: it slides once the broadcast is longer than it.
    const windowChecked = expectLiveWindowAndInstantClip(live.activeVideo.id, live.activeVideo.playbackUrl, master);
    windowChecked.catch(() => {}); // awaited below; a failure meanwhile is not unhandled
    // The watch page (the console's player, hls.js in Chromium) plays it while it is live.
    await playsInWatchPage(live.activeVideo.id, publisher, async () => {
      const playedLive = await streamState(stream.id);
      expect(playedLive.status).toBe("LIVE");
      expect(await byProtocol(liveBroadcasts, "rtmp")).toBe(1);
    });

    await windowChecked;
    const seconds = await publisher.stop();
    expect(seconds).toBeGreaterThan(DVR_WINDOW_SECONDS);

    // From the publisher's first frame: the encode joined the feed after its worker had read the
    // opening (whether to copy the top rung), and still got the broadcast from its start.
    const ended = await expectRecording(stream.id, publisher, seconds);
    expect(ended.activeVideo.posterUrl).not.toBeNull();
    // Its one video rung is the publisher's own H.264 (Constrained Baseline from x264 ultrafast),
    // copied (LIVE_PASSTHROUGH), not encoded again (High profile): the master names its codecs.
    const [rendition] = await t.app.services.db.variant.findMany({
      where: { videoId: ended.activeVideo.id, kind: "VIDEO" },
    });
    expect(rendition?.codecs).toMatch(/^avc1\.42c0[0-9a-f]{2}$/);
    const recordedMaster = await text(new URL(ended.activeVideo.playbackUrl, t.url).href);
    expect(recordedMaster).toContain(rendition!.codecs);
    // Once the broadcast ended, the master states what the recording's segments carry, under the
    // live ladder's bound: its measured peak and its average.
    const variant = recordedMaster.split("\n").find((line) => line.startsWith("#EXT-X-STREAM-INF:"))!;
    const attribute = (name: string) =>
      Number(
        variant
          .split(/[:,]/)
          .find((a) => a.startsWith(`${name}=`))
          ?.split("=")[1],
      );
    expect(attribute("AVERAGE-BANDWIDTH")).toBeGreaterThan(0);
    expect(attribute("AVERAGE-BANDWIDTH")).toBeLessThanOrEqual(attribute("BANDWIDTH"));
    expect(attribute("BANDWIDTH")).toBeLessThan(rendition!.bandwidth);
    const recording = await text(rungUrl);
    expect(recording).toContain("#EXT-X-ENDLIST");
    expect(Math.abs(durationOf(recording) - ended.activeVideo.duration)).toBeLessThan(0.1);

    await waitFor(
      "the last state event",
      async () => statuses,
      (s) => s.at(-1) === "ENDED",
      5000,
    );
    expect(statuses[0]).toBe("IDLE");
    expect(statuses).toEqual(expect.arrayContaining(["CONNECTED", "LIVE", "DISCONNECTED", "ENDED"]));
    expect(statuses.indexOf("LIVE")).toBeLessThan(statuses.indexOf("DISCONNECTED"));
    const deliveries = await t.app.services.db.webhookDelivery.findMany({ orderBy: { createdAt: "asc" } });
    // The recording's video.ready carries its length (known only at its end).
    const ready = deliveries.filter((d) => d.eventType === "video.ready");
    expect(ready.map((d) => (d.payload as any).data.video.duration)).toEqual([ended.activeVideo.duration]);
    const sent = deliveries
      .filter((d) => d.eventType !== "video.ready")
      .map((d) => ({
        type: d.eventType,
        stream: (d.payload as any).data.liveStream.id,
        video: (d.payload as any).data.video.id,
      }));
    expect(sent.map((d) => d.type)).toEqual([
      "live_stream.connected",
      "live_stream.live",
      "live_stream.disconnected",
      "live_stream.ended",
    ]);
    expect(new Set(sent.map((d) => `${d.stream} ${d.video}`))).toEqual(
      new Set([`${stream.id} ${ended.activeVideo.id}`]),
    );
    expect(health).not.toBeNull();
    // The operators' metrics saw it: bytes in, one broadcast on while live and none now, its end.
    expect(await byProtocol(liveIngestBytes, "rtmp")).toBeGreaterThan(100_000);
    expect(await byProtocol(liveBroadcasts, "rtmp")).toBe(0);
    expect(await byProtocol(liveIngestClosed, "rtmp", { outcome: "ended" })).toBeGreaterThanOrEqual(1);
    // The encode's speed and lag, one sample per progress report, as the health events said.
    const samples = async (h: typeof liveEncodeSpeed) =>
      (await h.get()).values.find((v) => v.metricName?.endsWith("_count"))?.value ?? 0;
    expect(await samples(liveEncodeSpeed)).toBeGreaterThan(3);
    expect(await samples(liveBehindSeconds)).toBeGreaterThan(3);
    expect(health!.segments).toBeGreaterThan(0);
    // Each rendition: the video rung (the publisher's own, copied) and the audio, with their bit
    // rates as published (the test pattern's x264 ultrafast: well above its audio's 128 kbit/s).
    const renditions = health!.renditions;
    expect(renditions.map((r) => [r.name, r.copied])).toEqual([
      ["240p", true],
      ["audio", false],
    ]);
    for (const r of renditions) expect(r.segments).toBeGreaterThan(0);
    expect(renditions[0]!.segments).toBe(health!.segments);
    const [videoBitrate, audioBitrate] = renditions.map((r) => r.bitrate ?? 0) as [number, number];
    expect(audioBitrate).toBeGreaterThan(64_000);
    expect(audioBitrate).toBeLessThan(256_000);
    expect(videoBitrate).toBeGreaterThan(audioBitrate);
    // The publisher's own settings, read from its stream: a keyframe every 25 frames at 25 fps.
    expect(measured.input?.inputKeyframeInterval).toBeCloseTo(1, 1);
    expect(measured.input?.inputFps).toBeCloseTo(25, 0);
    unsubscribe();
    await expectRecordingIsASource(ended.activeVideo.id, ended.activeVideo.duration);
    await expectViewerEgress(stream.id, ended.activeVideo.id);
  });

  it("the console's Live page: create a SIGNED stream, paste its key into a publisher, watch it live with its state, then its recording", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${t.url}/live`);
      await page.getByLabel("API key or viewer JWT").fill(TEST_ADMIN_KEY);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByLabel("Title").fill("Console show");
      await page.getByLabel("Latency").selectOption("LOW");
      await page.getByLabel("Playback").selectOption("SIGNED");
      await page.getByRole("button", { name: "Create live stream" }).click();
      // The masters the page's player asks for: a SIGNED stream's events carry a fresh token about
      // once a second, and the player keeps the URL it started with.
      const masters: string[] = [];
      page.on("request", (request) => {
        if (new URL(request.url()).pathname.endsWith("/master.m3u8")) masters.push(request.url());
      });
      const settings = page.getByRole("region", { name: "Stream key and OBS settings" });
      await settings.waitFor();
      const codes = await settings.locator("code").allTextContents();
      const [server, key] = codes as [string, string];
      expect(server).toMatch(/^rtmp:\/\/localhost:\d+\/live$/);
      expect(key).toMatch(/^lsk_/);
      // The same key over SRT (this API runs its SRT ingest), with the stream's passphrase: the one
      // URL OBS takes as its Server.
      const srtAddress = (await t.gql(`{ liveStreams { srtIngestUrl } }`)).data.liveStreams[0].srtIngestUrl;
      expect(codes[3]).toMatch(new RegExp(`^${srtAddress}\\?streamid=${key}&passphrase=[A-Za-z0-9_-]{32}&linger=3$`));
      const card = page.getByRole("article", { name: "Live stream Console show" });
      await card.getByText("Status: IDLE").waitFor();
      // On air until the card has shown it live and played it: stopped below.
      const publisher = publishUntilStopped(`${server.replace("localhost", "127.0.0.1")}/${key}`);
      await card.getByText("Status: LIVE").waitFor({ timeout: 30_000 });
      await card.getByText(/segments ·/).waitFor();
      // Each rendition's bit rate as published, the publisher's own video marked copied.
      await card.getByText(/^Renditions: 240p \(copied\) \d+ kbit\/s · audio \d+ kbit\/s$/).waitFor();
      await page.waitForFunction(
        () => ((document.querySelector("article video") as HTMLVideoElement | null)?.currentTime ?? 0) >= 1,
        undefined,
        {
          timeout: 20_000,
        },
      );
      expect(masters).toHaveLength(1);
      expect(masters[0]).toMatch(/[?&]token=o\./);
      expect(await publisher.stop()).toBeGreaterThan(1);
      expect(await publisher.exited).toBe(0);
      // After the reconnect grace and the encode's end.
      await card.getByText("Status: ENDED").waitFor({ timeout: 45_000 });
      await card.getByRole("link", { name: "Console show" }).waitFor();
      expect(await card.textContent()).toContain("Recording");
      // The tenant's live minutes this month, the broadcasts before this one's included.
      await page.reload();
      const used = await page.getByTestId("live-usage").textContent();
      expect(used).toMatch(/^This month: \d+\.\d live minutes \(no monthly quota\)$/);
      expect(Number(used!.match(/[\d.]+/)![0])).toBeGreaterThan(0);
    } finally {
      await page.close();
    }
  });

  it("a publisher that reconnects within the grace continues the same broadcast, and a timestamp jump leaves no gap", async () => {
    // Its publisher stops and comes back: a stream whose broadcasts wait for it after a stop too.
    const stream = await createLiveStream("Flaky uplink", "SIGNED", { endOnUnpublish: false });
    // Two publishers with the same key at the same moment: one broadcasts, the other is refused. The
    // one broadcasting is on air until its broadcast has been seen LIVE (stopped below): on a loaded
    // machine a 4 s publisher had gone before its encode's first segments were out, and the stream
    // went from CONNECTED to DISCONNECTED without ever being LIVE.
    const url = `${stream.ingestUrl}/${stream.key}`;
    const publishers = [publishUntilStopped(url), publishUntilStopped(url)];
    const live = await waitFor(
      "the broadcast",
      () => streamState(stream.id),
      (s) => s.status === "LIVE",
    );
    // A SIGNED stream's broadcast plays only with its token.
    const signed = new URL(live.activeVideo.playbackUrl, t.url);
    expect(signed.searchParams.get("token")).toBeTruthy();
    expect((await fetch(signed)).status).toBe(200);
    expect((await fetch(new URL(signed.pathname, t.url))).status).toBe(403);
    // The one refused has gone; the other broadcasts until it is stopped.
    const refused = await Promise.race(publishers.map((p) => p.exited.then(() => p)));
    expect(await refused.exited).not.toBe(0);
    const first = publishers.find((p) => p !== refused)!;
    // Watched from now, not from the publisher's exit: on a loaded machine its exit can be seen
    // after the grace has run out.
    const disconnected = disconnectOf(stream.id);
    const firstSeconds = await first.stop();
    expect(await first.exited).toBe(0);
    await disconnected;
    // Back within LIVE_RECONNECT_GRACE_SECONDS, its clock leaping 100 s two seconds in.
    const second = publish(`${stream.ingestUrl}/${stream.key}`, 4, { jumpAt: 2 });
    const back = await waitFor(
      "the same broadcast live again",
      () => streamState(stream.id),
      (s) => s.status === "LIVE",
    );
    expect(back.activeVideo.id).toBe(live.activeVideo.id);
    expect(await second.exited).toBe(0);
    // Both publishers' seconds, without the time between them or the 100 s leap.
    await expectOneRecording(stream.id, live.activeVideo.id, firstSeconds + 4);
  });

  it("a publisher that reconnects to another API instance within the grace continues the same broadcast: relayed to the instance holding it", async () => {
    // A second API instance of the same deployment (its database, its signing secret), its own RTMP port.
    const other = await startTestApp({
      instanceOf: t,
      worker: false,
      env: { LIVE_SEGMENT_SECONDS: "1", LIVE_STALL_SECONDS: "3", LIVE_RECONNECT_GRACE_SECONDS: "10" },
    });
    try {
      // Its publisher stops and comes back: a stream whose broadcasts wait for it after a stop too.
      const stream = await createLiveStream("Moved uplink", "PUBLIC", { endOnUnpublish: false });
      // On air until its broadcast has been seen LIVE: stopped below.
      const first = publishUntilStopped(`${stream.ingestUrl}/${stream.key}`);
      const live = await waitFor(
        "the broadcast",
        () => streamState(stream.id),
        (s) => s.status === "LIVE",
      );
      const disconnected = disconnectOf(stream.id);
      const firstSeconds = await first.stop();
      expect(await first.exited).toBe(0);
      await disconnected;
      // Back within the grace, through the other instance's ingest (a load balancer's choice).
      const otherIngest = (await other.gql(`{ liveStreams { ingestUrl } }`)).data.liveStreams[0].ingestUrl as string;
      expect(otherIngest).not.toBe(stream.ingestUrl.replace("127.0.0.1", "localhost"));
      const second = publish(`${otherIngest.replace("localhost", "127.0.0.1")}/${stream.key}`, 4);
      const back = await waitFor(
        "the same broadcast live again",
        () => streamState(stream.id),
        (s) => s.status === "LIVE",
      );
      expect(back.activeVideo.id).toBe(live.activeVideo.id);
      // The holding instance took it as a publisher relayed to it.
      expect(await byProtocol(liveBroadcasts, "relay")).toBe(1);
      expect(await second.exited).toBe(0);
      // Both publishers' seconds, one recording.
      await expectOneRecording(stream.id, live.activeVideo.id, firstSeconds + 4);
      expect(await byProtocol(liveBroadcasts, "relay")).toBe(0);
      // The relay takes only a signed request, and only while this instance holds that broadcast.
      const relayUrl = (videoId: string) => `${t.url}${t.app.services.signer.sign(relayPath(videoId), 60)}`;
      const unsigned = await fetch(`${t.url}${relayPath(live.activeVideo.id)}`, { method: "POST", body: "FLV" });
      expect(unsigned.status).toBe(403);
      const notHeld = await fetch(relayUrl(live.activeVideo.id), { method: "POST", body: "FLV" });
      expect(notHeld.status).toBe(409);
    } finally {
      await other.stop();
    }
  });

  it("a stream that keeps no recording: its broadcast plays live, then its video ends DISCARDED with its media deleted, its cost kept and the ENDED webhook saying so", async () => {
    const created = await t.gql(
      `mutation { createLiveStream(input: { title: "Unrecorded", recording: false }) { ... on LiveStreamWithKey { streamKey liveStream { id recording ingestUrl } } } }`,
    );
    expect(created.errors).toBeUndefined();
    const { streamKey, liveStream } = created.data.createLiveStream;
    expect(liveStream.recording).toBe(false);
    const endpoint = await t.gql(
      `mutation { createWebhookEndpoint(input: { url: "http://127.0.0.1:9/unrecorded", events: [LIVE_STREAM_ENDED, VIDEO_READY] }) { ... on CreateWebhookEndpointSuccess { endpoint { id } } } }`,
    );
    expect(endpoint.errors).toBeUndefined();
    const endpointId = endpoint.data.createWebhookEndpoint.endpoint.id;
    const ingestUrl = liveStream.ingestUrl.replace("localhost", "127.0.0.1");
    const usedBefore = (await t.app.services.db.liveUsage.findMany()).reduce((sum, u) => sum + u.seconds, 0);
    // On air until its broadcast has been seen LIVE (on a loaded machine a 4 s publisher had gone
    // before its broadcast turned LIVE): stopped below.
    const publisher = publishUntilStopped(`${ingestUrl}/${streamKey}`);
    const live = await waitFor(
      "the broadcast",
      () => streamState(liveStream.id),
      (s) => s.status === "LIVE",
    );
    const videoId = live.activeVideo.id;
    // It plays live as any broadcast does, from media in storage.
    expect(await text(new URL(live.activeVideo.playbackUrl, t.url).href)).toContain("#EXTM3U");
    const hls = path.join(t.dataDir, "videos", videoId, "hls");
    expect((await readdir(hls)).length).toBeGreaterThan(0);
    const seconds = await publisher.stop();
    expect(await publisher.exited).toBe(0);
    const ended = await waitFor(
      "the end",
      () => streamState(liveStream.id),
      (s) => s.status === "ENDED",
    );
    expect(ended.lastError).toBeNull();
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "DISCARDED", playbackUrl: null, posterUrl: null });
    // Its rungs were on air, and say so (their segments), but name no playlist: it is deleted.
    const rungs = await t.gql(`query ($id: ID!) { video(id: $id) { variants { segmentCount playlistUrl } } }`, {
      id: videoId,
    });
    expect(rungs.data.video.variants.length).toBeGreaterThan(1);
    for (const rung of rungs.data.video.variants) expect(rung).toMatchObject({ playlistUrl: null });
    expect(rungs.data.video.variants.some((r: { segmentCount: number }) => r.segmentCount > 0)).toBe(true);
    // Its length is what its publisher sent.
    expect(Math.abs(ended.activeVideo.duration - seconds)).toBeLessThan(1.5);
    // Nothing of it is left in storage (no playlists, segments, poster or recording source).
    await expect(readdir(path.join(t.dataDir, "videos", videoId))).rejects.toThrow(/ENOENT/);
    expect((await fetch(new URL(live.activeVideo.playbackUrl, t.url))).status).toBe(404);
    // Its row stays, with its job's measured cost (what the operator bills).
    const job = await waitFor(
      "the broadcast's measured cost",
      () => t.app.services.db.job.findFirstOrThrow({ where: { videoId, kind: "LIVE" } }),
      (j) => j.actualCostUsd !== null,
    );
    expect(job.status).toBe("SUCCEEDED");
    expect(job.cpuSeconds).toBeGreaterThan(0);
    // Its time on air was added to the tenant's live time this month, once: its charge, at least its length.
    const [charge] = await t.app.services.db.liveBroadcastCharge.findMany({ where: { videoId } });
    expect(charge!.seconds).toBeGreaterThanOrEqual(ended.activeVideo.duration);
    const usage = await t.app.services.db.liveUsage.findMany();
    expect(usage.reduce((sum, u) => sum + u.seconds, 0) - usedBefore).toBeCloseTo(charge!.seconds, 6);
    // The CMS hears the end, with the video DISCARDED, and no video.ready.
    const deliveries = await t.app.services.db.webhookDelivery.findMany({ where: { endpointId } });
    expect(deliveries.map((d) => [d.eventType, (d.payload as any).data.video.status])).toEqual([
      ["live_stream.ended", "DISCARDED"],
    ]);
    // Recording on again: the stream's next broadcast keeps its recording.
    const updated = await t.gql(
      `mutation ($id: ID!) { updateLiveStream(id: $id, input: { recording: true }) { ... on LiveStream { recording } } }`,
      { id: liveStream.id },
    );
    expect(updated.data.updateLiveStream.recording).toBe(true);
  });

  it("a broadcast whose video is canceled ends, and its publisher is cut off", async () => {
    const stream = await createLiveStream("Canceled show");
    const publisher = publish(`${stream.ingestUrl}/${stream.key}`, 30);
    const live = await waitFor(
      "the broadcast",
      () => streamState(stream.id),
      (s) => s.status === "LIVE",
    );
    const canceled = await t.gql(`mutation ($id: ID!) { cancelVideo(id: $id) { __typename } }`, {
      id: live.activeVideo.id,
    });
    expect(canceled.data.cancelVideo.__typename).toBe("CancelVideoSuccess");
    const ended = await waitFor(
      "the end",
      () => streamState(stream.id),
      (s) => s.status === "ENDED",
    );
    expect(ended.lastError).toMatch(/canceled/);
    // Cut off long before its 30 s.
    const exit = await Promise.race([
      publisher.exited,
      new Promise((r) => setTimeout(() => r("still running"), 10_000)),
    ]);
    expect(exit).not.toBe("still running");
    expect(exit).not.toBe(0);
  });

  it("refuses a wrong key, a rotated-away key and a disabled stream before any broadcast starts; checks and changes the stream's CMS data; another tenant sees none of it", async () => {
    const stream = await createLiveStream("Refused");
    const refused = async (key: string) => {
      const publisher = publish(`${stream.ingestUrl}/${key}`, 5);
      expect(await publisher.exited).not.toBe(0);
    };
    await refused(`lsk_${"A".repeat(43)}`);
    // The right key with a codec the encode does not take: refused, and the stream says why.
    const flv1 = publish(`${stream.ingestUrl}/${stream.key}`, 3, { videoCodec: "flv1" });
    expect(await flv1.exited).not.toBe(0);
    const said = await waitFor(
      "the refusal's reason",
      () => streamState(stream.id),
      (s) => s.lastError !== null,
      5000,
    );
    expect(said.lastError).toMatch(/not H\.264/);
    const rotated = await t.gql(
      `mutation ($id: ID!) { rotateLiveStreamKey(id: $id) { ... on LiveStreamWithKey { streamKey liveStream { streamKeyHint } } } }`,
      {
        id: stream.id,
      },
    );
    const newKey: string = rotated.data.rotateLiveStreamKey.streamKey;
    expect(newKey).not.toBe(stream.key);
    expect(newKey.endsWith(rotated.data.rotateLiveStreamKey.liveStream.streamKeyHint)).toBe(true);
    await refused(stream.key);
    await t.gql(
      `mutation ($id: ID!) { setLiveStreamEnabled(id: $id, enabled: false) { ... on LiveStream { disabled } } }`,
      {
        id: stream.id,
      },
    );
    await refused(newKey);
    const state = await streamState(stream.id);
    expect(state.status).toBe("IDLE");
    expect(state.activeVideo).toBeNull();
    expect(await t.app.services.db.video.count({ where: { liveStreamId: stream.id } })).toBe(0);

    // The stream's CMS data is checked as a video's, and changed for the next broadcasts.
    const tooLong = await t.gql(
      `mutation { createLiveStream(input: { tags: ["${"t".repeat(65)}"] }) { __typename ... on ValidationError { field } } }`,
    );
    expect(tooLong.data.createLiveStream).toEqual({ __typename: "ValidationError", field: "tags" });
    const updated = await t.gql(
      `mutation ($id: ID!) { updateLiveStream(id: $id, input: { title: "Renamed", tags: [" Late "], description: null }) {
        __typename ... on LiveStream { title tags description metadata { key } } } }`,
      { id: stream.id },
    );
    expect(updated.data.updateLiveStream).toEqual({
      __typename: "LiveStream",
      title: "Renamed",
      tags: ["late"],
      description: null,
      metadata: [],
    });

    // Another tenant: the stream is not there for it, to read, follow, rotate, enable or change.
    const other = `Bearer ${await tenantKeySecret(t.app.services.db, "live-other", ["videos:read", "videos:write"])}`;
    const read = await t.gql(
      `query ($id: ID!) { liveStream(id: $id) { id } liveStreams { id } }`,
      { id: stream.id },
      other,
    );
    expect(read.data).toEqual({ liveStream: null, liveStreams: [] });
    const rotate = await t.gql(
      `mutation ($id: ID!) { rotateLiveStreamKey(id: $id) { __typename } }`,
      { id: stream.id },
      other,
    );
    expect(rotate.data.rotateLiveStreamKey.__typename).toBe("NotFoundError");
    const enable = await t.gql(
      `mutation ($id: ID!) { setLiveStreamEnabled(id: $id, enabled: true) { __typename } }`,
      { id: stream.id },
      other,
    );
    expect(enable.data.setLiveStreamEnabled.__typename).toBe("NotFoundError");
    const change = await t.gql(
      `mutation ($id: ID!) { updateLiveStream(id: $id, input: { title: "Mine" }) { __typename } }`,
      { id: stream.id },
      other,
    );
    expect(change.data.updateLiveStream.__typename).toBe("NotFoundError");
    const follow = await new Promise<string>((resolve) => {
      t.wsClient(other).subscribe(
        { query: `subscription ($id: ID!) { liveStreamEvents(id: $id) { status } }`, variables: { id: stream.id } },
        {
          // A refused subscription's errors come as its one result.
          next: (result) => resolve(JSON.stringify(result)),
          error: (err) => resolve(JSON.stringify(err)),
          complete: () => resolve("complete"),
        },
      );
    });
    expect(follow).toMatch(/No live stream/);
    expect(follow).not.toMatch(/"status"/);
    expect((await streamState(stream.id)).disabled).toBe(true);
  });

  it("closes a connection whose RTMP message header declares more than the ingest allows, before allocating it", async () => {
    const stream = await createLiveStream("Hostile");
    const { port } = new URL(stream.ingestUrl.replace("rtmp:", "http:"));
    const socket = connect(Number(port), "127.0.0.1");
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => {});
    // Read what the server sends (S0, S1, S2), so its end is seen.
    socket.resume();
    await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
    // C0 (version 3), C1 (1536 bytes), C2 (1536 bytes): the simple handshake.
    socket.write(Buffer.concat([Buffer.from([3]), Buffer.alloc(1536), Buffer.alloc(1536)]));
    // A type-0 chunk header on chunk stream 3: timestamp 0, a message of 16 MiB - 1 (type 9, video), stream 1.
    const header = Buffer.from([0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0]);
    socket.write(Buffer.concat([header, Buffer.alloc(64)]));
    const outcome = await Promise.race([
      closed.then(() => "closed"),
      new Promise((r) => setTimeout(() => r("open"), 5000)),
    ]);
    socket.destroy();
    expect(outcome).toBe("closed");
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});

describe("a tenant's limit on broadcasts on air", () => {
  let limited: TestApp;
  beforeAll(async () => {
    limited = await startTestApp({ worker: false, env: { LIVE_MAX_STREAMS_PER_TENANT: "1" } });
    await standInLiveWorker(limited.app.services.db, 4);
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it("holds when two of its streams start broadcasts at the same instant: one starts, the other is refused", async () => {
    const streams: string[] = [];
    for (const title of ["Studio A", "Studio B"]) {
      const res = await limited.gql(
        `mutation ($title: String!) { createLiveStream(input: { title: $title }) { ... on LiveStreamWithKey { liveStream { id } } } }`,
        { title },
      );
      expect(res.errors).toBeUndefined();
      streams.push(res.data.createLiveStream.liveStream.id);
    }
    const { sessions } = limited.app.services.live;
    // Both publishers were authorized (none on air yet) and their metadata came at once.
    for (const id of streams) expect(await sessions.authorize(await keyOf(id))).toEqual({ streamId: id });
    const input = { width: 320, height: 240, fps: 25, hasAudio: true };
    const begun = await Promise.all(streams.map((id) => sessions.begin(id, input)));
    const started = begun.filter((b) => "feed" in b);
    const refused = begun.filter((b) => "refused" in b);
    expect(started).toHaveLength(1);
    expect(refused).toEqual([{ refused: "the tenant has 1 live streams on air (LIVE_MAX_STREAMS_PER_TENANT)" }]);
    const db = limited.app.services.db;
    expect(await db.liveStream.count({ where: { status: { in: ["CONNECTED", "LIVE"] } } })).toBe(1);
    // The refused one's claim was undone: no video, its stream as it was.
    expect(await db.video.count({ where: { source: "LIVE" } })).toBe(1);
    expect(await db.liveStream.count({ where: { status: "IDLE" } })).toBe(1);
  });

  /** A fresh key of the stream (rotated: keys are shown once). */
  async function keyOf(id: string): Promise<string> {
    const res = await limited.gql(
      `mutation ($id: ID!) { rotateLiveStreamKey(id: $id) { ... on LiveStreamWithKey { streamKey } } }`,
      {
        id,
      },
    );
    expect(res.errors).toBeUndefined();
    return res.data.rotateLiveStreamKey.streamKey;
  }
});

describe("a publisher back after its broadcast's grace ran out here, its encode not yet ended", () => {
  let graceful: TestApp;
  let feedAddress: Server;
  /** Requests that reached the broadcast's feed address: this instance's own (LIVE_FEED_URL). */
  const reached: string[] = [];
  beforeAll(async () => {
    // This instance's feed address, standing in front of it (as a proxy would): it refuses a relay
    // as the instance itself does once the grace is over (409), and says whether one came.
    feedAddress = createServer((req, res) => {
      reached.push(`${req.method} ${req.url?.split("?")[0]}`);
      req.resume();
      res.writeHead(409, { "content-type": "text/plain" }).end("No broadcast of this video in its grace\n");
    });
    await new Promise<void>((r) => feedAddress.listen(0, "127.0.0.1", r));
    const { port } = feedAddress.address() as AddressInfo;
    // No worker: the broadcast's LIVE job stays queued, so its encode has not ended when the
    // publisher comes back, whatever the host's speed.
    graceful = await startTestApp({
      worker: false,
      env: { LIVE_RECONNECT_GRACE_SECONDS: "1", LIVE_FEED_URL: `http://127.0.0.1:${port}` },
    });
    await standInLiveWorker(graceful.app.services.db, 4);
  });
  afterAll(async () => {
    await graceful?.stop();
    await new Promise((r) => feedAddress?.close(r));
  });

  it("starts a new broadcast here at once, without relaying its media to this instance's own address", async () => {
    const created = await graceful.gql(
      `mutation { createLiveStream(input: { title: "Back late" }) { ... on LiveStreamWithKey { streamKey liveStream { id } } } }`,
    );
    expect(created.errors).toBeUndefined();
    const { streamKey: key, liveStream } = created.data.createLiveStream;
    const { sessions } = graceful.app.services.live;
    const db = graceful.app.services.db;
    const input = { width: 320, height: 240, fps: 25, hasAudio: true };
    expect(await sessions.authorize(key)).toEqual({ streamId: liveStream.id });
    const first = await sessions.begin(liveStream.id, input);
    if (!("feed" in first) || !(first.feed instanceof LiveFeed))
      throw new Error(`not a broadcast here: ${JSON.stringify(first)}`);
    const firstFeed = first.feed;
    const firstVideo = (await db.liveStream.findUniqueOrThrow({ where: { id: liveStream.id } })).activeVideoId;
    await sessions.end(liveStream.id, first.feed, "the publisher's connection dropped", false);
    // The grace (1 s) runs out: this instance ends the broadcast's feed; its job is still queued.
    await waitFor(
      "the grace's end",
      async () => firstFeed.ended,
      (ended) => ended,
      10_000,
    );
    const stream = await db.liveStream.findUniqueOrThrow({ where: { id: liveStream.id } });
    expect(stream.status).toBe("DISCONNECTED");
    expect(await db.job.count({ where: { videoId: firstVideo!, status: "QUEUED" } })).toBe(1);

    expect(await sessions.authorize(key)).toEqual({ streamId: liveStream.id });
    const second = await sessions.begin(liveStream.id, input);
    expect("feed" in second, JSON.stringify(second)).toBe(true);
    // Before the fix, the instance relayed the publisher to its own feed address, was refused (409),
    // logged that the broadcast "could not be continued", and only then started this one.
    expect(reached).toEqual([]);
    const now = await db.liveStream.findUniqueOrThrow({ where: { id: liveStream.id } });
    expect(now.status).toBe("CONNECTED");
    expect(now.activeVideoId).not.toBe(firstVideo);
    if ("feed" in second) await sessions.end(liveStream.id, second.feed, null, false);
  });
});

/** The envelope of a LIVE job's events as its worker sends them, by sequence number. */
function workerEnvelope(jobId: string) {
  const at = Date.now();
  return (seq: number) => ({
    v: PROTOCOL_VERSION,
    jobId,
    attempt: 1,
    seq,
    workerId: "test-worker",
    at: new Date(at + seq).toISOString(),
  });
}

describe("a tenant's monthly live minutes (LIVE_MAX_MINUTES_PER_TENANT_MONTH)", () => {
  let quota: TestApp;
  beforeAll(async () => {
    quota = await startTestApp({ worker: false, env: { LIVE_MAX_MINUTES_PER_TENANT_MONTH: "1" } });
    await standInLiveWorker(quota.app.services.db, 4);
  });
  afterAll(async () => {
    await quota?.stop();
  });

  it("a broadcast of a stream that keeps no recording whose encode fails: its media are deleted, its video FAILED, its stream ENDED with the reason", async () => {
    const created = await quota.gql(
      `mutation { createLiveStream(input: { title: "Unrecorded, failing", recording: false }) { ... on LiveStreamWithKey { liveStream { id } } } }`,
    );
    expect(created.errors).toBeUndefined();
    const streamId = created.data.createLiveStream.liveStream.id;
    const { sessions } = quota.app.services.live;
    expect("feed" in (await sessions.begin(streamId, { width: 320, height: 240, fps: 25, hasAudio: true }))).toBe(true);
    const db = quota.app.services.db;
    const job = await db.job.findFirstOrThrow({ where: { kind: "LIVE", video: { liveStreamId: streamId } } });
    // What its worker had published while live.
    const segment = path.join(quota.dataDir, "videos", job.videoId, "hls", "240p", "seg_00000.ts");
    await mkdir(path.dirname(segment), { recursive: true });
    await writeFile(segment, "segment");
    // Its worker reports the start, then the failure (as the transport hands them to the API).
    const ingestor = createTestEventIngestor(db, { live: quota.app.services.live });
    const envelope = workerEnvelope(job.id);
    await ingestor.ingest([
      { ...envelope(1), type: "job.started" },
      { ...envelope(2), type: "job.failed", error: "the encode failed", retryable: false },
    ]);
    await expect(readdir(path.join(quota.dataDir, "videos", job.videoId))).rejects.toThrow(/ENOENT/);
    expect((await db.video.findUniqueOrThrow({ where: { id: job.videoId } })).status).toBe("FAILED");
    const stream = await db.liveStream.findUniqueOrThrow({ where: { id: streamId } });
    expect(stream).toMatchObject({ status: "ENDED", lastError: "the encode failed" });
  });

  it("a publisher that stops and starts again while its first broadcast's encode finishes: that broadcast is charged all the same, once", async () => {
    const created = await quota.gql(
      `mutation { createLiveStream(input: { title: "Stop, start" }) { ... on LiveStreamWithKey { streamKey liveStream { id } } } }`,
    );
    const { streamKey, liveStream } = created.data.createLiveStream;
    const streamId: string = liveStream.id;
    const db = quota.app.services.db;
    const live = quota.app.services.live;
    const { tenantId } = await db.liveStream.findUniqueOrThrow({ where: { id: streamId } });
    await db.liveUsage.deleteMany();
    const input = { width: 320, height: 240, fps: 25, hasAudio: true };
    expect(await live.sessions.authorize(streamKey)).toEqual({ streamId });
    const first = await live.sessions.begin(streamId, input);
    if (!("feed" in first)) throw new Error(`no broadcast: ${JSON.stringify(first)}`);
    const job = await db.job.findFirstOrThrow({ where: { kind: "LIVE", video: { liveStreamId: streamId } } });
    // The publisher stops (its broadcast ends at once) and starts again before that encode's end is applied.
    await live.sessions.end(streamId, first.feed, null, true);
    expect(await live.sessions.authorize(streamKey)).toEqual({ streamId });
    const second = await live.sessions.begin(streamId, input);
    if (!("feed" in second)) throw new Error(`no second broadcast: ${JSON.stringify(second)}`);
    const next = await db.liveStream.findUniqueOrThrow({ where: { id: streamId } });
    expect(next.activeVideoId).not.toBe(job.videoId);
    // The first broadcast's encode ends, its end applied twice (a redelivered event).
    const envelope = workerEnvelope(job.id);
    const failed = { ...envelope(2), type: "job.failed" as const, error: "the feed ended", retryable: false };
    await createTestEventIngestor(db, { live }).ingest([{ ...envelope(1), type: "job.started" }, failed]);
    await live.onJobEvent(failed, job.videoId);
    // Before, only a broadcast its stream still named was charged: a stop and a start in time made its time free.
    const charges = await db.liveBroadcastCharge.findMany({
      where: { videoId: { in: [job.videoId, next.activeVideoId!] } },
    });
    expect(charges.map((c) => c.videoId)).toEqual([job.videoId]);
    const month = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1));
    const row = await db.liveUsage.findUniqueOrThrow({ where: { tenantId_month: { tenantId, month } } });
    expect(row.seconds).toBeCloseTo(charges[0]!.seconds, 6);
    // The stream is the second broadcast's, untouched.
    expect(await db.liveStream.findUniqueOrThrow({ where: { id: streamId } })).toMatchObject({
      status: "CONNECTED",
      activeVideoId: next.activeVideoId,
    });
    await live.sessions.end(streamId, second.feed, null, true);
  });

  it("caps a broadcast at the time left, counts its end once, and refuses a publisher once the month's minutes are spent", async () => {
    const created = await quota.gql(
      `mutation { createLiveStream(input: { title: "Metered" }) { ... on LiveStreamWithKey { streamKey liveStream { id } } } }`,
    );
    expect(created.errors).toBeUndefined();
    const { streamKey, liveStream } = created.data.createLiveStream;
    const db = quota.app.services.db;
    const { tenantId } = await db.liveStream.findUniqueOrThrow({ where: { id: liveStream.id } });
    const now = new Date();
    const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    // 50 of the month's 60 s were broadcast before (the broadcast above counted none of its own).
    await db.liveUsage.deleteMany();
    await db.liveUsage.create({ data: { tenantId, month, seconds: 50 } });
    const { sessions } = quota.app.services.live;
    expect(await sessions.authorize(streamKey)).toEqual({ streamId: liveStream.id });
    const begun = await sessions.begin(liveStream.id, { width: 320, height: 240, fps: 25, hasAudio: true });
    expect("feed" in begun).toBe(true);
    // The broadcast's encode stops when the month's time runs out: in at most 10 s.
    const job = await db.job.findFirstOrThrow({ where: { kind: "LIVE", video: { liveStreamId: liveStream.id } } });
    const { maxDurationSeconds } = (job.input as { options: { maxDurationSeconds: number } }).options;
    expect(maxDurationSeconds).toBeLessThanOrEqual(10);
    expect(maxDurationSeconds).toBeGreaterThanOrEqual(8);
    const usage = await quota.gql(`{ liveUsage { month secondsUsed minutesLimit } }`);
    expect(usage.errors).toBeUndefined();
    expect(usage.data.liveUsage).toMatchObject({ month: month.toISOString(), minutesLimit: 1 });
    // The 50 s, and the broadcast on air since it started.
    expect(usage.data.liveUsage.secondsUsed).toBeGreaterThanOrEqual(50);
    expect(usage.data.liveUsage.secondsUsed).toBeLessThan(55);
    // Its end (its video canceled) is added to the month once, however often it is applied.
    const canceled = await quota.gql(`mutation ($id: ID!) { cancelVideo(id: $id) { __typename } }`, {
      id: job.videoId,
    });
    expect(canceled.data.cancelVideo.__typename).toBe("CancelVideoSuccess");
    await quota.app.services.live.onVideoCanceled(job.videoId);
    const row = await db.liveUsage.findUniqueOrThrow({ where: { tenantId_month: { tenantId, month } } });
    expect(row.seconds).toBeGreaterThan(50);
    expect(row.seconds).toBeLessThan(55);
    expect((await db.liveStream.findUniqueOrThrow({ where: { id: liveStream.id } })).status).toBe("ENDED");
    // The month spent: the next publisher is refused before any broadcast starts.
    await db.liveUsage.update({ where: { tenantId_month: { tenantId, month } }, data: { seconds: 60 } });
    expect(await sessions.authorize(streamKey)).toEqual({
      refused: "the tenant's live minutes for this month are used up (LIVE_MAX_MINUTES_PER_TENANT_MONTH: 1)",
    });
    expect(await sessions.begin(liveStream.id, { width: 320, height: 240, fps: 25, hasAudio: true })).toEqual({
      refused: "the tenant's live minutes for this month are used up (LIVE_MAX_MINUTES_PER_TENANT_MONTH: 1)",
    });
    expect(await db.video.count({ where: { liveStreamId: liveStream.id } })).toBe(1);
  });
});

/** The SRT describes need the gateway `npm run setup:srt` builds (pretest runs it). */
const SRT_GATEWAY_NEEDED = "the SRT gateway is not built: npm run setup:srt (needs cc, pkg-config, libsrt-gnutls-dev)";

describe("SRT ingest", () => {
  beforeAll(() => {
    expect(srtGatewayBuilt(), SRT_GATEWAY_NEEDED).toBe(true);
  });

  /** This process's children that read SRT callers' bytes: the gateway, and a remux per caller. */
  function srtReaders() {
    return childrenOf().filter((p) => {
      const argv = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0");
      return argv[0]!.endsWith("srt-gateway") || argv.join(" ").includes("-f mpegts -i pipe:0");
    });
  }

  /**
   * A caller's URL for a stream id (the key, or SRT's access-control form) and a passphrase (none:
   * the caller does not encrypt), lingering 3 s at its close as `srtUrl` asks.
   */
  async function srtUrl(streamId: string, passphrase: string | null): Promise<string> {
    const res = await t.gql(`{ liveStreams { srtIngestUrl } }`);
    const address: string = res.data.liveStreams[0].srtIngestUrl;
    expect(address).toMatch(/^srt:\/\/localhost:\d+$/);
    // As ffmpeg takes it: the stream id as is (a key is base64url; ffmpeg 5.1 decodes no %-escapes).
    const url = `${address.replace("localhost", "127.0.0.1")}?streamid=${streamId}`;
    return passphrase === null ? `${url}&linger=3` : `${url}&passphrase=${passphrase}&linger=3`;
  }

  it("a caller pushing MPEG-TS with its key as the stream id broadcasts live, plays in hls.js, and its recording is whole", async () => {
    const stream = await createLiveStream("Over SRT");
    // The whole address, as shown once with the key (OBS takes it as its Server).
    expect(stream.srtUrl).toBe(await srtUrl(stream.key, stream.srtPassphrase));
    // On air until the watch page has played it, however long a loaded machine takes: stopped below.
    const publisher = publishUntilStopped(await srtUrl(`#!::r=${stream.key},m=publish`, stream.srtPassphrase), {
      srt: true,
    });
    const live = await waitFor(
      "the SRT broadcast to be playable",
      () => streamState(stream.id),
      (s) => s.status === "LIVE",
    );
    const master = await text(new URL(live.activeVideo.playbackUrl, t.url).toString());
    const rung = master.split("\n").find((line) => line.endsWith(".m3u8") && !line.startsWith("#"))!;
    const rungUrl = new URL(rung, new URL(live.activeVideo.playbackUrl, t.url)).toString();
    const whileLive = await text(rungUrl);
    expect(whileLive).toContain("#EXTINF:");
    expect(whileLive).not.toContain("#EXT-X-ENDLIST");
    // The operators' metrics count it under its protocol.
    expect(await byProtocol(liveBroadcasts, "srt")).toBe(1);
    expect(await byProtocol(liveIngestBytes, "srt")).toBeGreaterThan(0);
    // The two processes that read the caller's bytes (the gateway, the remux) hold none of the API's secrets.
    const readers = srtReaders();
    expect(readers.map((p) => p.command).sort()).toEqual(["ffmpeg", "srt-gateway"]);
    for (const p of readers) {
      const environment = readFileSync(`/proc/${p.pid}/environ`, "utf8").split("\0").filter(Boolean);
      expect(environment.map((e) => e.split("=")[0])).toEqual(p.command === "ffmpeg" ? ["PATH"] : []);
    }
    // Played while the caller was still sending: live, not the recording.
    await playsInWatchPage(live.activeVideo.id, publisher, async () => expect(publisher.process.exitCode).toBeNull());
    await reportsLatencyOnceMeasured(live.activeVideo.playbackUrl);
    // Every second the caller sent, its last frames included: it lingers at its close (`srtUrl`'s
    // linger=3; without it SRT's live mode dropped what was not sent yet, 0.2 s here), and the
    // remux's last packets too (the caller's leaving drains it).
    const srtBytesBefore = await byProtocol(liveIngestBytes, "srt");
    const seconds = await publisher.stop();
    const ended = await expectRecording(stream.id, publisher, seconds);
    expect(ended.activeVideo.duration).toBeGreaterThanOrEqual(seconds - 0.05);
    expect(await byProtocol(liveIngestBytes, "srt")).toBeGreaterThan(srtBytesBefore);
    expect(await byProtocol(liveBroadcasts, "srt")).toBe(0);
    expect(await byProtocol(liveIngestClosed, "srt", { outcome: "ended" })).toBeGreaterThanOrEqual(1);
    const recording = await text(rungUrl);
    expect(recording).toContain("#EXT-X-ENDLIST");
    expect(Math.abs(durationOf(recording) - ended.activeVideo.duration)).toBeLessThan(0.1);
  });

  it("refuses a wrong key, a stream id that asks to play, a caller without its stream's passphrase, and a stream whose video the feed cannot carry", async () => {
    const stream = await createLiveStream("SRT refusals");
    const other = await createLiveStream("Another stream");
    const refusedCaller = async (streamId: string, passphrase: string | null = stream.srtPassphrase) => {
      const publisher = publish(await srtUrl(streamId, passphrase), 5, { srt: true });
      const exit = await Promise.race([
        publisher.exited,
        new Promise<string>((r) => setTimeout(() => r("still running"), 4000)),
      ]);
      publisher.process.kill("SIGKILL");
      expect(exit, streamId).not.toBe(0);
      expect(exit, streamId).not.toBe("still running");
    };
    await refusedCaller(`lsk_${"A".repeat(43)}`);
    await refusedCaller(`#!::r=${stream.key},m=request`);
    await refusedCaller("not-a-key");
    // The right key, unencrypted or with another stream's passphrase: refused in SRT's handshake
    // (the key alone travels in clear in the stream id; the passphrase never does).
    await refusedCaller(stream.key, null);
    await refusedCaller(stream.key, other.srtPassphrase);
    expect(stream.srtPassphrase).not.toBe(other.srtPassphrase);
    // A rotated-away key with its passphrase gets through SRT's handshake; the API refuses the key.
    const rotated = await t.gql(
      `mutation ($id: ID!) { rotateLiveStreamKey(id: $id) { ... on LiveStreamWithKey { srtPassphrase } } }`,
      {
        id: other.id,
      },
    );
    expect(rotated.data.rotateLiveStreamKey.srtPassphrase).not.toBe(other.srtPassphrase);
    await refusedCaller(other.key, other.srtPassphrase);
    expect((await streamState(stream.id)).lastError).toBeNull();
    expect((await streamState(stream.id)).status).toBe("IDLE");
    // The right key, MPEG-2 video: the remux cannot put it in the feed, and the stream says why.
    const mpeg2 = publish(await srtUrl(stream.key, stream.srtPassphrase), 5, { srt: true, videoCodec: "mpeg2video" });
    const said = await waitFor(
      "the refusal's reason",
      () => streamState(stream.id),
      (s) => s.lastError !== null,
      10_000,
    );
    mpeg2.process.kill("SIGKILL");
    expect(said.lastError).toBe("the SRT stream is not MPEG-TS carrying H.264 video (and AAC audio)");
    expect(said.status).toBe("IDLE");
    expect(await t.app.services.db.video.count({ where: { liveStreamId: stream.id } })).toBe(0);
    // No remux outlives its caller: the gateway alone is left.
    await waitFor(
      "only the gateway",
      async () => srtReaders().map((p) => p.command),
      (commands) => commands.join() === "srt-gateway",
      5000,
    );
  });
});

describe("SRT ingest's connection limit (LIVE_MAX_CONNECTIONS)", () => {
  let limited: TestApp;
  beforeAll(async () => {
    expect(srtGatewayBuilt(), SRT_GATEWAY_NEEDED).toBe(true);
    limited = await startTestApp({ worker: false, env: { LIVE_SRT_PORT: "0", LIVE_MAX_CONNECTIONS: "1" } });
    await standInLiveWorker(limited.app.services.db, 2);
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it("refuses a caller over the limit in SRT's handshake, before its stream id is looked at", async () => {
    const created: { srtUrl: string }[] = [];
    for (const title of ["Held", "Turned away"]) {
      const res = await limited.gql(
        `mutation ($title: String!) { createLiveStream(input: { title: $title }) { ... on LiveStreamWithKey { srtUrl } } }`,
        { title },
      );
      created.push(res.data.createLiveStream);
    }
    const url = (i: number) => created[i]!.srtUrl.replace("localhost", "127.0.0.1");
    // On air until the test ends (not a fixed 8 s): the second caller must meet the limit while the
    // first still holds the one connection, however long a loaded host takes to get this far.
    const held = publishUntilStopped(url(0), { srt: true });
    await waitFor(
      "the first caller's broadcast",
      async () => (await limited.gql(`{ liveStreams { status } }`)).data.liveStreams,
      (streams: { status: string }[]) => streams.some((s) => s.status === "CONNECTED"),
      30_000,
    );
    const turnedAway = spawn(
      "ffmpeg",
      [
        ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"],
        ...["-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", url(1)],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    turnedAway.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const exit = await Promise.race([
      new Promise((resolve) => turnedAway.on("exit", (code) => resolve(code))),
      new Promise((resolve) => setTimeout(() => resolve("still running"), 4000)),
    ]);
    turnedAway.kill("SIGKILL");
    held.process.kill("SIGKILL");
    expect(exit).toBe(1);
    expect(stderr).toMatch(/REJECT/);
  });
});
