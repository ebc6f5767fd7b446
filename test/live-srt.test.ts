import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { srtGatewayBuilt } from "../src/live/srt-gateway-build.ts";
import { liveBroadcasts, liveIngestBytes, liveIngestClosed } from "../src/metrics.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { buildConsole, launchChromium } from "./support/console.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import {
  byProtocol,
  createLiveStreamWithKey,
  durationOf,
  expectRecording,
  startLiveTestApp,
  streamState,
  text,
} from "./support/live-api.ts";
import { killPublishersOnAir, publish, publishUntilStopped } from "./support/live-publisher.ts";
import { standInLiveWorker } from "./support/live-slots.ts";
import { playsInWatchPage, reportsLatencyOnceMeasured } from "./support/live-viewers.ts";
import { childrenOf } from "./support/process-scan.ts";
import { waitFor } from "./support/wait-for.ts";

// The SRT ingest: a real caller (ffmpeg pushing MPEG-TS over SRT to the API's gateway on loopback),
// the local worker encoding the broadcast, the watch page in Chromium, and the ingest's refusals.

const SRT_INGEST_URLS = graphql(`{ liveStreams { srtIngestUrl } }`);
const ROTATE_KEY = graphql(`mutation ($id: ID!) { rotateLiveStreamKey(id: $id) {
  __typename ... on LiveStreamWithKey { srtPassphrase } } }`);
const CREATE_STREAM = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { srtUrl } } }`);
const STATUSES = graphql(`{ liveStreams { status } }`);

let t: TestApp;
let browser: Browser;

beforeAll(async () => {
  await buildConsole();
  browser = await launchChromium();
  t = await startLiveTestApp({ srt: true });
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});
// A test that failed midway leaves no publisher on air to the next (whose checks count processes
// and broadcasts).
afterEach(killPublishersOnAir);

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
    const res = await t.gql(SRT_INGEST_URLS);
    const address: string = res.data.liveStreams[0]!.srtIngestUrl!;
    expect(address).toMatch(/^srt:\/\/localhost:\d+$/);
    // As ffmpeg takes it: the stream id as is (a key is base64url; ffmpeg 5.1 decodes no %-escapes).
    const url = `${address.replace("localhost", "127.0.0.1")}?streamid=${streamId}`;
    return passphrase === null ? `${url}&linger=3` : `${url}&passphrase=${passphrase}&linger=3`;
  }

  it("a caller pushing MPEG-TS with its key as the stream id broadcasts live, plays in hls.js, and its recording is whole", async () => {
    const stream = await createLiveStreamWithKey(t, "Over SRT");
    // The whole address, as shown once with the key (OBS takes it as its Server).
    expect(stream.srtUrl).toBe(await srtUrl(stream.key, stream.srtPassphrase));
    // On air until the watch page has played it, however long a loaded machine takes: stopped below.
    const publisher = publishUntilStopped(await srtUrl(`#!::r=${stream.key},m=publish`, stream.srtPassphrase), {
      srt: true,
    });
    const live = await waitFor(
      "the SRT broadcast to be playable",
      () => streamState(t, stream.id),
      (s) => s.status === "LIVE",
    );
    const master = await text(new URL(live.activeVideo!.playbackUrl!, t.url).toString());
    const rung = master.split("\n").find((line) => line.endsWith(".m3u8") && !line.startsWith("#"))!;
    const rungUrl = new URL(rung, new URL(live.activeVideo!.playbackUrl!, t.url)).toString();
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
    await playsInWatchPage(t, browser, live.activeVideo!.id, publisher, async () =>
      expect(publisher.process.exitCode).toBeNull(),
    );
    await reportsLatencyOnceMeasured(t, browser, live.activeVideo!.playbackUrl!);
    // Every second the caller sent, its last frames included: it lingers at its close (`srtUrl`'s
    // linger=3; without it SRT's live mode dropped what was not sent yet, 0.2 s here), and the
    // remux's last packets too (the caller's leaving drains it).
    const srtBytesBefore = await byProtocol(liveIngestBytes, "srt");
    const seconds = await publisher.stop();
    const ended = await expectRecording(t, stream.id, publisher, seconds);
    expect(ended.activeVideo!.duration!).toBeGreaterThanOrEqual(seconds - 0.05);
    expect(await byProtocol(liveIngestBytes, "srt")).toBeGreaterThan(srtBytesBefore);
    expect(await byProtocol(liveBroadcasts, "srt")).toBe(0);
    expect(await byProtocol(liveIngestClosed, "srt", { outcome: "ended" })).toBeGreaterThanOrEqual(1);
    const recording = await text(rungUrl);
    expect(recording).toContain("#EXT-X-ENDLIST");
    expect(Math.abs(durationOf(recording) - ended.activeVideo!.duration!)).toBeLessThan(0.1);
  });

  it("refuses a wrong key, a stream id that asks to play, a caller without its stream's passphrase, and a stream whose video the feed cannot carry", async () => {
    const stream = await createLiveStreamWithKey(t, "SRT refusals");
    const other = await createLiveStreamWithKey(t, "Another stream");
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
    const rotated = await t.gql(ROTATE_KEY, { id: other.id });
    expect(expectTypename(rotated.data.rotateLiveStreamKey, "LiveStreamWithKey").srtPassphrase).not.toBe(
      other.srtPassphrase,
    );
    await refusedCaller(other.key, other.srtPassphrase);
    expect((await streamState(t, stream.id)).lastError).toBeNull();
    expect((await streamState(t, stream.id)).status).toBe("IDLE");
    // The right key, MPEG-2 video: the remux cannot put it in the feed, and the stream says why.
    const mpeg2 = publish(await srtUrl(stream.key, stream.srtPassphrase), 5, { srt: true, videoCodec: "mpeg2video" });
    const said = await waitFor(
      "the refusal's reason",
      () => streamState(t, stream.id),
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
    const created: { srtUrl: string | null }[] = [];
    for (const title of ["Held", "Turned away"]) {
      const res = await limited.gql(CREATE_STREAM, { title });
      created.push(expectTypename(res.data.createLiveStream, "LiveStreamWithKey"));
    }
    const url = (i: number) => created[i]!.srtUrl!.replace("localhost", "127.0.0.1");
    // On air until the test ends (not a fixed 8 s): the second caller must meet the limit while the
    // first still holds the one connection, however long a loaded host takes to get this far.
    const held = publishUntilStopped(url(0), { srt: true });
    await waitFor(
      "the first caller's broadcast",
      async () => (await limited.gql(STATUSES)).data.liveStreams,
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
