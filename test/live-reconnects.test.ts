import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LiveFeed } from "../src/live/feed.ts";
import { relayPath } from "../src/live/relay.ts";
import { liveBroadcasts } from "../src/metrics.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import {
  byProtocol,
  createLiveStreamWithKey,
  disconnectOf,
  startLiveTestApp,
  streamState,
} from "./support/live-api.ts";
import { killPublishersOnAir, publish, publishUntilStopped } from "./support/live-publisher.ts";
import { standInLiveWorker } from "./support/live-slots.ts";
import { waitFor } from "./support/wait-for.ts";

// A publisher that drops and comes back over RTMP: within the grace to the same API instance or to
// another (relayed to the one holding its broadcast), and after its grace ran out.

const INGEST_URLS = graphql(`{ liveStreams { ingestUrl } }`);
const CREATE_BACK_LATE = graphql(`mutation { createLiveStream(input: { title: "Back late" }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id } } } }`);

let t: TestApp;

beforeAll(async () => {
  t = await startLiveTestApp();
});
afterAll(async () => {
  await t?.stop();
});
// A test that failed midway leaves no publisher on air to the next (whose checks count processes
// and broadcasts).
afterEach(killPublishersOnAir);

/** A stream's broadcast that continued across publishers: one video, READY, about `seconds` long. */
async function expectOneRecordingOf(streamId: string, videoId: string, seconds: number): Promise<void> {
  const ended = await waitFor(
    "the recording",
    () => streamState(t, streamId),
    (s) => s.status === "ENDED",
  );
  expect(ended.activeVideo!.id).toBe(videoId);
  expect(ended.activeVideo!.status).toBe("READY");
  expect(ended.activeVideo!.duration!).toBeGreaterThan(seconds - 1.5);
  expect(ended.activeVideo!.duration!).toBeLessThan(seconds + 1.5);
  expect(await t.app.services.db.video.count({ where: { liveStreamId: streamId } })).toBe(1);
}

describe("a publisher that drops and comes back within the grace", () => {
  it("a publisher that reconnects within the grace continues the same broadcast, and a timestamp jump leaves no gap", async () => {
    // Its publisher stops and comes back: a stream whose broadcasts wait for it after a stop too.
    const stream = await createLiveStreamWithKey(t, "Flaky uplink", {
      playbackPolicy: "SIGNED",
      endOnUnpublish: false,
    });
    // Two publishers with the same key at the same moment: one broadcasts, the other is refused. The
    // one broadcasting is on air until its broadcast has been seen LIVE (stopped below): on a loaded
    // machine a 4 s publisher had gone before its encode's first segments were out, and the stream
    // went from CONNECTED to DISCONNECTED without ever being LIVE.
    const url = `${stream.ingestUrl}/${stream.key}`;
    const publishers = [publishUntilStopped(url), publishUntilStopped(url)];
    const live = await waitFor(
      "the broadcast",
      () => streamState(t, stream.id),
      (s) => s.status === "LIVE",
    );
    // A SIGNED stream's broadcast plays only with its token.
    const signed = new URL(live.activeVideo!.playbackUrl!, t.url);
    expect(signed.searchParams.get("token")).toBeTruthy();
    expect((await fetch(signed)).status).toBe(200);
    expect((await fetch(new URL(signed.pathname, t.url))).status).toBe(403);
    // The one refused has gone; the other broadcasts until it is stopped.
    const refused = await Promise.race(publishers.map((p) => p.exited.then(() => p)));
    expect(await refused.exited).not.toBe(0);
    const first = publishers.find((p) => p !== refused)!;
    // Watched from now, not from the publisher's exit: on a loaded machine its exit can be seen
    // after the grace has run out.
    const disconnected = disconnectOf(t, stream.id);
    const firstSeconds = await first.stop();
    expect(await first.exited).toBe(0);
    await disconnected;
    // Back within LIVE_RECONNECT_GRACE_SECONDS, its clock leaping 100 s two seconds in.
    const second = publish(`${stream.ingestUrl}/${stream.key}`, 4, { jumpAt: 2 });
    const back = await waitFor(
      "the same broadcast live again",
      () => streamState(t, stream.id),
      (s) => s.status === "LIVE",
    );
    expect(back.activeVideo!.id).toBe(live.activeVideo!.id);
    expect(await second.exited).toBe(0);
    // Both publishers' seconds, without the time between them or the 100 s leap.
    await expectOneRecordingOf(stream.id, live.activeVideo!.id, firstSeconds + 4);
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
      const stream = await createLiveStreamWithKey(t, "Moved uplink", {
        playbackPolicy: "PUBLIC",
        endOnUnpublish: false,
      });
      // On air until its broadcast has been seen LIVE: stopped below.
      const first = publishUntilStopped(`${stream.ingestUrl}/${stream.key}`);
      const live = await waitFor(
        "the broadcast",
        () => streamState(t, stream.id),
        (s) => s.status === "LIVE",
      );
      const disconnected = disconnectOf(t, stream.id);
      const firstSeconds = await first.stop();
      expect(await first.exited).toBe(0);
      await disconnected;
      // Back within the grace, through the other instance's ingest (a load balancer's choice).
      const otherIngest = (await other.gql(INGEST_URLS)).data.liveStreams[0]!.ingestUrl;
      expect(otherIngest).not.toBe(stream.ingestUrl.replace("127.0.0.1", "localhost"));
      const second = publish(`${otherIngest.replace("localhost", "127.0.0.1")}/${stream.key}`, 4);
      const back = await waitFor(
        "the same broadcast live again",
        () => streamState(t, stream.id),
        (s) => s.status === "LIVE",
      );
      expect(back.activeVideo!.id).toBe(live.activeVideo!.id);
      // The holding instance took it as a publisher relayed to it.
      expect(await byProtocol(liveBroadcasts, "relay")).toBe(1);
      expect(await second.exited).toBe(0);
      // Both publishers' seconds, one recording.
      await expectOneRecordingOf(stream.id, live.activeVideo!.id, firstSeconds + 4);
      expect(await byProtocol(liveBroadcasts, "relay")).toBe(0);
      // The relay takes only a signed request, and only while this instance holds that broadcast.
      const relayUrl = (videoId: string) => `${t.url}${t.app.services.signer.sign(relayPath(videoId), 60)}`;
      const unsigned = await fetch(`${t.url}${relayPath(live.activeVideo!.id)}`, { method: "POST", body: "FLV" });
      expect(unsigned.status).toBe(403);
      const notHeld = await fetch(relayUrl(live.activeVideo!.id), { method: "POST", body: "FLV" });
      expect(notHeld.status).toBe(409);
    } finally {
      await other.stop();
    }
  });
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
    const created = await graceful.gql(CREATE_BACK_LATE);
    expect(created.errors).toBeUndefined();
    const { streamKey: key, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
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
