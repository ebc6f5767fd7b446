import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WATCH_BOUNDS } from "../src/analytics/batch-buffer.ts";
import {
  liveBehindSeconds,
  liveBroadcasts,
  liveEncodeSpeed,
  liveIngestBytes,
  liveIngestClosed,
} from "../src/metrics.ts";
import { ANALYTICS_PATHS, BEACON_LIMITS } from "../src/shared/analytics-beacons.ts";
import type { TestApp } from "./support/app.ts";
import { TEST_ADMIN_KEY } from "./support/auth.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { expectTypename, type GraphqlAnswer, graphql, operationText, type ResultOf } from "./support/graphql.ts";
import {
  byProtocol,
  createLiveStreamWithKey,
  DVR_WINDOW_SECONDS,
  durationOf,
  expectRecording,
  startLiveTestApp,
  streamState,
  text,
} from "./support/live-api.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { playsInWatchPage } from "./support/live-viewers.ts";
import { waitFor } from "./support/wait-for.ts";

// A real publisher (ffmpeg pushing a lavfi source over RTMP to the API's ingest on loopback), the
// local worker encoding the broadcast, the watch page and the console's Live page in Chromium, and
// the HLS read back while live and after the end.

const STREAM_COSTS = graphql(`
  query ($from: DateTime!, $to: DateTime!) { costSummary(from: $from, to: $to) {
    egressBytes egressUsd liveStreams { liveStreamId broadcasts cpuSeconds actualUsd egressBytes egressUsd } } }`);
const STORYBOARD = graphql(
  `query ($id: ID!) { video(id: $id) { storyboard { vttUrl sheetUrls tileCount intervalSeconds } } }`,
);
const COSTS = graphql(
  `query ($from: DateTime!, $to: DateTime!) { costSummary(from: $from, to: $to) { actualUsd jobCount } }`,
);
const CREATE_CLIP = graphql(`
  mutation ($input: CreateClipInput!) {
    createClip(input: $input) { __typename ... on CreateClipSuccess { video { id source } } ... on Error { message } }
  }`);
const REQUEST_HIGHEST = graphql(
  `mutation ($id: ID!) { requestStaticRenditions(videoId: $id, names: [HIGHEST]) { __typename } }`,
);
const CLIP = graphql(`query ($id: ID!) { video(id: $id) { status duration clip { start end } } }`);
const STATIC_RENDITIONS = graphql(`query ($id: ID!) { video(id: $id) { staticRenditions { name status sizeBytes } } }`);
const RETRY_VARIANT = graphql(
  `mutation ($id: ID!) { retryVariant(id: $id) { __typename ... on ValidationError { message } } }`,
);
const CREATE_ENDPOINT = graphql(`mutation {
  createWebhookEndpoint(input: { url: "http://127.0.0.1:9/hooks",
    events: [LIVE_STREAM_CONNECTED, LIVE_STREAM_LIVE, LIVE_STREAM_DISCONNECTED, LIVE_STREAM_ENDED, VIDEO_READY] }) {
    __typename } }`);
const LIVE_EVENTS = graphql(`
  subscription ($id: ID!) { liveStreamEvents(id: $id) { status health { segments speed fps mediaSeconds inputBitrate
    inputKeyframeInterval inputFps renditions { name segments bitrate copied } } } }`);
const MORNING_VIDEOS = graphql(`
  { videos(filter: { tags: ["morning"], metadata: [{ key: "show", value: "am-7" }] }) {
    edges { node { id description tags } } } }`);
const SRT_INGEST_URLS = graphql(`{ liveStreams { srtIngestUrl } }`);

let t: TestApp;
let browser: Browser;

beforeAll(async () => {
  await buildConsole();
  browser = await launchChromium();
  // With its SRT ingest: the Live page shows the SRT address beside the RTMP one.
  t = await startLiveTestApp({ srt: true });
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});
// A test that failed midway leaves no publisher on air to the next (whose checks count processes
// and broadcasts).
afterEach(killPublishersOnAir);

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
    const res = await t.gql(STREAM_COSTS, range);
    expect(res.errors).toBeUndefined();
    const line = res.data.costSummary.liveStreams.find((l) => l.liveStreamId === streamId);
    return { summary: res.data.costSummary, line: line! };
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

/**
 * An ended broadcast's recording is a source like an upload: it has a storyboard (every tile inside
 * the recording), a clip can be cut from it (its own encode, the range's length, READY) and its
 * static renditions can be asked for.
 */
