import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { launchChromium } from "./support/console.ts";
import { expectTypename, graphql, type ResultOf } from "./support/graphql.ts";
import { startWorkerProcess, stopAllProcesses } from "./support/processes.ts";
import { createUpload, finalState } from "./support/uploads.ts";
import { fixturesDir, makeClip, runFfmpeg } from "./support/media-fixtures.ts";
import {
  averageBitRate,
  largestGap,
  mtimes,
  packetTimes,
  peakSegmentBitRate,
  type Segment,
} from "./support/media-checks.ts";

const run = promisify(execFile);
const HLS_JS = fileURLToPath(import.meta.resolve("hls.js/dist/hls.min.js"));

const EVENTS = graphql(`
  subscription($id: ID!) {
    videoEvents(videoId: $id) {
      __typename
      video { status playable }
      ... on VariantProgressEvent { variant { name progress segmentCount } }
    } }`);
const VIDEO = graphql(`
  query($id: ID!) {
    video(id: $id) {
      status error playable mediaType duration width height hasAudio posterUrl playbackUrl
      variants { id name kind width height bandwidth bitrate codecs status segmentCount playlistUrl }
      jobs(first: 5) { edges { node { status attempt rungs } } }
    } }`);
const RETRY_VARIANT = graphql(`
  mutation($id: ID!) { retryVariant(id: $id) { __typename ... on RetryVariantSuccess {
    job { rungs cost { estimateBasis estimatedCpuSeconds } } } } }`);

/** An audio file made by lavfi: `sine` or pink `anoisesrc`, encoded as given; once per test process. */
const made = new Map<string, Promise<string>>();
function makeAudio(name: string, args: string[]): Promise<string> {
  let file = made.get(name);
  if (!file) {
    const target = path.join(fixturesDir(), name);
    file = runFfmpeg([...args, target]).then(() => target);
    made.set(name, file);
  }
  return file;
}
/** 10 s of stereo MP3 at 192 kb/s: a podcast episode, in small. */
const stereoMp3 = () =>
  makeAudio("podcast-stereo-10s.mp3", [
    "-f",
    "lavfi",
    "-i",
    "anoisesrc=d=10:a=0.2:c=pink",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=44100:duration=10",
    "-filter_complex",
    "[0][1]amerge=inputs=2",
    "-c:a",
    "libmp3lame",
    "-b:a",
    "192k",
  ]);
/** 6 s of mono AAC at 48 kb/s: below the mono ladder's 64k rung. */
const monoAac = () =>
  makeAudio("voice-mono-48k-6s.m4a", [
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=300:sample_rate=48000:duration=6",
    "-c:a",
    "aac",
    "-b:a",
    "48k",
  ]);

/** 60 s of stereo MP3: long enough to kill a worker mid-encode. */
const longMp3 = () =>
  makeAudio("podcast-stereo-60s.mp3", [
    "-f",
    "lavfi",
    "-i",
    "anoisesrc=d=60:a=0.2:c=pink",
    "-ac",
    "2",
    "-c:a",
    "libmp3lame",
    "-b:a",
    "192k",
  ]);

/** Every segment of a rung playlist decodes, and its packets make one timeline without gaps. */
async function expectPlaysThrough(playlistFile: string, seconds: number): Promise<void> {
  const { stderr } = await run("ffmpeg", ["-v", "error", "-i", playlistFile, "-f", "null", "-"]);
  expect(stderr, playlistFile).toBe("");
  const times = await packetTimes(playlistFile);
  expect(largestGap(times), `${playlistFile}: no gap in the timeline`).toBeLessThan(0.05);
  expect(Math.abs(times.at(-1)! - times[0]! - seconds), `${playlistFile}: as long as the source`).toBeLessThan(0.2);
}

async function ffprobeJson(file: string, entries: string): Promise<any> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", entries, "-of", "json", file]);
  return JSON.parse(stdout);
}

function parse(text: string): any {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest;
}

