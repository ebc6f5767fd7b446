import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  encodeLiveLadder,
  liveFeedInput,
  passthroughRung,
  planLiveLadder,
} from "../../render-worker/media/live-ladder.ts";
import { type LiveVideoSample, sampleLiveVideo } from "../../render-worker/media/probe.ts";
import { MEDIA_TIME_ZERO_90KHZ } from "../../src/protocol/media-timeline.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { LiveFeed } from "../../src/live/feed.ts";
import { flvReader } from "../../src/live/flv.ts";
import { feedPacketOf } from "../../src/live/publisher.ts";
import { LIVE_FEED_FROM_HEADER } from "../../src/protocol/live-messages.ts";
import { runFfmpeg } from "../support/media-fixtures.ts";

/** An FLV file served over HTTP as the API serves a broadcast's feed: a worker's encode reads it. */
async function serveFeed(flv: string): Promise<{ server: Server; feedUrl: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "video/x-flv" });
    createReadStream(flv).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, feedUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/feed.flv` };
}

/** The MD5 of each decoded picture of a video file or playlist (`cwd`: where its segments are). */
async function pictures(file: string, cwd: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(
    "ffmpeg",
    ["-v", "error", "-i", file, "-map", "0:v:0", "-f", "framemd5", "-"],
    {
      cwd,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return stdout
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => line.split(",").at(-1)!.trim());
}

describe("a live broadcast's ladder", () => {
  it("is the three highest of 2160p to 360p the input allows, and the audio", () => {
    const names = (width: number, height: number, hasAudio = true) =>
      planLiveLadder({ width, height, fps: 30, hasAudio }, 2).map((r) => r.name);
    expect(names(1280, 720)).toEqual(["720p", "480p", "360p", "audio"]);
    expect(names(1920, 1080)).toEqual(["1080p", "720p", "480p", "audio"]);
    expect(names(3840, 2160, false)).toEqual(["2160p", "1440p", "1080p"]);
    // Below 360p the input keeps its own rung, never above it.
    expect(names(320, 240)).toEqual(["240p", "audio"]);
    expect(names(720, 1280)).toEqual(["720p", "480p", "360p", "audio"]);
  });
});

describe("the top rung copied from the publisher (passthrough)", () => {
  const input = { width: 1280, height: 720, fps: 30, hasAudio: true };
  const ladder = planLiveLadder(input, 2);
  /** A sample of `seconds` of video with a keyframe at each of `keyframes` and `bitsPerSecond` of it. */
  const sample = (keyframes: number[], over: Partial<LiveVideoSample> = {}, bitsPerSecond = 2_000_000) => {
    const end = keyframes.at(-1)! + 0.5;
    const packets = Array.from({ length: Math.round(end * 30) }, (_, i) => {
      const time = i / 30;
      return { time, bytes: bitsPerSecond / 8 / 30, keyframe: keyframes.some((k) => Math.abs(k - time) < 1e-6) };
    });
    return { profile: "High", level: 31, pixFmt: "yuv420p", packets, ...over };
  };

  it("is taken when the publisher's picture, profile, bit rate and keyframes fit: its own codecs and a bandwidth over its peak", () => {
    const copy = passthroughRung(ladder, input, sample([0, 2, 4]), 2);
    expect(copy).toMatchObject({ name: "720p", width: 1280, height: 720, codecs: "avc1.64001f", h264Level: 31 });
    expect(copy!.bandwidth).toBeGreaterThanOrEqual(ladder[0]!.bandwidth);
    // A keyframe every second divides 2 s segments; Main profile at level 4.0.
    expect(passthroughRung(ladder, input, sample([0, 1, 2], { profile: "Main", level: 40 }), 2)?.codecs).toBe(
      "avc1.4d4028",
    );
    // A publisher at 7 Mbit/s: its peak (with margin) is declared, above the rung's plan.
    const busy = passthroughRung(ladder, input, sample([0, 2, 4], {}, 7_000_000), 2)!;
    expect(busy.bandwidth).toBeGreaterThan(7_000_000 * 1.5);
  });

  it("is refused for another size, a profile players may not take, a long or uneven group of pictures, or a bit rate far over the rung's", () => {
    expect(passthroughRung(ladder, { ...input, width: 1276 }, sample([0, 2, 4]), 2)).toBeNull();
    expect(passthroughRung(ladder, input, sample([0, 2, 4], { profile: "High 10" }), 2)).toBeNull();
    expect(passthroughRung(ladder, input, sample([0, 2, 4], { pixFmt: "yuv422p" }), 2)).toBeNull();
    // Keyframes 2.5 s apart do not fall on 2 s boundaries; 1.5 s apart neither.
    expect(passthroughRung(ladder, input, sample([0, 2.5, 5]), 2)).toBeNull();
    expect(passthroughRung(ladder, input, sample([0, 1.5, 3]), 2)).toBeNull();
    // One keyframe says nothing of the interval; 2 s keyframes in 1 s segments would make 2 s segments.
    expect(passthroughRung(ladder, input, sample([0]), 2)).toBeNull();
    expect(passthroughRung(ladder, input, sample([0, 2, 4]), 1)).toBeNull();
    expect(passthroughRung(ladder, input, sample([0, 2, 4], {}, 20_000_000), 2)).toBeNull();
  });

  describe("encoded from a feed over HTTP", () => {
    let dir: string;
    let server: Server;
    let feedUrl: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "live-passthrough-"));
      const flv = path.join(dir, "feed.flv");
      // A publisher's stream: 854x480 (the 480p rung's size), a keyframe every second.
      await runFfmpeg([
        ...["-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25:duration=4"],
        ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4"],
        ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"],
        ...["-c:a", "aac", "-b:a", "64k", "-f", "flv", flv],
      ]);
      ({ server, feedUrl } = await serveFeed(flv));
    });
    afterAll(async () => {
      server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("copies the publisher's pictures unchanged and cuts every rung at the same keyframes", async () => {
      const feedInput = { width: 854, height: 480, fps: 25, hasAudio: true };
      const planned = planLiveLadder(feedInput, 1);
      expect(planned.map((r) => r.name)).toEqual(["480p", "360p", "audio"]);
      const copy = passthroughRung(planned, feedInput, await sampleLiveVideo(liveFeedInput(feedUrl), 1.2), 1);
      expect(copy?.codecs).toMatch(/^avc1\.42c0[0-9a-f]{2}$/);
      const workDir = path.join(dir, "work");
      const encode = encodeLiveLadder({
        feedUrl,
        ladder: planned.map((r) => (r.name === copy!.name ? copy! : r)),
        input: feedInput,
        workDir,
        segmentSeconds: 1,
        maxDurationSeconds: 60,
        copiedRung: "480p",
        signal: new AbortController().signal,
      });
      await encode.done;
      const durations = async (rung: string) =>
        (await readFile(path.join(workDir, rung, RUNG_PLAYLIST), "utf8"))
          .split("\n")
          .filter((line) => line.startsWith("#EXTINF:"))
          .map((line) => Number(line.slice(8).split(",")[0]).toFixed(2));
      const copied = await durations("480p");
      // A segment a second (the first also holds the FLV's first 21 ms), within the target duration.
      expect(copied).toHaveLength(4);
      for (const seconds of copied) expect(Math.abs(Number(seconds) - 1)).toBeLessThan(0.05);
      // Every rung is cut at the same frames: each segment after the first starts at the same time in
      // both (the first differs by the encoder's start, a frame at most, before any cut).
      const starts = async (rung: string) => {
        const times: string[] = [];
        for (let i = 0; i < copied.length; i++) {
          const { stdout } = await promisify(execFile)("ffprobe", [
            ...["-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"],
            ...["-show_entries", "packet=pts_time", "-of", "csv=p=0"],
            path.join(workDir, rung, `seg_${String(i).padStart(5, "0")}.ts`),
          ]);
          times.push(Number(stdout.trim()).toFixed(3));
        }
        return times;
      };
      const copiedStarts = await starts("480p");
      expect((await starts("360p")).slice(1)).toEqual(copiedStarts.slice(1));
      expect((await durations("360p")).slice(1)).toEqual(copied.slice(1));
      // Decoded, the copied rung is the publisher's pictures exactly (an encode is never bit-exact).
      const published = await pictures(RUNG_PLAYLIST, path.join(workDir, "480p"));
      expect(published).toHaveLength(100);
      expect(published).toEqual(await pictures(path.join(dir, "feed.flv"), dir));
    });
  });
});

/**
 * A broadcast's feed as the API serves it (src/live/feed.ts, the real one): the publisher's FLV
 * `flv` pushed into it, its encode's published point reported (`publishedSeconds`), then its end;
 * each GET reads what it kept, from where the reader asks (`LIVE_FEED_FROM_HEADER`).
 */
async function serveLiveFeed(flv: string, publishedSeconds: number): Promise<{ server: Server; feedUrl: string }> {
  const feed = new LiveFeed();
  const read = flvReader(
    64 * 1024 * 1024,
    (packet) => {
      const item = feedPacketOf(packet);
      if (item) feed.push(item);
    },
    (error) => error,
  );
  expect(read(await readFile(flv))).toBeNull();
  feed.published(publishedSeconds);
  feed.end();
  const server = createServer((req, res) => {
    const from = req.headers[LIVE_FEED_FROM_HEADER];
    feed.attach(res, typeof from === "string" ? Number(from) : null);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, feedUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/feed.flv` };
}

