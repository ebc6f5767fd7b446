import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { liveIngestSourceRefusals } from "../src/metrics.ts";
import { createSourceLimits, KEY_GUESSING_REFUSAL, sourceOf } from "../src/live/source-limits.ts";
import { srtGatewayBuilt } from "../src/live/srt-gateway-build.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { standInLiveWorker } from "./support/live-slots.ts";

// The ingest's per-source limits (src/live/source-limits.ts): one address cannot hold the ingest's
// connections or guess keys at the database's pace, and a right publisher from another address is
// unaffected. Linux routes all of 127/8 to loopback: the hostile source is 127.0.0.2 or .3.

const CREATE_STREAM = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`);
const STREAM_STATUS = graphql(`query ($id: ID!) { liveStream(id: $id) { status } }`);
const CREATE_SRT_STREAM = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { srtUrl } } }`);
const STATUSES = graphql(`{ liveStreams { status } }`);

describe("sources and their back-off", () => {
  it("counts an IPv4-mapped address as its IPv4 and an IPv6 address by its /64", () => {
    expect(sourceOf("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(sourceOf("::FFFF:127.0.0.2")).toBe("127.0.0.2");
    expect(sourceOf("127.0.0.1")).toBe("127.0.0.1");
    expect(sourceOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:0db8:0001:0002:ffff:1:2:3")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceOf("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(sourceOf("::1")).toBe("0:0:0:0::/64");
  });

  it("refuses a source's connections over its limits, and its publishes for a growing time after too many wrong keys", () => {
    let now = 0;
    const limits = createSourceLimits(
      { maxConnectionsPerSource: 3, maxHandshakesPerSource: 2, maxKeyFailuresPerSource: 2 },
      () => now,
    );
    const admit = (address: string) => {
      const c = limits.admit("rtmp", address);
      if ("refused" in c) throw new Error(c.refused);
      return c;
    };
    const a = admit("::ffff:10.0.0.1");
    admit("10.0.0.1");
    // Two handshakes from one source: a third is refused until one's key is accepted.
    expect(limits.admit("rtmp", "10.0.0.1")).toEqual({ refused: expect.stringMatching(/without an accepted key/) });
    a.keyAccepted();
    const c = admit("10.0.0.1");
    expect(limits.admit("rtmp", "10.0.0.1")).toEqual({ refused: expect.stringMatching(/more than 3 connections/) });
    // Another source, and another /64, are counted apart.
    admit("10.0.0.2");
    admit("2001:db8:0:1::1");
    admit("2001:db8:0:1::2");
    expect(limits.admit("srt", "2001:db8:0:1::3")).toEqual({ refused: expect.stringMatching(/without an accepted/) });
    admit("2001:db8:0:2::1");

    // Wrong keys: two in a minute are let through; the third backs the source off for a minute, then two, …
    c.keyRefused();
    c.keyRefused();
    expect(c.publishRefusal()).toBeNull();
    c.keyRefused();
    expect(c.publishRefusal()).toBe(KEY_GUESSING_REFUSAL);
    expect(limits.admit("srt", "10.0.0.1")).toEqual({ refused: KEY_GUESSING_REFUSAL });
    now += 60_001;
    expect(c.publishRefusal()).toBeNull();
    for (let i = 0; i < 3; i++) c.keyRefused();
    now += 60_001;
    expect(c.publishRefusal()).toBe(KEY_GUESSING_REFUSAL);
    now += 60_000;
    expect(c.publishRefusal()).toBeNull();
    // Closing a connection gives its source its place back (a closed one counts no more).
    c.close();
    c.close();
    admit("10.0.0.1");
  });
});

/** A stream's key and RTMP URL on `app`, as createLiveStream shows them. */
async function createLiveStream(app: TestApp, title: string): Promise<{ id: string; key: string; url: string }> {
  const res = await app.gql(CREATE_STREAM, { title });
  const { streamKey, liveStream } = expectTypename(res.data.createLiveStream, "LiveStreamWithKey");
  return { id: liveStream.id, key: streamKey, url: liveStream.ingestUrl.replace("localhost", "127.0.0.1") };
}

async function streamStatus(app: TestApp, id: string): Promise<string> {
  return (await app.gql(STREAM_STATUS, { id })).data.liveStream!.status;
}

/** ffmpeg publishing a 320x240 test pattern from 127.0.0.1 for `seconds`. */
function publish(url: string, seconds: number) {
  const child = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", `testsrc2=size=320x240:rate=25:duration=${seconds}`],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-f", "flv", url],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  child.stderr.resume();
  return child;
}

async function waitForStatus(app: TestApp, id: string, status: string, ms: number): Promise<string> {
  const until = Date.now() + ms;
  let last = "";
  while (Date.now() < until) {
    last = await streamStatus(app, id);
    if (last === status) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  return last;
}

/** The AMF0 encoding of a string, a number, null or a flat object of strings. */
function amf0(value: string | number | null | Record<string, string>): Buffer {
  const text = (s: string) => {
    const b = Buffer.from(s, "utf8");
    const length = Buffer.alloc(2);
    length.writeUInt16BE(b.length);
    return Buffer.concat([length, b]);
  };
  if (value === null) return Buffer.from([5]);
  if (typeof value === "string") return Buffer.concat([Buffer.from([2]), text(value)]);
  if (typeof value === "number") {
    const b = Buffer.alloc(9);
    b[0] = 0;
    b.writeDoubleBE(value, 1);
    return b;
  }
  const pairs = Object.entries(value).map(([k, v]) => Buffer.concat([text(k), amf0(v)]));
  return Buffer.concat([Buffer.from([3]), ...pairs, Buffer.from([0, 0, 9])]);
}

/** An AMF0 command message in one chunk (type 0 header; shorter than the 128-byte default chunk). */
function command(chunkStream: number, streamId: number, ...values: Parameters<typeof amf0>[0][]): Buffer {
  const body = Buffer.concat(values.map(amf0));
  expect(body.length).toBeLessThanOrEqual(128);
  const header = Buffer.alloc(12);
  header[0] = chunkStream;
  header.writeUIntBE(body.length, 4, 3);
  header[7] = 20;
  header.writeUInt32LE(streamId, 8);
  return Buffer.concat([header, body]);
}

/**
 * An RTMP publisher without media from `localAddress`: handshake, connect, publish with `key`.
 * Resolves with how long the ingest kept it open after the publish (up to `watchMs`).
 */
async function publishKeyFrom(port: number, localAddress: string, key: string, watchMs = 3000): Promise<number> {
  const socket = connect({ host: "127.0.0.1", port, localAddress });
  socket.on("error", () => {});
  socket.resume();
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
  const sentAt = Date.now();
  socket.write(
    Buffer.concat([
      Buffer.from([3]),
      Buffer.alloc(1536),
      Buffer.alloc(1536),
      command(3, 0, "connect", 1, { app: "live", tcUrl: "rtmp://127.0.0.1/live" }),
      command(8, 1, "publish", 0, null, key, "live"),
    ]),
  );
  await Promise.race([closed, new Promise((r) => setTimeout(r, watchMs))]);
  socket.destroy();
  return Date.now() - sentAt;
}

async function refusals(limit: string): Promise<number> {
  const values = (await liveIngestSourceRefusals.get()).values;
  return values.find((v) => v.labels.protocol === "rtmp" && v.labels.limit === limit)?.value ?? 0;
}

describe("the RTMP ingest's per-source limits", () => {
  let app: TestApp;
  let port: number;
  beforeAll(async () => {
    app = await startTestApp({
      worker: false,
      env: { LIVE_MAX_CONNECTIONS: "16", LIVE_MAX_KEY_FAILURES_PER_SOURCE: "3" },
    });
    // No worker encodes here: a stand-in's live slots admit the broadcasts, whose jobs stay queued.
    await standInLiveWorker(app.app.services.db, 8);
    port = Number(new URL((await createLiveStream(app, "port")).url.replace("rtmp:", "http:")).port);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("one source holding twice LIVE_MAX_CONNECTIONS idle connections, re-opened as they close, does not keep a right publisher from another source off the air", async () => {
    const stream = await createLiveStream(app, "Flooded");
    const flood = new Set<Socket>();
    let flooding = true;
    const open = () => {
      if (!flooding) return;
      const socket = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
      flood.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        flood.delete(socket);
        setTimeout(open, 20);
      });
    };
    for (let i = 0; i < 32; i++) open();
    const before = await refusals("handshakes");
    try {
      // The flood has taken what it can before the publisher comes.
      await new Promise((r) => setTimeout(r, 1000));
      const publisher = publish(`${stream.url}/${stream.key}`, 8);
      const status = await waitForStatus(app, stream.id, "CONNECTED", 15_000);
      publisher.kill("SIGKILL");
      expect(status).toBe("CONNECTED");
      expect(await refusals("handshakes")).toBeGreaterThan(before);
    } finally {
      flooding = false;
      for (const socket of flood) socket.destroy();
    }
  });

  it("a source that sends too many wrong keys is refused before its keys are looked up, the right key included; a right key from another source publishes", async () => {
    const stream = await createLiveStream(app, "Guessed");
    const guess = (i: number) => `lsk_${String(i).padStart(43, "A")}`;
    for (let i = 0; i < 3; i++) await publishKeyFrom(port, "127.0.0.3", guess(i));
    const before = await refusals("key guesses");
    // The fourth wrong key backs the source off: the right key from it is then refused at once,
    // where an accepted key waits seconds for the stream's metadata.
    await publishKeyFrom(port, "127.0.0.3", guess(3));
    expect(await publishKeyFrom(port, "127.0.0.3", stream.key)).toBeLessThan(1500);
    expect(await refusals("key guesses")).toBeGreaterThan(before);
    expect(await streamStatus(app, stream.id)).toBe("IDLE");
    // A source that has guessed nothing publishes with the key.
    expect(await publishKeyFrom(port, "127.0.0.4", stream.key)).toBeGreaterThanOrEqual(2500);
    const publisher = publish(`${stream.url}/${stream.key}`, 6);
    const status = await waitForStatus(app, stream.id, "CONNECTED", 15_000);
    publisher.kill("SIGKILL");
    expect(status).toBe("CONNECTED");
  });
});

describe("the SRT ingest's per-source limit (LIVE_MAX_CONNECTIONS_PER_SOURCE)", () => {
  let app: TestApp;
  beforeAll(async () => {
    expect(srtGatewayBuilt(), "npm run setup:srt").toBe(true);
    app = await startTestApp({ worker: false, env: { LIVE_SRT_PORT: "0", LIVE_MAX_CONNECTIONS_PER_SOURCE: "1" } });
    await standInLiveWorker(app.app.services.db, 8);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("refuses a second caller from one source in SRT's handshake, with the ingest far from LIVE_MAX_CONNECTIONS", async () => {
    const urls: string[] = [];
    for (const title of ["Held", "Same source"]) {
      const res = await app.gql(CREATE_SRT_STREAM, { title });
      urls.push(
        expectTypename(res.data.createLiveStream, "LiveStreamWithKey").srtUrl!.replace("localhost", "127.0.0.1"),
      );
    }
    const srtPublish = (url: string, seconds: number) => {
      const child = spawn(
        "ffmpeg",
        [
          ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"],
          ...["-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", url],
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let stderr = "";
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      return { child, exited, stderr: () => stderr };
    };
    const held = srtPublish(urls[0]!, 30);
    try {
      const until = Date.now() + 20_000;
      let statuses: string[] = [];
      while (Date.now() < until && !statuses.includes("CONNECTED")) {
        statuses = (await app.gql(STATUSES)).data.liveStreams.map((s) => s.status);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(statuses).toContain("CONNECTED");
      const second = srtPublish(urls[1]!, 5);
      const exit = await Promise.race([second.exited, new Promise((r) => setTimeout(() => r("still running"), 4000))]);
      second.child.kill("SIGKILL");
      expect(exit).toBe(1);
      expect(second.stderr()).toMatch(/REJECT/);
    } finally {
      held.child.kill("SIGKILL");
    }
  });
});