/** Uploads a file and collects its `videoEvents` until the end state. */
async function uploadWithEvents(t: TestApp, file: string, title: string) {
  const { id, uploadUrl } = await createUpload(t, title);
  const events = collectSubscription(t.wsClient(), EVENTS, { id });
  const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(file) });
  expect(res.status).toBe(200);
  return { id, events: await events.done };
}

/** A page that plays `?src=` with hls.js in an <audio> element and records hls.js's errors. */
const PAGE = `<!doctype html><audio autoplay></audio><script src="/hls.js"></script><script>
window.hlsEvents = [];
const audio = document.querySelector("audio");
const hls = new Hls({ debug: false });
hls.on(Hls.Events.ERROR, (_, data) => window.hlsEvents.push({ details: data.details, fatal: data.fatal }));
hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => { window.levels = data.levels.map((l) => l.bitrate); });
hls.loadSource(new URLSearchParams(location.search).get("src"));
hls.attachMedia(audio);
audio.play().catch(() => {});
</script>`;

async function servePlayer(): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    if (req.url?.startsWith("/hls.js")) return res.writeHead(200).end(await readFile(HLS_JS));
    res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

/**
 * One app for the file. JOB_STALL_SECONDS: the resume test's killed run is found stalled after 10 s;
 * the other tests' workers heartbeat every 2 s.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { JOB_STALL_SECONDS: "10" } });
});
afterAll(async () => {
  await stopAllProcesses();
  await t?.stop();
});

describe("audio-only sources become an audio-only HLS ladder (public API, real worker)", () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  let stereo: { id: string; video: NonNullable<ResultOf<typeof VIDEO>["video"]> };

  it(`a stereo MP3 ends READY with 128k and 64k AAC rungs, a master of audio-only variants, no poster, progress \
per variant, and playable before READY`, async () => {
    const { id, events } = await uploadWithEvents(t, await stereoMp3(), "podcast");
    expect(events.at(-1)!.videoEvents.video).toEqual({ status: "READY", playable: true });
    // Playable comes while the video is still PROCESSING: the first 1 s segment of each rung was enough.
    expect(events.some((e) => e.videoEvents.video.playable && e.videoEvents.video.status === "PROCESSING")).toBe(true);
    // Progress per rung, each rising to the end.
    for (const name of ["audio128k", "audio64k"]) {
      const progress = events
        .map((e) => e.videoEvents)
        .filter((e) => e.__typename === "VariantProgressEvent")
        .filter((e) => e.variant.name === name)
        .map((e) => e.variant.progress);
      expect(progress.length, name).toBeGreaterThan(0);
      expect(progress, name).toEqual([...progress].sort((a, b) => a - b));
    }

    const video = (await t.gql(VIDEO, { id })).data.video!;
    stereo = { id, video };
    expect(video).toMatchObject({
      status: "READY",
      error: null,
      playable: true,
      mediaType: "AUDIO",
      width: null,
      height: null,
      hasAudio: true,
      posterUrl: null,
    });
    expect(video.duration).toBeCloseTo(10, 0);
    expect(video.variants.map((v) => [v.name, v.kind, v.width, v.height, v.bitrate, v.codecs, v.status])).toEqual([
      ["audio128k", "AUDIO", null, null, 128_000, "mp4a.40.2", "READY"],
      ["audio64k", "AUDIO", null, null, 64_000, "mp4a.40.2", "READY"],
    ]);
    expect(video.jobs.edges.map((e) => e.node)).toEqual([{ status: "SUCCEEDED", attempt: 1, rungs: [] }]);

    const masterText = await (await fetch(`${t.url}${video.playbackUrl}`)).text();
    expect(masterText).not.toContain("RESOLUTION");
    expect(masterText).not.toContain("EXT-X-MEDIA");
    const master = parse(masterText);
    expect(master.playlists.map((p: any) => [p.uri, p.attributes.CODECS, p.attributes.RESOLUTION])).toEqual([
      ["audio128k/index.m3u8", "mp4a.40.2", undefined],
      ["audio64k/index.m3u8", "mp4a.40.2", undefined],
    ]);

    for (const variant of video.variants) {
      const playlistUrl = `${t.url}${variant.playlistUrl}`;
      const playlist = parse(await (await fetch(playlistUrl)).text());
      expect(playlist.endList, variant.name).toBe(true);
      expect(playlist.segments).toHaveLength(variant.segmentCount);
      // A short first segment (cut at 1 s, less the AAC encoder's priming), then 2 s ones.
      expect(playlist.segments[0].duration, variant.name).toBeCloseTo(1, 1);
      expect(playlist.segments[1].duration, variant.name).toBeCloseTo(2, 1);
      const listed = playlist.segments.reduce((sum: number, s: any) => sum + s.duration, 0);
      expect(listed, variant.name).toBeCloseTo(10, 0);
      let bytes = 0;
      const sized: Segment[] = [];
      for (const [i, segment] of playlist.segments.entries()) {
        const file = path.join(t.dataDir, `${stereo.id}-${variant.name}-${i}.ts`);
        const body = Buffer.from(await (await fetch(new URL(segment.uri, playlistUrl))).arrayBuffer());
        await writeFile(file, body);
        bytes += body.length;
        sized.push({ bytes: body.length, seconds: segment.duration });
        // BANDWIDTH is the peak: no segment's rate is above it.
        expect((body.length * 8) / segment.duration, `${variant.name}/${segment.uri}`).toBeLessThanOrEqual(
          variant.bandwidth,
        );
        const { streams } = await ffprobeJson(file, "stream=codec_type,codec_name,profile,channels,sample_rate");
        expect(streams, `${variant.name}/${segment.uri}`).toEqual([
          { codec_type: "audio", codec_name: "aac", profile: "LC", channels: 2, sample_rate: "48000" },
        ]);
      }
      // The ready master states what the rung's segments carry: its peak (RFC 8216) and average.
      const stated = master.playlists.find((p: any) => p.uri === `${variant.name}/index.m3u8`).attributes;
      expect(stated.BANDWIDTH, variant.name).toBe(Math.ceil(peakSegmentBitRate(sized, playlist.targetDuration)));
      // m3u8-parser keeps an attribute it does not know as the text it read.
      expect(Number(stated["AVERAGE-BANDWIDTH"]), variant.name).toBe(Math.ceil(averageBitRate(sized)));
      expect(stated.BANDWIDTH, variant.name).toBeLessThanOrEqual(variant.bandwidth);
      // The rung's rate as encoded: its AAC target, plus the MPEG-TS packaging.
      const bitsPerSecond = (bytes * 8) / listed;
      expect(bitsPerSecond, variant.name).toBeGreaterThan(variant.bitrate!);
      expect(bitsPerSecond, variant.name).toBeLessThan(variant.bitrate! * 1.4);
    }
  }, 120_000);

  it("plays in Chromium with hls.js: an <audio> element's time advances, both rungs offered", async () => {
    expect(stereo, "the stereo upload above").toBeDefined();
    browser = await launchChromium();
    const { url, server } = await servePlayer();
    const page = await browser.newPage();
    try {
      await page.goto(`${url}?src=${encodeURIComponent(`${t.url}${stereo.video.playbackUrl}`)}`);
      await page
        .waitForFunction(() => (document.querySelector("audio")?.currentTime ?? 0) >= 2, undefined, {
          timeout: 20_000,
        })
        .catch(() => {});
      const played = await page.evaluate(() => ({
        currentTime: document.querySelector("audio")!.currentTime,
        levels: (window as any).levels as number[],
        events: (window as any).hlsEvents as { details: string; fatal: boolean }[],
      }));
      expect(played.events.filter((e) => e.fatal)).toEqual([]);
      expect(played.currentTime).toBeGreaterThanOrEqual(2);
      // hls.js lists its levels from the lowest, each at the BANDWIDTH the ready master states.
      const master = parse(await (await fetch(`${t.url}${stereo.video.playbackUrl}`)).text());
      const stated = master.playlists.map((p: any) => [p.uri.split("/")[0], p.attributes.BANDWIDTH]);
      expect(stated.map(([name]: [string]) => name)).toEqual(stereo.video.variants.map((v) => v.name));
      expect(played.levels).toEqual(stated.map(([, bandwidth]: [string, number]) => bandwidth).reverse());
    } finally {
      await page.close();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 60_000);

  it("mono stays mono, and no rung is above what a 48 kb/s source justifies", async () => {
    const { id, events } = await uploadWithEvents(t, await monoAac(), "voice memo");
    expect(events.at(-1)!.videoEvents.video).toEqual({ status: "READY", playable: true });
    const video = (await t.gql(VIDEO, { id })).data.video!;
    expect(video).toMatchObject({ mediaType: "AUDIO", width: null, posterUrl: null });
    // The mono ladder is 64k and 32k; 64k is above the source's 48k.
    expect(video.variants.map((v) => [v.name, v.bitrate, v.status])).toEqual([["audio32k", 32_000, "READY"]]);
    const playlistUrl = `${t.url}${video.variants[0]!.playlistUrl}`;
    const playlist = parse(await (await fetch(playlistUrl)).text());
    const file = path.join(t.dataDir, `${id}-mono.ts`);
    await writeFile(
      file,
      Buffer.from(await (await fetch(new URL(playlist.segments[1].uri, playlistUrl))).arrayBuffer()),
    );
    const { streams } = await ffprobeJson(file, "stream=codec_name,channels");
    expect(streams).toEqual([{ codec_name: "aac", channels: 1 }]);
  }, 60_000);

  it("a video source is still a VIDEO with its video rungs and one audio rung", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: true });
    const { id, events } = await uploadWithEvents(t, clip, "a video");
    expect(events.at(-1)!.videoEvents.video.status).toBe("READY");
    const video = (await t.gql(VIDEO, { id })).data.video!;
    expect(video).toMatchObject({ mediaType: "VIDEO", width: 320, height: 180 });
    expect(video.posterUrl).not.toBeNull();
    expect(video.variants.map((v) => [v.name, v.bitrate])).toEqual([
      ["180p", null],
      ["144p", null],
      ["audio", null],
    ]);
  }, 60_000);

  it(`a rung storage refuses fails alone; retryVariant re-encodes it alone, the other rung untouched, and the \
master lists both again`, async () => {
    const { id, uploadUrl } = await createUpload(t, "retry an audio rung");
    const hlsDir = path.join(t.dataDir, "videos", id, "hls");
    // A file where the audio64k directory belongs: storage cannot write any of its objects.
    await mkdir(hlsDir, { recursive: true });
    await writeFile(path.join(hlsDir, "audio64k"), "in the way");
    const first = finalState(t, id);
    expect(
      (await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(await stereoMp3()) })).status,
    ).toBe(200);
    expect((await first).status).toBe("READY");
    const before = (await t.gql(VIDEO, { id })).data.video!;
    const failed = before.variants.find((v) => v.name === "audio64k")!;
    expect(failed).toMatchObject({ status: "FAILED" });
    const masterUris = async () =>
      parse(await readFile(path.join(hlsDir, "master.m3u8"), "utf8")).playlists.map((p: any) => p.uri);
    expect(await masterUris()).toEqual(["audio128k/index.m3u8"]);

    await rm(path.join(hlsDir, "audio64k"));
    const untouched = await mtimes(path.join(hlsDir, "audio128k"));
    const retried = await t.gql(RETRY_VARIANT, { id: failed.id });
    // The retry's estimate comes from the probe (an audio source, no frames to decode), not from the upload's size.
    expect(retried.data.retryVariant).toMatchObject({
      __typename: "RetryVariantSuccess",
      job: { rungs: ["audio64k"], cost: { estimateBasis: "PROBE" } },
    });
    expect(expectTypename(retried.data.retryVariant, "RetryVariantSuccess").job.cost!.estimatedCpuSeconds).toBeLessThan(
      10,
    );
    expect((await finalState(t, id)).status).toBe("READY");

    const after = (await t.gql(VIDEO, { id })).data.video!;
    expect(after.variants.map((v) => [v.name, v.status])).toEqual([
      ["audio128k", "READY"],
      ["audio64k", "READY"],
    ]);
    expect(after.posterUrl).toBeNull();
    expect(await mtimes(path.join(hlsDir, "audio128k"))).toEqual(untouched);
    expect(await masterUris()).toEqual(["audio128k/index.m3u8", "audio64k/index.m3u8"]);
    await expectPlaysThrough(path.join(hlsDir, "audio64k", "index.m3u8"), 10);
  }, 120_000);
});

describe("an audio-only transcode whose worker died resumes from what was published (public API, real workers)", () => {
  const RESULT = graphql(`query($id: ID!) {
    video(id: $id) {
      status mediaType
      variants { name status segmentCount progress }
      jobs(first: 1) { edges { node { status runs { workerId status resumedSegments resumedFromSeconds } } } }
    } }`);
  const workerEnv = () => ({
    DATABASE_URL: t.database.url,
    DATA_DIR: t.dataDir,
    PROGRESS_INTERVAL_MS: "250",
    HEARTBEAT_INTERVAL_SECONDS: "2",
  });
  beforeAll(async () => {
    // The app's own worker stops: the two this test starts, one after the other, are the only ones.
    await t.worker!.stop();
  });

  it("kill -9 mid-encode: the next run keeps the published segments, encodes the rest, and both rungs play through", async () => {
    const seconds = 60;
    const file = await longMp3();
    const first = await startWorkerProcess("audio-worker-first", workerEnv());
    const { id, uploadUrl } = await createUpload(t, "resumed podcast");
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(file) })).status).toBe(200);

    const hlsDir = path.join(t.dataDir, "videos", id, "hls");
    const rungs = ["audio128k", "audio64k"];
    const published = async () => {
      const counts: number[] = [];
      for (const rung of rungs) {
        const playlist = path.join(hlsDir, rung, "index.m3u8");
        counts.push(existsSync(playlist) ? parse(await readFile(playlist, "utf8").catch(() => "")).segments.length : 0);
      }
      return Math.min(...counts);
    };
    await expect.poll(published, { timeout: 60_000, interval: 20 }).toBeGreaterThanOrEqual(3);
    await first.stop("SIGKILL");
    const keptCount = await published();
    // A 1 s first segment, then 2 s ones.
    const segmentCount = Math.ceil((seconds - 1) / 2) + 1;
    expect(keptCount, "the kill came before the end").toBeLessThan(segmentCount);
    const kept = new Map<string, number>();
    for (const rung of rungs) {
      for (let i = 0; i < keptCount; i++) {
        const segment = `${rung}/seg_${String(i).padStart(5, "0")}.ts`;
        kept.set(segment, (await stat(path.join(hlsDir, segment))).mtimeMs);
      }
    }

    await startWorkerProcess("audio-worker-second", workerEnv());
    expect((await final).status).toBe("READY");
    const video = (await t.gql(RESULT, { id })).data.video!;
    expect(video.mediaType).toBe("AUDIO");
    const job = video.jobs.edges[0]!.node;
    expect(job.runs.map((r) => [r.workerId, r.status])).toEqual([
      ["audio-worker-first", "ABANDONED"],
      ["audio-worker-second", "SUCCEEDED"],
    ]);
    const resumed = job.runs[1]!;
    expect(resumed.resumedSegments).toBeGreaterThanOrEqual(keptCount);
    expect(resumed.resumedFromSeconds).toBe(1 + (resumed.resumedSegments! - 1) * 2);
    for (const [segment, mtime] of kept) {
      expect((await stat(path.join(hlsDir, segment))).mtimeMs, `${segment} kept as the first worker wrote it`).toBe(
        mtime,
      );
    }
    for (const variant of video.variants) {
      expect(variant).toMatchObject({ status: "READY", progress: 1, segmentCount });
      await expectPlaysThrough(path.join(hlsDir, variant.name, "index.m3u8"), seconds);
    }
  }, 180_000);
});