describe("a run taking a broadcast over (issue #66)", () => {
  let dir: string;
  let server: Server;
  let feedUrl: string;
  const feedInput = { width: 854, height: 480, fps: 25, hasAudio: true };
  /** Where media time 0 sits in a segment's timestamps (the timeline's lead and the MPEG-TS muxer's delay). */
  const zero = MEDIA_TIME_ZERO_90KHZ.TS / 90_000;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "live-continued-"));
    // The publisher's 6 s at 25 fps, a keyframe every 2 s, in the feed; its encode reported 2.5 s
    // published, so the feed holds the media from the keyframe at 2 s for a run taking it over.
    await runFfmpeg([
      ...["-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25:duration=6"],
      ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p"],
      ...["-c:a", "aac", "-b:a", "64k", "-f", "flv", path.join(dir, "broadcast.flv")],
    ]);
    ({ server, feedUrl } = await serveLiveFeed(path.join(dir, "broadcast.flv"), 2.5));
  });
  afterAll(async () => {
    server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  /** Encodes the feed as a run that goes on after `kept` seconds per rung; the rungs' pictures, seconds and first timestamps. */
  async function continueFrom(
    name: string,
    kept: Record<string, number>,
    segmentSeconds: number,
    copy: boolean,
    maxDurationSeconds = 60,
  ) {
    const planned = planLiveLadder(feedInput, segmentSeconds);
    const copied = copy
      ? passthroughRung(
          planned,
          feedInput,
          await sampleLiveVideo(liveFeedInput(feedUrl), segmentSeconds + 0.2),
          segmentSeconds,
        )
      : null;
    if (copy) expect(copied?.name).toBe("480p");
    const workDir = path.join(dir, name);
    const encode = encodeLiveLadder({
      feedUrl,
      ladder: planned.map((r) => (r.name === copied?.name ? copied : r)),
      input: feedInput,
      workDir,
      segmentSeconds,
      maxDurationSeconds,
      copiedRung: copied?.name ?? null,
      continues: new Map(
        Object.entries(kept).map(([rung, keptSeconds]) => [rung, { firstSegment: 7, keptSeconds }] as const),
      ),
      signal: new AbortController().signal,
    });
    await encode.done;
    const rung = async (rungName: string) => {
      const list = await readFile(path.join(workDir, rungName, RUNG_PLAYLIST), "utf8");
      const { stdout } = await promisify(execFile)("ffprobe", [
        ...["-v", "error", "-read_intervals", "%+#1", "-show_entries", "packet=pts_time", "-of", "csv=p=0"],
        path.join(workDir, rungName, "seg_00007.ts"),
      ]);
      return {
        seconds: list
          .split("\n")
          .filter((line) => line.startsWith("#EXTINF:"))
          .reduce((sum, line) => sum + Number(line.slice(8).split(",")[0]), 0),
        firstPts: Number(stdout.split(",")[0]),
      };
    };
    return { workDir, rung };
  }

  it("starts every encoded rung and the audio at the first frame it has not published, on the published timeline", async () => {
    const { workDir, rung } = await continueFrom("encoded", { "480p": 3, "360p": 4, audio: 3 }, 1, false);
    // The feed starts at 2 s; the 480p rung published 3 s of the 6, the 360p rung 4 s: each goes on
    // with the rest and nothing before it (before, each re-encoded from 2 s: 100 pictures, 4 s of audio).
    expect(await pictures(RUNG_PLAYLIST, path.join(workDir, "480p"))).toHaveLength(75);
    expect(await pictures(RUNG_PLAYLIST, path.join(workDir, "360p"))).toHaveLength(50);
    expect(Math.abs((await rung("audio")).seconds - 3)).toBeLessThan(0.05);
    // Its timestamps go on where the published media ends (the timeline's lead and the muxer's delay on top).
    expect(Math.abs((await rung("480p")).firstPts - (zero + 3))).toBeLessThan(0.01);
    expect(Math.abs((await rung("360p")).firstPts - (zero + 4))).toBeLessThan(0.01);
  });

  it("starts the copied rung at the publisher's keyframe where it ended: the pictures after it, exactly", async () => {
    const { workDir, rung } = await continueFrom("copied", { "480p": 4, "360p": 4, audio: 4 }, 2, true);
    const published = await pictures(RUNG_PLAYLIST, path.join(workDir, "480p"));
    expect(published).toEqual((await pictures(path.join(dir, "broadcast.flv"), dir)).slice(100));
    expect(await pictures(RUNG_PLAYLIST, path.join(workDir, "360p"))).toHaveLength(50);
    expect(Math.abs((await rung("audio")).seconds - 2)).toBeLessThan(0.05);
    // Every rung goes on at the same time.
    for (const name of ["480p", "360p"]) expect(Math.abs((await rung(name)).firstPts - (zero + 4))).toBeLessThan(0.01);
  });

  it("stops every rung at the broadcast's longest length, what earlier runs published counted", async () => {
    const { workDir, rung } = await continueFrom("longest", { "480p": 4, "360p": 4, audio: 4 }, 2, true, 5);
    // The copied rung stops at the first packet whose decoded picture reaches 5 s: a picture later at most.
    const copied = (await pictures(RUNG_PLAYLIST, path.join(workDir, "480p"))).length;
    expect(copied).toBeGreaterThanOrEqual(25);
    expect(copied).toBeLessThanOrEqual(26);
    expect(await pictures(RUNG_PLAYLIST, path.join(workDir, "360p"))).toHaveLength(25);
    expect(Math.abs((await rung("audio")).seconds - 1)).toBeLessThan(0.05);
  });
});
