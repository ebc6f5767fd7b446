import { readdir, mkdir, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../src/protocol/version.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { createTestEventIngestor } from "./support/event-ingestor.ts";
import { expectTypename, graphql, operationText } from "./support/graphql.ts";
import { createLiveStreamWithKey, startLiveTestApp, streamState, text } from "./support/live-api.ts";
import { killPublishersOnAir, publish, publishUntilStopped } from "./support/live-publisher.ts";
import { standInLiveWorker } from "./support/live-slots.ts";
import { waitFor } from "./support/wait-for.ts";

// Live streams over RTMP: what a stream keeps (no recording), how a canceled broadcast ends, the
// ingest's refusals (keys, codecs, a disabled stream, a hostile header), another tenant's view, and
// a tenant's limits (broadcasts on air, monthly minutes). How a broadcast plays and is recorded:
// live-broadcast; reconnects: live-reconnects; SRT: live-srt.

const CREATE_UNRECORDED = graphql(`mutation { createLiveStream(input: { title: "Unrecorded", recording: false }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id recording ingestUrl } } } }`);
const CREATE_ENDPOINT = graphql(`mutation {
  createWebhookEndpoint(input: { url: "http://127.0.0.1:9/unrecorded", events: [LIVE_STREAM_ENDED, VIDEO_READY] }) {
    __typename ... on CreateWebhookEndpointSuccess { endpoint { id } } } }`);
const RUNGS = graphql(`query ($id: ID!) { video(id: $id) { variants { segmentCount playlistUrl } } }`);
const RECORD_AGAIN = graphql(`mutation ($id: ID!) { updateLiveStream(id: $id, input: { recording: true }) {
  __typename ... on LiveStream { recording } } }`);
const CANCEL_VIDEO = graphql(`mutation ($id: ID!) { cancelVideo(id: $id) { __typename } }`);
const ROTATE_KEY = graphql(`mutation ($id: ID!) { rotateLiveStreamKey(id: $id) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { streamKeyHint } } } }`);
const DISABLE = graphql(
  `mutation ($id: ID!) { setLiveStreamEnabled(id: $id, enabled: false) { ... on LiveStream { disabled } } }`,
);
const CREATE_WITH_TAGS = graphql(`mutation ($tags: [String!]) { createLiveStream(input: { tags: $tags }) {
  __typename ... on ValidationError { field } } }`);
const UPDATE_CMS_DATA = graphql(`
  mutation ($id: ID!) { updateLiveStream(id: $id, input: { title: "Renamed", tags: [" Late "], description: null }) {
    __typename ... on LiveStream { title tags description metadata { key } } } }`);
const READ_STREAMS = graphql(`query ($id: ID!) { liveStream(id: $id) { id } liveStreams { id } }`);
const ROTATE_KEY_OUTCOME = graphql(`mutation ($id: ID!) { rotateLiveStreamKey(id: $id) { __typename } }`);
const ENABLE_OUTCOME = graphql(`mutation ($id: ID!) { setLiveStreamEnabled(id: $id, enabled: true) { __typename } }`);
const RENAME_OUTCOME = graphql(
  `mutation ($id: ID!) { updateLiveStream(id: $id, input: { title: "Mine" }) { __typename } }`,
);
const FOLLOW = graphql(`subscription ($id: ID!) { liveStreamEvents(id: $id) { status } }`);
const CREATE_TITLED = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { liveStream { id } } } }`);
const ROTATED_KEY = graphql(`mutation ($id: ID!) { rotateLiveStreamKey(id: $id) {
  __typename ... on LiveStreamWithKey { streamKey } } }`);
const CREATE_UNRECORDED_FAILING = graphql(`
  mutation { createLiveStream(input: { title: "Unrecorded, failing", recording: false }) {
    __typename ... on LiveStreamWithKey { liveStream { id } } } }`);
const CREATE_STOP_START = graphql(`mutation { createLiveStream(input: { title: "Stop, start" }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id } } } }`);
const CREATE_GONE_BEFORE_LIVE = graphql(`
  mutation { createLiveStream(input: { title: "Gone before live", endOnUnpublish: false }) {
    __typename ... on LiveStreamWithKey { streamKey liveStream { id } } } }`);
const CREATE_METERED = graphql(`mutation { createLiveStream(input: { title: "Metered" }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id } } } }`);
const LIVE_USAGE = graphql(`{ liveUsage { month secondsUsed minutesLimit } }`);

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

describe("live streams over RTMP", () => {
  it("a stream that keeps no recording: its broadcast plays live, then its video ends DISCARDED with its media deleted, its cost kept and the ENDED webhook saying so", async () => {
    const created = await t.gql(CREATE_UNRECORDED);
    expect(created.errors).toBeUndefined();
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    expect(liveStream.recording).toBe(false);
    const endpoint = await t.gql(CREATE_ENDPOINT);
    expect(endpoint.errors).toBeUndefined();
    const endpointId = expectTypename(endpoint.data.createWebhookEndpoint, "CreateWebhookEndpointSuccess").endpoint.id;
    const ingestUrl = liveStream.ingestUrl.replace("localhost", "127.0.0.1");
    const usedBefore = (await t.app.services.db.liveUsage.findMany()).reduce((sum, u) => sum + u.seconds, 0);
    // On air until its broadcast has been seen LIVE (on a loaded machine a 4 s publisher had gone
    // before its broadcast turned LIVE): stopped below.
    const publisher = publishUntilStopped(`${ingestUrl}/${streamKey}`);
    const live = await waitFor(
      "the broadcast",
      () => streamState(t, liveStream.id),
      (s) => s.status === "LIVE",
    );
    const videoId = live.activeVideo!.id;
    // It plays live as any broadcast does, from media in storage.
    expect(await text(new URL(live.activeVideo!.playbackUrl!, t.url).href)).toContain("#EXTM3U");
    const hls = path.join(t.dataDir, "videos", videoId, "hls");
    expect((await readdir(hls)).length).toBeGreaterThan(0);
    const seconds = await publisher.stop();
    expect(await publisher.exited).toBe(0);
    const ended = await waitFor(
      "the end",
      () => streamState(t, liveStream.id),
      (s) => s.status === "ENDED",
    );
    expect(ended.lastError).toBeNull();
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "DISCARDED", playbackUrl: null, posterUrl: null });
    // Its rungs were on air, and say so (their segments), but name no playlist: it is deleted.
    const rungs = await t.gql(RUNGS, { id: videoId });
    expect(rungs.data.video!.variants.length).toBeGreaterThan(1);
    for (const rung of rungs.data.video!.variants) expect(rung).toMatchObject({ playlistUrl: null });
    expect(rungs.data.video!.variants.some((r) => r.segmentCount > 0)).toBe(true);
    // Its length is what its publisher sent.
    expect(Math.abs(ended.activeVideo!.duration! - seconds)).toBeLessThan(1.5);
    // Nothing of it is left in storage (no playlists, segments, poster or recording source).
    await expect(readdir(path.join(t.dataDir, "videos", videoId))).rejects.toThrow(/ENOENT/);
    expect((await fetch(new URL(live.activeVideo!.playbackUrl!, t.url))).status).toBe(404);
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
    expect(charge!.seconds).toBeGreaterThanOrEqual(ended.activeVideo!.duration!);
    const usage = await t.app.services.db.liveUsage.findMany();
    expect(usage.reduce((sum, u) => sum + u.seconds, 0) - usedBefore).toBeCloseTo(charge!.seconds, 6);
    // The CMS hears the end, with the video DISCARDED, and no video.ready.
    const deliveries = await t.app.services.db.webhookDelivery.findMany({ where: { endpointId } });
    expect(deliveries.map((d) => [d.eventType, (d.payload as any).data.video.status])).toEqual([
      ["live_stream.ended", "DISCARDED"],
    ]);
    // Recording on again: the stream's next broadcast keeps its recording.
    const updated = await t.gql(RECORD_AGAIN, { id: liveStream.id });
    expect(expectTypename(updated.data.updateLiveStream, "LiveStream").recording).toBe(true);
  });

  it("a broadcast whose video is canceled ends, and its publisher is cut off", async () => {
    const stream = await createLiveStreamWithKey(t, "Canceled show");
    const publisher = publish(`${stream.ingestUrl}/${stream.key}`, 30);
    const live = await waitFor(
      "the broadcast",
      () => streamState(t, stream.id),
      (s) => s.status === "LIVE",
    );
    const canceled = await t.gql(CANCEL_VIDEO, { id: live.activeVideo!.id });
    expect(canceled.data.cancelVideo.__typename).toBe("CancelVideoSuccess");
    const ended = await waitFor(
      "the end",
      () => streamState(t, stream.id),
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
    const stream = await createLiveStreamWithKey(t, "Refused");
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
      () => streamState(t, stream.id),
      (s) => s.lastError !== null,
      5000,
    );
    expect(said.lastError).toMatch(/not H\.264/);
    const rotated = await t.gql(ROTATE_KEY, { id: stream.id });
    const withKey = expectTypename(rotated.data.rotateLiveStreamKey, "LiveStreamWithKey");
    const newKey: string = withKey.streamKey;
    expect(newKey).not.toBe(stream.key);
    expect(newKey.endsWith(withKey.liveStream.streamKeyHint)).toBe(true);
    await refused(stream.key);
    await t.gql(DISABLE, { id: stream.id });
    await refused(newKey);
    const state = await streamState(t, stream.id);
    expect(state.status).toBe("IDLE");
    expect(state.activeVideo).toBeNull();
    expect(await t.app.services.db.video.count({ where: { liveStreamId: stream.id } })).toBe(0);

    // The stream's CMS data is checked as a video's, and changed for the next broadcasts.
    // The tag of 65 characters goes as a variable (it was written into the operation's text).
    const tooLong = await t.gql(CREATE_WITH_TAGS, { tags: ["t".repeat(65)] });
    expect(tooLong.data.createLiveStream).toEqual({ __typename: "ValidationError", field: "tags" });
    const updated = await t.gql(UPDATE_CMS_DATA, { id: stream.id });
    expect(updated.data.updateLiveStream).toEqual({
      __typename: "LiveStream",
      title: "Renamed",
      tags: ["late"],
      description: null,
      metadata: [],
    });

    // Another tenant: the stream is not there for it, to read, follow, rotate, enable or change.
    const other = `Bearer ${await tenantKeySecret(t.app.services.db, "live-other", ["videos:read", "videos:write"])}`;
    const read = await t.gql(READ_STREAMS, { id: stream.id }, other);
    expect(read.data).toEqual({ liveStream: null, liveStreams: [] });
    const rotate = await t.gql(ROTATE_KEY_OUTCOME, { id: stream.id }, other);
    expect(rotate.data.rotateLiveStreamKey.__typename).toBe("NotFoundError");
    const enable = await t.gql(ENABLE_OUTCOME, { id: stream.id }, other);
    expect(enable.data.setLiveStreamEnabled.__typename).toBe("NotFoundError");
    const change = await t.gql(RENAME_OUTCOME, { id: stream.id }, other);
    expect(change.data.updateLiveStream.__typename).toBe("NotFoundError");
    const follow = await new Promise<string>((resolve) => {
      t.wsClient(other).subscribe(
        { query: operationText(FOLLOW), variables: { id: stream.id } },
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
    expect((await streamState(t, stream.id)).disabled).toBe(true);
  });

  it("closes a connection whose RTMP message header declares more than the ingest allows, before allocating it", async () => {
    const stream = await createLiveStreamWithKey(t, "Hostile");
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
      const res = await limited.gql(CREATE_TITLED, { title });
      expect(res.errors).toBeUndefined();
      streams.push(expectTypename(res.data.createLiveStream, "LiveStreamWithKey").liveStream.id);
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
    const res = await limited.gql(ROTATED_KEY, { id });
    expect(res.errors).toBeUndefined();
    return expectTypename(res.data.rotateLiveStreamKey, "LiveStreamWithKey").streamKey;
  }
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
    const created = await quota.gql(CREATE_UNRECORDED_FAILING);
    expect(created.errors).toBeUndefined();
    const streamId = expectTypename(created.data.createLiveStream, "LiveStreamWithKey").liveStream.id;
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
    const created = await quota.gql(CREATE_STOP_START);
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
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

  it("a publisher that leaves while its broadcast's first segments are being announced: the stream stays DISCONNECTED, not LIVE with no one on air", async () => {
    const created = await quota.gql(CREATE_GONE_BEFORE_LIVE);
    const streamId: string = expectTypename(created.data.createLiveStream, "LiveStreamWithKey").liveStream.id;
    const db = quota.app.services.db;
    const live = quota.app.services.live;
    const begun = await live.sessions.begin(streamId, { width: 320, height: 240, fps: 25, hasAudio: true });
    if (!("feed" in begun)) throw new Error(`no broadcast: ${JSON.stringify(begun)}`);
    const job = await db.job.findFirstOrThrow({ where: { kind: "LIVE", video: { liveStreamId: streamId } } });
    const playable = { ...workerEnvelope(job.id)(3), type: "video.playable" as const, masterKey: "master.m3u8" };
    // The leave's write lands between the playable event's read of the stream (CONNECTED) and its
    // own write: the row is held while the event reads it, then moved to DISCONNECTED and let go.
    // Before, the event's write made it LIVE again (seen under CI load: a 3 s publisher gone before its first segment).
    let applied: Promise<void> | undefined;
    await db.$transaction(
      async (tx) => {
        await tx.$queryRaw`SELECT id FROM "LiveStream" WHERE id = ${streamId} FOR UPDATE`;
        applied = live.onJobEvent(playable, job.videoId);
        await waitFor(
          "the playable event to wait for the stream's row",
          // A backend of this test's database waiting for a lock (other files' databases wait too).
          () =>
            db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          (rows) => rows[0]!.n > 0,
          20_000,
        );
        await tx.liveStream.update({ where: { id: streamId }, data: { status: "DISCONNECTED" } });
      },
      { timeout: 30_000 },
    );
    await applied;
    expect((await db.liveStream.findUniqueOrThrow({ where: { id: streamId } })).status).toBe("DISCONNECTED");
    await live.sessions.end(streamId, begun.feed, null, true);
  });

  it("caps a broadcast at the time left, counts its end once, and refuses a publisher once the month's minutes are spent", async () => {
    const created = await quota.gql(CREATE_METERED);
    expect(created.errors).toBeUndefined();
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
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
    const usage = await quota.gql(LIVE_USAGE);
    expect(usage.errors).toBeUndefined();
    expect(usage.data.liveUsage).toMatchObject({ month: month.toISOString(), minutesLimit: 1 });
    // The 50 s, and the broadcast on air since it started.
    expect(usage.data.liveUsage.secondsUsed).toBeGreaterThanOrEqual(50);
    expect(usage.data.liveUsage.secondsUsed).toBeLessThan(55);
    // Its end (its video canceled) is added to the month once, however often it is applied.
    const canceled = await quota.gql(CANCEL_VIDEO, { id: job.videoId });
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