async function expectRecordingIsASource(videoId: string, duration: number): Promise<void> {
  const res = await t.gql(STORYBOARD, { id: videoId });
  expect(res.errors).toBeUndefined();
  const storyboard = res.data.video!.storyboard;
  expect(storyboard, "the recording's storyboard").not.toBeNull();
  expect(storyboard!.tileCount).toBe(Math.ceil(duration / storyboard!.intervalSeconds));
  const vtt = await text(new URL(storyboard!.vttUrl, t.url).toString());
  expect(vtt.split("\n").filter((line) => line.includes(" --> "))).toHaveLength(storyboard!.tileCount);
  const sheet = await fetch(new URL(storyboard!.sheetUrls[0]!, t.url));
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
  const summary = await t.gql(COSTS, {
    from: job.createdAt.toISOString(),
    to: new Date(Date.now() + 1000).toISOString(),
  });
  expect(summary.data.costSummary.actualUsd).toBeGreaterThanOrEqual(job.actualCostUsd!);

  const [start, end] = [2, 6];
  const clip = await t.gql(CREATE_CLIP, { input: { sourceVideoId: videoId, start, end } });
  expect(clip.errors).toBeUndefined();
  const created = clip.data.createClip;
  expect(created.__typename, "message" in created ? created.message : undefined).toBe("CreateClipSuccess");
  const renditions = await t.gql(REQUEST_HIGHEST, { id: videoId });
  expect(renditions.data.requestStaticRenditions.__typename).toBe("RequestStaticRenditionsSuccess");
  const clipId = expectTypename(created, "CreateClipSuccess").video.id;
  const clipped = await waitFor(
    "the clip of the recording",
    async () => (await t.gql(CLIP, { id: clipId })).data.video!,
    (v) => v.status === "READY" || v.status === "FAILED",
    60_000,
  );
  expect(clipped.status).toBe("READY");
  expect(clipped.clip).toEqual({ start, end });
  expect(Math.abs(clipped.duration! - (end - start))).toBeLessThan(0.1);
  const highest = await waitFor(
    "the recording's static rendition",
    async () => (await t.gql(STATIC_RENDITIONS, { id: videoId })).data.video!.staticRenditions,
    (r) => r.some((x: { status: string }) => x.status === "READY" || x.status === "FAILED"),
  );
  expect(highest).toEqual([expect.objectContaining({ name: "HIGHEST", status: "READY" })]);

  // Its rungs were cut live on one timeline: a failed one is not encoded again from the recording.
  const db = t.app.services.db;
  const variant = await db.variant.findFirstOrThrow({ where: { videoId, kind: "VIDEO" } });
  await db.variant.update({ where: { id: variant.id }, data: { status: "FAILED", error: "lost" } });
  const retried = await t.gql(RETRY_VARIANT, { id: variant.id });
  expect(retried.data.retryVariant).toEqual({
    __typename: "ValidationError",
    message: "A live recording's rendition cannot be encoded again",
  });
}

