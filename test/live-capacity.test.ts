import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { killPublishersOnAir, publish, publishUntilStopped } from "./support/live-publisher.ts";
import { standInLiveWorker, workersReported } from "./support/live-slots.ts";

// Live capacity (docs/live.md "Capacity"): broadcasts take the workers' live slots, beside their
// upload slots; a publisher that finds none free is refused at connect, with the reason on its stream.

const CREATE_STREAM = graphql(`mutation { createLiveStream(input: { title: "Capacity" }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`);
const STREAM = graphql(`query ($id: ID!) { liveStream(id: $id) { id status lastError activeVideo { id status } } }`);
const INPUT = { width: 320, height: 240, fps: 25, hasAudio: true };

async function tenantAuth(t: TestApp, tenant: string): Promise<string> {
  return `Bearer ${await tenantKeySecret(t.app.services.db, tenant, ["videos:read", "videos:write"])}`;
}

async function createStream(t: TestApp, authorization: string) {
  const res = await t.gql(CREATE_STREAM, {}, authorization);
  expect(res.errors).toBeUndefined();
  const { streamKey, liveStream } = expectTypename(res.data.createLiveStream, "LiveStreamWithKey");
  // Published on loopback only: the URL says localhost, the publisher connects to 127.0.0.1.
  return {
    authorization,
    id: liveStream.id,
    key: streamKey,
    rtmpUrl: `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`,
  };
}

describe("two tenants' broadcasts at once", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      env: { LIVE_SEGMENT_SECONDS: "1", LIVE_STALL_SECONDS: "3", LIVE_RECONNECT_GRACE_SECONDS: "5" },
      // One worker, one upload slot (as the tests' workers all have), two live slots.
      workerEnv: { WORKER_LIVE_SLOTS: "2", LIVE_PASSTHROUGH: "true" },
    });
    await workersReported(t);
  });
  afterAll(async () => {
    await t?.stop();
  });
  afterEach(killPublishersOnAir);

  /** The stream as its tenant reads it. */
  async function streamState(stream: { id: string; authorization: string }) {
    const res = await t.gql(STREAM, { id: stream.id }, stream.authorization);
    expect(res.errors).toBeUndefined();
    return res.data.liveStream!;
  }
  const statusOf = async (stream: { id: string; authorization: string }) => (await streamState(stream)).status;

  it("both go LIVE and end READY on one worker with two live slots; a third publisher is refused at connect, its stream saying why", async () => {
    const [a, b, c] = await Promise.all(["cap-a", "cap-b", "cap-c"].map((name) => tenantAuth(t, name)));
    const streamA = await createStream(t, a!);
    const streamB = await createStream(t, b!);
    const streamC = await createStream(t, c!);
    const publishers = [publishUntilStopped(streamA.rtmpUrl), publishUntilStopped(streamB.rtmpUrl)];
    // Before, the second sat QUEUED behind the first (one live job per worker), its stream CONNECTED.
    for (const stream of [streamA, streamB])
      await expect.poll(() => statusOf(stream), { timeout: 40_000, interval: 250 }).toBe("LIVE");

    // Every slot is taken: the third tenant's publisher is refused before its broadcast starts.
    const third = publish(streamC.rtmpUrl, 10);
    await expect
      .poll(async () => (await streamState(streamC)).lastError, { timeout: 20_000, interval: 250 })
      .toBe("no live capacity: every live slot is taken (2 of 2)");
    third.process.kill("SIGKILL");
    const refused = await streamState(streamC);
    expect(refused).toMatchObject({ status: "IDLE", activeVideo: null });
    const db = t.app.services.db;
    expect(await db.video.count({ where: { liveStreamId: streamC.id } })).toBe(0);

    for (const publisher of publishers) await publisher.stop();
    for (const stream of [streamA, streamB]) {
      await expect.poll(() => statusOf(stream), { timeout: 30_000, interval: 250 }).toBe("ENDED");
      expect((await streamState(stream)).activeVideo!.status).toBe("READY");
    }
  });
});

describe("live slots shared fairly, and counted once across API instances", () => {
  let first: TestApp;
  let second: TestApp;
  beforeAll(async () => {
    first = await startTestApp({ worker: false });
    second = await startTestApp({ worker: false, instanceOf: first });
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
  });

  /** A stream of a new tenant `tenant`, its publisher authorized (its key checked) on `app`. */
  async function authorizedStream(app: TestApp, tenant: string): Promise<string> {
    const stream = await createStream(app, await tenantAuth(app, tenant));
    expect(await app.app.services.live.sessions.authorize(stream.key)).toEqual({ streamId: stream.id });
    return stream.id;
  }
  const lastError = async (streamId: string) =>
    (await first.app.services.db.liveStream.findUniqueOrThrow({ where: { id: streamId } })).lastError;

  it("a tenant on air may not take the last free slot while another tenant has none on air; the other may", async () => {
    const db = first.app.services.db;
    await standInLiveWorker(db, 2);
    const { sessions } = first.app.services.live;
    const a1 = await authorizedStream(first, "fair-a");
    const a2 = await createStream(first, await tenantAuth(first, "fair-a"));
    const b1 = await authorizedStream(first, "fair-b");
    expect("feed" in (await sessions.begin(a1, INPUT))).toBe(true);
    const reason =
      "no live capacity for another broadcast of this tenant: the last free live slot of 2 is kept for a tenant with none on air";
    // Refused at connect, as cheaply as a tenant over its limit, and when its broadcast would start.
    expect(await sessions.authorize(a2.key)).toEqual({ refused: reason });
    expect(await lastError(a2.id)).toBe(reason);
    expect(await sessions.begin(a2.id, INPUT)).toEqual({ refused: reason });
    expect(await db.video.count({ where: { liveStreamId: a2.id } })).toBe(0);
    expect("feed" in (await sessions.begin(b1, INPUT))).toBe(true);
    expect(await db.job.count({ where: { kind: "LIVE", status: "QUEUED" } })).toBe(2);
  });

  it("two API instances starting broadcasts for the last free slot at the same instant: one starts, the other is refused", async () => {
    const db = first.app.services.db;
    // Two of three slots are held (the test above): one is free.
    await standInLiveWorker(db, 3);
    const c1 = await authorizedStream(first, "race-c");
    const d1 = await authorizedStream(second, "race-d");
    const begun = await Promise.all([
      first.app.services.live.sessions.begin(c1, INPUT),
      second.app.services.live.sessions.begin(d1, INPUT),
    ]);
    expect(begun.filter((b) => "feed" in b)).toHaveLength(1);
    expect(begun.filter((b) => "refused" in b)).toEqual([
      { refused: "no live capacity: every live slot is taken (3 of 3)" },
    ]);
    expect(await db.job.count({ where: { kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } } })).toBe(3);
    expect(await db.video.count({ where: { source: "LIVE" } })).toBe(3);
  });

  it("with no worker serving live alive, a publisher is refused at connect with the reason", async () => {
    const db = first.app.services.db;
    await db.worker.deleteMany({});
    const stream = await createStream(first, await tenantAuth(first, "nobody-serves"));
    const reason = "no live capacity: no worker serving live broadcasts is alive";
    expect(await first.app.services.live.sessions.authorize(stream.key)).toEqual({ refused: reason });
    expect(await lastError(stream.id)).toBe(reason);
  });
});
