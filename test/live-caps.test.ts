import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import amf from "node-media-server/src/protocol/amf.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FeedPacket } from "../src/live/feed.ts";
import { FLV_HEADER, flvReader, flvTag } from "../src/live/flv.ts";
import { DEFAULT_INGEST_LIMITS, type IngestSessions, type Publisher, startPublisher } from "../src/live/publisher.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { workersReported } from "./support/live-slots.ts";
import { waitFor } from "./support/wait-for.ts";
import { fixturesDir, runFfmpeg } from "./support/media-fixtures.ts";

// What a broadcast is held to, whatever its publisher says: wall-clock time for its length and the
// month's minutes, media (not bytes) for a stall, and the size its H.264 decodes to. Publishers are
// real ffmpeg over RTMP, or FLV tags of real encodes written to a publisher as the SRT remux and the
// relay write them (a metadata tag that lies, tags of nothing but metadata).

const CREATE_STREAM = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`);
const STALL_SECONDS = 2;
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: String(STALL_SECONDS),
      // The stream says why its publisher went (DISCONNECTED) for a while before its broadcast ends.
      LIVE_RECONNECT_GRACE_SECONDS: "3",
      // 60 s a month: the tests spend 50 of them before a broadcast, which gets the 10 left.
      LIVE_MAX_MINUTES_PER_TENANT_MONTH: "1",
    },
    workerEnv: { LIVE_PASSTHROUGH: "true" },
  });
  // Broadcasts are admitted to the live slots of workers that have heartbeated.
  await workersReported(t);
});
afterAll(async () => {
  await t?.stop();
});

async function createLiveStream(title: string): Promise<{ id: string; key: string; ingestUrl: string }> {
  const res = await t.gql(CREATE_STREAM, { title });
  expect(res.errors).toBeUndefined();
  const { streamKey, liveStream } = expectTypename(res.data.createLiveStream, "LiveStreamWithKey");
  return { id: liveStream.id, key: streamKey, ingestUrl: liveStream.ingestUrl.replace("localhost", "127.0.0.1") };
}

const streamRow = (id: string) => t.app.services.db.liveStream.findUniqueOrThrow({ where: { id } });
const ended = (id: string) =>
  waitFor(
    "the broadcast's end",
    () => streamRow(id),
    (s) => s.status === "ENDED",
  );

/** The FLV tags of a real x264 encode (`frames` of `size` at 25 fps, a keyframe a second, no audio). */
async function encodedTags(name: string, size: string, frames: number): Promise<FeedPacket[]> {
  const file = path.join(fixturesDir(), `${name}.flv`);
  await runFfmpeg([
    ...["-y", "-hide_banner", "-loglevel", "error"],
    ...["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=25`, "-frames:v", String(frames)],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-an", "-f", "flv", file],
  ]);
  const tags: FeedPacket[] = [];
  const kinds = ["audio header", "audio", "video header", "keyframe", "frame", "metadata"] as const;
  flvReader(
    1 << 24,
    (p) =>
      tags.push({
        type: p.codec_type,
        dts: p.dts,
        data: Buffer.from(p.data.subarray(0, p.size)),
        kind: kinds[p.flags]!,
      }),
    (e) => e,
  )(await readFile(file));
  return tags;
}

/** An onMetaData tag's body declaring `width`x`height` H.264 at 25 fps, without audio. */
const metadataOf = (width: number, height: number) =>
  amf.encodeAmf0Data({ cmd: "onMetaData", dataObj: { width, height, framerate: 25, videocodecid: 7 } });

/**
 * A publisher of `key` fed FLV bytes as the relay and the SRT remux feed theirs (flv.ts's reader,
 * then `packet`), its connection held while its key is checked and its broadcast starts. `pushed`:
 * what its broadcast's feed took.
 */