describe("a broadcast over RTMP, from its publisher to its recording", () => {
  // One broadcast, watched while on air and followed to its end by the beforeAll (a broadcast is
  // the expensive part: longer than the DVR window, a page played in Chromium); each test checks one
  // thing of it. What is checked while it is on air is run then and awaited by its test.
  let stream: Awaited<ReturnType<typeof createLiveStreamWithKey>>;
  let live: any;
  let found: GraphqlAnswer<ResultOf<typeof MORNING_VIDEOS>>;
  let feedStatuses: { unsigned: number; forged: number };
  let whileLive: string;
  let rungUrl: string;
  let windowChecked: Promise<void>;
  let watched: Promise<void>;
  /** What the watch page's `meanwhile` read while the page played. */
  const playedLive = { status: "", broadcasts: -1 };
  let seconds: number;
  let recorded: Promise<any>;
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
  let unsubscribe = () => {};

  beforeAll(async () => {
    // The CMS's data on the stream: each broadcast's video starts with it.
    stream = await createLiveStreamWithKey(t, "Morning show", {
      playbackPolicy: "PUBLIC",
      description: "Every weekday at seven",
      metadata: [{ key: "show", value: "am-7" }],
      tags: ["Morning", "news"],
    });
    // A CMS's endpoint for the stream's webhooks (its deliveries are read from the outbox below).
    const endpoint = await t.gql(CREATE_ENDPOINT);
    expect(endpoint.errors).toBeUndefined();
    const client = t.wsClient();
    unsubscribe = client.subscribe(
      {
        query: operationText(LIVE_EVENTS),
        variables: { id: stream.id },
      },
      {
        next: (msg) => {
          const event = (msg.data as ResultOf<typeof LIVE_EVENTS> | null | undefined)?.liveStreamEvents;
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
    live = await waitFor(
      "the broadcast to be playable",
      () => streamState(t, stream.id),
      // The stream turns LIVE once the encode's first segments are out (video.playable).
      (s) => s.status === "LIVE",
    );
    found = await t.gql(MORNING_VIDEOS);
    const master = await text(new URL(live.activeVideo.playbackUrl, t.url).toString());
    const rung = master.split("\n").find((line) => line.endsWith(".m3u8") && !line.startsWith("#"))!;
    rungUrl = new URL(rung, new URL(live.activeVideo.playbackUrl, t.url)).toString();
    const feed = `${t.url}/live/v1/feeds/${live.activeVideo.id}.flv`;
    feedStatuses = {
      unsigned: (await fetch(feed)).status,
      forged: (await fetch(`${feed}?expires=${Math.floor(Date.now() / 1000) + 60}&sig=forged`)).status,
    };
    whileLive = await text(rungUrl);
    // The window is watched from now on, beside the page: it slides once the broadcast is longer than it.
    windowChecked = expectLiveWindowAndInstantClip(live.activeVideo.id, live.activeVideo.playbackUrl, master);
    watched = playsInWatchPage(t, browser, live.activeVideo.id, publisher, async () => {
      playedLive.status = (await streamState(t, stream.id)).status;
      playedLive.broadcasts = await byProtocol(liveBroadcasts, "rtmp");
    });
    // Both awaited by their tests; the publisher stays on air until both are done.
    await Promise.allSettled([windowChecked, watched]);
    seconds = await publisher.stop();
    // From the publisher's first frame: the encode joined the feed after its worker had read the
    // opening (whether to copy the top rung), and still got the broadcast from its start.
    recorded = expectRecording(t, stream.id, publisher, seconds);
    await Promise.allSettled([recorded]);
  }, 180_000);
  afterAll(() => unsubscribe());

  it("is a video of source LIVE, playable while on air, that starts with the stream's CMS data", async () => {
    expect(live.activeVideo.playbackUrl).not.toBeNull();
    expect(live.activeVideo.source).toBe("LIVE");
    expect(found.data.videos.edges.map((e) => e.node)).toEqual([
      { id: live.activeVideo.id, description: "Every weekday at seven", tags: ["morning", "news"] },
    ]);
  });

  it("keeps its feed for its worker: refused without the URL the API signed into its job", () => {
    expect(feedStatuses.unsigned).toBe(403);
    expect(feedStatuses.forged).toBe(403);
  });

  it("publishes segments while live, its playlist still open", () => {
    expect(whileLive).toContain("#EXTINF:");
    expect(whileLive).not.toContain("#EXT-X-ENDLIST");
  });

  it("slides its DVR window and clips instantly while live", async () => {
    await windowChecked;
  });

  it("plays live in the watch page (hls.js in Chromium), with blocking reloads and a live latency report", async () => {
    await watched;
    expect(playedLive.status).toBe("LIVE");
    expect(playedLive.broadcasts).toBe(1);
  });

  it("becomes a READY recording of all the publisher sent, with a poster", async () => {
    expect(seconds).toBeGreaterThan(DVR_WINDOW_SECONDS);
    const ended = await recorded;
    expect(ended.activeVideo.posterUrl).not.toBeNull();
  });

  it("copies the publisher's own H.264, and its master states what the recording's segments carry", async () => {
    const ended = await recorded;
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
  });

  it("reports its states to liveStreamEvents", async () => {
    await waitFor(
      "the last state event",
      async () => statuses,
      (s) => s.at(-1) === "ENDED",
      5000,
    );
    expect(statuses[0]).toBe("IDLE");
    expect(statuses).toEqual(expect.arrayContaining(["CONNECTED", "LIVE", "DISCONNECTED", "ENDED"]));
    expect(statuses.indexOf("LIVE")).toBeLessThan(statuses.indexOf("DISCONNECTED"));
  });

  it("sends its stream's webhooks, and the recording's video.ready with its length", async () => {
    const ended = await recorded;
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
  });

  it("is counted in the operators' metrics: bytes in, on air while live and not now, its end, its encode's speed and lag", async () => {
    expect(await byProtocol(liveIngestBytes, "rtmp")).toBeGreaterThan(100_000);
    expect(await byProtocol(liveBroadcasts, "rtmp")).toBe(0);
    expect(await byProtocol(liveIngestClosed, "rtmp", { outcome: "ended" })).toBeGreaterThanOrEqual(1);
    // The encode's speed and lag, one sample per progress report, as the health events said.
    const samples = async (h: typeof liveEncodeSpeed) =>
      (await h.get()).values.find((v) => v.metricName?.endsWith("_count"))?.value ?? 0;
    expect(await samples(liveEncodeSpeed)).toBeGreaterThan(3);
    expect(await samples(liveBehindSeconds)).toBeGreaterThan(3);
  });

  it("reports its health: each rendition's segments and bit rate, and the publisher's own keyframe interval and frame rate", () => {
    expect(health).not.toBeNull();
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
  });

  it("leaves a recording that is a source like an upload: storyboard, measured cost, clips, static renditions", async () => {
    const ended = await recorded;
    await expectRecordingIsASource(ended.activeVideo.id, ended.activeVideo.duration);
  });

  it("counts its viewers' egress in its stream's cost, within the watch-time bound", async () => {
    const ended = await recorded;
    await expectViewerEgress(stream.id, ended.activeVideo.id);
  });
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
    const srtAddress = (await t.gql(SRT_INGEST_URLS)).data.liveStreams[0]!.srtIngestUrl;
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
