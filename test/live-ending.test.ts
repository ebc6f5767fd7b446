import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { srtGatewayBuilt } from "../src/live/srt-gateway-build.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { workersReported } from "./support/live-slots.ts";

// How a broadcast ends (docs/live.md, "How a broadcast ends"): a clean unpublish at once, a dropped
// connection after its stream's reconnect window, endLiveStream now. Real publishers (ffmpeg over
// RTMP and SRT on loopback) and the local worker encoding each broadcast.

/** The default window here is long, so a broadcast that waits it fails each test's bound on the end. */
const DEFAULT_WINDOW_SECONDS = 60;

// createLiveStream, liveStream and updateLiveStream select the same stream's fields (id status
// lastError reconnectWindowSeconds endOnUnpublish).
const CREATE_STREAM = graphql(`
  mutation ($input: CreateLiveStreamInput) {
    createLiveStream(input: $input) {
      __typename
      ... on LiveStreamWithKey {
        streamKey srtUrl liveStream { id status lastError reconnectWindowSeconds endOnUnpublish ingestUrl } }
      ... on ValidationError { field message }
    }
  }`);
const STREAM = graphql(`
  query ($id: ID!) { liveStream(id: $id) {
    id status lastError reconnectWindowSeconds endOnUnpublish activeVideo { id status duration } } }`);
const END_STREAM = graphql(`
  mutation ($id: ID!) {
    endLiveStream(id: $id) {
      __typename
      ... on LiveStream { id status }
      ... on ValidationError { field message }
      ... on NotFoundError { message }
    }
  }`);
const CREATE_OUT_OF_BOUNDS = graphql(
  `mutation { createLiveStream(input: { reconnectWindowSeconds: 121 }) { ... on ValidationError { field message } } }`,
);
const UPDATE_STREAM = graphql(`
  mutation ($id: ID!, $input: UpdateLiveStreamInput!) {
    updateLiveStream(id: $id, input: $input) {
      ... on LiveStream { id status lastError reconnectWindowSeconds endOnUnpublish } ... on ValidationError { field } }
  }`);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      LIVE_RECONNECT_GRACE_SECONDS: String(DEFAULT_WINDOW_SECONDS),
      LIVE_SRT_PORT: "0",
    },
    workerEnv: { LIVE_PASSTHROUGH: "true" },
  });
  await workersReported(t);
});
afterAll(async () => {
  await t?.stop();
});
afterEach(killPublishersOnAir);

interface Stream {
  id: string;
  rtmpUrl: string;
  srtUrl: string | null;
}

async function createStream(input: NonNullable<VariablesOf<typeof CREATE_STREAM>["input"]> = {}): Promise<Stream> {
  const res = await t.gql(CREATE_STREAM, { input: { title: "Ending", ...input } });
  expect(res.errors).toBeUndefined();
  const { streamKey, srtUrl, liveStream } = expectTypename(res.data.createLiveStream, "LiveStreamWithKey");
  // Published on loopback only: the URLs say localhost, the publisher connects to 127.0.0.1.
  return {
    id: liveStream.id,
    rtmpUrl: `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`,
    srtUrl: srtUrl?.replace("localhost", "127.0.0.1") ?? null,
  };
}

async function streamState(id: string) {
  const res = await t.gql(STREAM, { id });
  expect(res.errors).toBeUndefined();
  return res.data.liveStream!;
}

/** The stream once its state is `status` (polled), within `seconds`. */
async function reaches(id: string, status: string, seconds: number) {
  let state = await streamState(id);
  await expect
    .poll(
      async () => {
        state = await streamState(id);
        return state.status;
      },
      { timeout: seconds * 1000, interval: 200 },
    )
    .toBe(status);
  return state;
}

async function endLiveStream(id: string, authorization?: string) {
  const res = await t.gql(END_STREAM, { id }, authorization);
  expect(res.errors).toBeUndefined();
  return res.data.endLiveStream;
}