async function flvPublisher(key: string) {
  let held = false;
  const released: (() => void)[] = [];
  const release = () => {
    held = false;
    for (const resolve of released.splice(0)) resolve();
  };
  const pushed: FeedPacket[] = [];
  const { sessions } = t.app.services.live;
  const watched: IngestSessions = {
    ...sessions,
    async begin(streamId, input) {
      const begun = await sessions.begin(streamId, input);
      if ("feed" in begun) {
        const push = begun.feed.push.bind(begun.feed);
        begun.feed.push = (packet) => {
          pushed.push(packet);
          push(packet);
        };
      }
      return begun;
    },
  };
  const publisher: Publisher = startPublisher(
    {
      protocol: "relay",
      client: "test",
      hold: () => {
        held = true;
      },
      release,
      destroy: release,
    },
    watched,
    { ...DEFAULT_INGEST_LIMITS, maxBitrate: 20_000_000, stallSeconds: STALL_SECONDS, maxConnections: 10 },
  );
  const read = flvReader(
    DEFAULT_INGEST_LIMITS.maxMessageBytes,
    (packet) => publisher.packet(packet),
    (e) => e,
  );
  const untilReleased = async () => {
    while (held) await new Promise<void>((resolve) => released.push(resolve));
  };
  publisher.publish(key);
  await untilReleased();
  const sendBytes = (bytes: Buffer) => {
    if (!publisher.received(bytes.length)) return;
    const refused = read(bytes);
    if (refused) publisher.close(refused);
  };
  sendBytes(FLV_HEADER);
  return {
    publisher,
    pushed,
    /** Writes tags (as one chunk), then waits while the connection is held (the broadcast starting). */
    async send(...tags: FeedPacket[]) {
      sendBytes(Buffer.concat(tags.map((tag) => flvTag(tag.type, tag.dts, tag.data))));
      await untilReleased();
    },
  };
}

describe("a broadcast's stall, by media", () => {
  it("a publisher that sends only metadata once on air is cut off as stalled, whatever bytes it sends", async () => {
    const stream = await createLiveStream("Metadata only");
    const tags = await encodedTags("qvga-second", "320x240", 25);
    const { publisher, send } = await flvPublisher(stream.key);
    await send(...tags);
    expect(publisher.closed).toBe(false);
    const onAirAt = Date.now();
    const metadata = tags.find((tag) => tag.kind === "metadata")!;
    // A metadata tag every 0.4 s (the attack run sent one every 2 s and stayed on air 221 s).
    for (let dts = 1000; !publisher.closed && Date.now() - onAirAt < 4 * STALL_SECONDS * 1000; dts += 400) {
      await send({ ...metadata, dts });
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(publisher.closed, "cut off as stalled").toBe(true);
    await publisher.settled;
    const stalled = (Date.now() - onAirAt) / 1000;
    expect(stalled).toBeLessThan(STALL_SECONDS + 2);
    expect((await streamRow(stream.id)).lastError).toBe(`the publisher sent no audio or video for ${STALL_SECONDS} s`);
    await ended(stream.id);
  });
});

describe("a broadcast's length and the month's minutes, by the wall clock", () => {
  it("a publisher whose timestamps run at half speed is cut off when the month's time left has passed on the wall clock, and the month is charged that time, not its recording's", async () => {
    const stream = await createLiveStream("Half speed");
    const db = t.app.services.db;
    const { tenantId } = await streamRow(stream.id);
    const now = new Date();
    const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    await db.liveUsage.deleteMany();
    await db.liveUsage.create({ data: { tenantId, month, seconds: 50 } });
    // 25 frames and 48,000 samples a second, time-stamped at half that pace: 10 s of wall clock carry 5 s of media.
    const child = spawn(
      "ffmpeg",
      [
        ...["-hide_banner", "-loglevel", "error", "-re"],
        ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=60"],
        ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60"],
        ...["-vf", "settb=1/1000,setpts=PTS/2", "-af", "asetpts=PTS/2", "-fps_mode", "passthrough"],
        ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"],
        ...["-c:a", "aac", "-b:a", "64k", "-f", "flv", `${stream.ingestUrl}/${stream.key}`],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    child.stderr.resume();
    const exited = new Promise<number>((resolve) => child.on("exit", () => resolve(Date.now())));
    try {
      const cutAt = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(0), 45_000))]);
      expect(cutAt, "the publisher cut off").toBeGreaterThan(0);
      const video = await db.video.findFirstOrThrow({ where: { liveStreamId: stream.id } });
      // Its 10 s on the wall clock, and the seconds a cut takes; the media cap alone (10 s of media) cut it at 20 s.
      const onAir = (cutAt - video.createdAt.getTime()) / 1000;
      expect(onAir).toBeGreaterThan(8);
      expect(onAir).toBeLessThan(14);
      const row = await ended(stream.id);
      expect(row.lastError).toMatch(/^the broadcast reached its longest length \((9|10) s of wall-clock time\)$/);
      const recording = await db.video.findUniqueOrThrow({ where: { id: video.id } });
      expect(recording.status).toBe("READY");
      expect(recording.duration).toBeLessThan(7);
      // Charged its time on air (about 10 s), at most its longest length: not the recording's 5 s.
      const usage = await db.liveUsage.findUniqueOrThrow({ where: { tenantId_month: { tenantId, month } } });
      expect(usage.seconds).toBeGreaterThan(58.5);
      expect(usage.seconds).toBeLessThanOrEqual(60);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("a broadcast's picture size, as its H.264 decodes", () => {
  it("refuses 8K under 720p metadata and 640x480 under 320x240 before a broadcast starts, and an in-band SPS of another size once on air, before it reaches the feed", async () => {
    const db = t.app.services.db;
    // The month's minutes spent by the tests before are not this one's concern.
    await db.liveUsage.deleteMany();
    const cases = [
      {
        tags: await encodedTags("dci", "4096x2176", 1),
        declared: [1280, 720],
        reason: "the stream's video is 4096x2176 (4096x2176 coded), over the largest input (3840x2160)",
      },
      {
        tags: await encodedTags("vga", "640x480", 1),
        declared: [320, 240],
        reason: "the stream's video is 640x480, where its metadata says 320x240",
      },
    ];
    for (const { tags, declared, reason } of cases) {
      const stream = await createLiveStream(reason);
      const { publisher, send } = await flvPublisher(stream.key);
      const lying = tags.map((tag) =>
        tag.kind === "metadata" ? { ...tag, data: metadataOf(declared[0]!, declared[1]!) } : tag,
      );
      await send(...lying);
      expect(publisher.closed, reason).toBe(true);
      await publisher.settled;
      expect(await db.video.count({ where: { liveStreamId: stream.id } }), reason).toBe(0);
      expect((await streamRow(stream.id)).lastError).toBe(reason);
    }

    // On air at 320x240, then a keyframe carrying a 640x480 SPS in-band, as a decoder would take it.
    const stream = await createLiveStream("In-band SPS");
    const qvga = await encodedTags("qvga", "320x240", 1);
    const vgaHeader = cases[1]!.tags.find((tag) => tag.kind === "video header")!.data;
    const vgaSps = vgaHeader.subarray(13, 13 + vgaHeader.readUInt16BE(11));
    const { publisher, send, pushed } = await flvPublisher(stream.key);
    await send(...qvga.slice(0, 3));
    expect(publisher.closed).toBe(false);
    const keyframe = qvga.find((tag) => tag.kind === "keyframe")!;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(vgaSps.length);
    const inBand = Buffer.concat([keyframe.data.subarray(0, 5), length, vgaSps, keyframe.data.subarray(5)]);
    await send({ ...keyframe, dts: 1000, data: inBand });
    expect(publisher.closed).toBe(true);
    await publisher.settled;
    expect(pushed.map((p) => p.kind)).toEqual(["metadata", "video header", "keyframe"]);
    expect((await streamRow(stream.id)).lastError).toBe(
      "the stream's video is 640x480, where its metadata says 320x240",
    );
    await ended(stream.id);
  });
});