describe("how a broadcast ends", () => {
  it("a clean unpublish over RTMP ends the broadcast at once: READY seconds later, not after the reconnect window", async () => {
    const stream = await createStream();
    expect(await streamState(stream.id)).toMatchObject({
      reconnectWindowSeconds: DEFAULT_WINDOW_SECONDS,
      endOnUnpublish: true,
    });
    const publisher = publishUntilStopped(stream.rtmpUrl);
    await reaches(stream.id, "LIVE", 30);
    const sent = await publisher.stop();
    const stoppedAt = Date.now();
    // Before, it waited the window (60 s here) and then finished the recording.
    const ended = await reaches(stream.id, "ENDED", 25);
    const seconds = (Date.now() - stoppedAt) / 1000;
    expect(ended.lastError).toBeNull();
    expect(ended.activeVideo!.status).toBe("READY");
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1.5);
    expect(seconds).toBeLessThan(25);
  });

  it.skipIf(!srtGatewayBuilt())(
    "a clean close over SRT ends the broadcast at once, with everything the caller sent",
    async () => {
      const stream = await createStream();
      const publisher = publishUntilStopped(stream.srtUrl!, { srt: true });
      await reaches(stream.id, "LIVE", 30);
      const sent = await publisher.stop();
      const ended = await reaches(stream.id, "ENDED", 25);
      expect(ended.lastError).toBeNull();
      expect(ended.activeVideo!.status).toBe("READY");
      expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1.5);
    },
  );

  it.each([
    ["RTMP", false],
    ["SRT", true],
  ])("a dropped %s connection waits the stream's own reconnect window, then ends", async (_protocol, srt) => {
    if (srt && !srtGatewayBuilt()) return;
    const stream = await createStream({ reconnectWindowSeconds: 4 });
    const publisher = publishUntilStopped(srt ? stream.srtUrl! : stream.rtmpUrl, { srt });
    await reaches(stream.id, "LIVE", 30);
    // No unpublish: the encoder's process dies.
    publisher.process.kill("SIGKILL");
    await reaches(stream.id, "DISCONNECTED", 10);
    const droppedAt = Date.now();
    // Still waiting for its publisher a second later…
    await new Promise((r) => setTimeout(r, 1500));
    expect((await streamState(stream.id)).status).toBe("DISCONNECTED");
    // …and ended once its 4 s are over (the default would be 60).
    const ended = await reaches(stream.id, "ENDED", 30);
    expect((Date.now() - droppedAt) / 1000).toBeGreaterThan(3);
    expect(ended.activeVideo!.status).toBe("READY");
  });

  it("with endOnUnpublish false, an unpublish waits the window: a publisher back in time continues the same video, and endLiveStream ends it", async () => {
    const stream = await createStream({ endOnUnpublish: false, reconnectWindowSeconds: 30 });
    // On air until it is LIVE, then a clean unpublish (a fixed length could end before the first
    // segment on a loaded host: its stream then goes from CONNECTED to DISCONNECTED, never LIVE).
    const first = publishUntilStopped(stream.rtmpUrl);
    await reaches(stream.id, "LIVE", 30);
    const video = (await streamState(stream.id)).activeVideo!.id;
    const firstSent = await first.stop();
    expect(await first.exited).toBe(0);
    await reaches(stream.id, "DISCONNECTED", 10);

    const again = publishUntilStopped(stream.rtmpUrl);
    await reaches(stream.id, "LIVE", 30);
    expect((await streamState(stream.id)).activeVideo!.id).toBe(video);
    await expect.poll(() => again.sent(), { timeout: 20_000 }).toBeGreaterThan(2);

    const ended = await endLiveStream(stream.id);
    expect(ended).toMatchObject({ __typename: "LiveStream", id: stream.id });
    // The publisher is cut off, and the broadcast ends with what it sent.
    expect(await again.exited).not.toBe(0);
    const state = await reaches(stream.id, "ENDED", 25);
    expect(state.activeVideo).toMatchObject({ id: video, status: "READY" });
    // Both publishers' media: more than the first sent.
    expect(state.activeVideo!.duration).toBeGreaterThan(firstSent + 1);
    expect(await t.app.services.db.video.count({ where: { liveStreamId: stream.id } })).toBe(1);

    // Nothing left to end.
    expect(await endLiveStream(stream.id)).toMatchObject({
      __typename: "ValidationError",
      field: "id",
      message: "The live stream has no broadcast to end",
    });
  });

  it("endLiveStream ends a broadcast waiting for its dropped publisher now, not after its window", async () => {
    const stream = await createStream();
    const publisher = publishUntilStopped(stream.rtmpUrl);
    await reaches(stream.id, "LIVE", 30);
    publisher.process.kill("SIGKILL");
    await reaches(stream.id, "DISCONNECTED", 10);
    expect((await endLiveStream(stream.id)).__typename).toBe("LiveStream");
    const ended = await reaches(stream.id, "ENDED", 25);
    expect(ended.activeVideo!.status).toBe("READY");
  });

  it("refuses a reconnect window out of bounds, changes it with updateLiveStream, and ends no other tenant's stream", async () => {
    const refused = await t.gql(CREATE_OUT_OF_BOUNDS);
    expect(refused.data.createLiveStream).toEqual({
      field: "reconnectWindowSeconds",
      message: "The reconnect window is 0 to 120 seconds",
    });
    const stream = await createStream({ reconnectWindowSeconds: 0 });
    expect((await streamState(stream.id)).reconnectWindowSeconds).toBe(0);
    const update = (input: VariablesOf<typeof UPDATE_STREAM>["input"]) =>
      t.gql(UPDATE_STREAM, { id: stream.id, input });
    expect((await update({ reconnectWindowSeconds: 45, endOnUnpublish: false })).data.updateLiveStream).toMatchObject({
      reconnectWindowSeconds: 45,
      endOnUnpublish: false,
    });
    expect((await update({ reconnectWindowSeconds: -1 })).data.updateLiveStream).toEqual({
      field: "reconnectWindowSeconds",
    });
    // Null: back to the default.
    expect((await update({ reconnectWindowSeconds: null })).data.updateLiveStream).toMatchObject({
      reconnectWindowSeconds: DEFAULT_WINDOW_SECONDS,
      endOnUnpublish: false,
    });
    // A stream that never broadcast has nothing to end; another tenant's is not there for it.
    expect((await endLiveStream(stream.id)).__typename).toBe("ValidationError");
    const other = `Bearer ${await tenantKeySecret(t.app.services.db, "ending-other", ["videos:read", "videos:write"])}`;
    expect((await endLiveStream(stream.id, other)).__typename).toBe("NotFoundError");
  });
});
