import { beforeAll, describe, expect, it } from "vitest";
import {
  createLiveStreamWithKey,
  expectOneRecording,
  liveDeployment,
  topPlaylist,
  topSeconds,
  topSegments,
} from "./support/live-api.ts";
import { workerReported } from "./support/live-slots.ts";

// A deploy (SIGTERM) of the API holding a broadcast, as `npm start` runs it: its own worker encoding
// the broadcast, an ffmpeg publisher over RTMP that comes back to the restarted API (an encoder's
// reconnect), or does not. Then two API instances behind a balancer with worker processes of their
// own: the publisher's reconnect reaches the other instance.

const live = liveDeployment("live-deploy");

/** An API as `npm start` runs it (its own worker unless `env` says otherwise), on the test's database and data dir. */
const startApi = (name: string, env: Record<string, string> = {}) =>
  live.startApi(name, { LOCAL_WORKER: "true", LIVE_RTMP_PORT: "0", ...env });

/** SIGTERM, as a deploy stops an instance: it exits 0 within `seconds`. */
async function deployStop(api: { stop(signal: NodeJS.Signals): Promise<number | null> }, seconds = 15) {
  const at = Date.now();
  expect(await api.stop("SIGTERM")).toBe(0);
  // Before, the local worker waited its 30 s grace with the feed open, and the video FAILED.
  expect((Date.now() - at) / 1000).toBeLessThan(seconds);
}

describe("a deploy of the API holding a broadcast", () => {
  /**
   * The restarted API the first test leaves running, which the next deploys over instead of starting
   * one of its own (an instance and its worker cost seconds of CPU to start); null when none is.
   */
  let restarted: Awaited<ReturnType<typeof startApi>> | null = null;

  it("SIGTERM hands the broadcast on: the publisher's reconnect to the restarted API continues the same video", async () => {
    const first = await startApi("api-deploy-first");
    const s = await createLiveStreamWithKey(first, "Deployed");
    const { publisher, videoId } = await first.publish(s.id, s.key);
    await deployStop(first);
    // Cut off, like every publisher of a stopping instance; its broadcast waits for it, queued.
    expect(await publisher.exited).not.toBe(0);
    const before = await topSegments(live.dataDir, videoId);
    const [waiting] = await live.sql(
      `SELECT j.status, j."runAfter", v.status AS video, s.status AS stream FROM "Job" j JOIN "Video" v ON v.id = j."videoId" JOIN "LiveStream" s ON s."activeVideoId" = v.id WHERE j."videoId" = $1`,
      [videoId],
    );
    expect(waiting).toMatchObject({ status: "QUEUED", video: "PROCESSING", stream: "DISCONNECTED" });
    expect(waiting.runAfter).not.toBeNull();

    // The restarted API: the publisher comes back and the same broadcast goes on.
    const second = await startApi("api-deploy-second");
    const back = await second.publish(s.id, s.key);
    expect(back.videoId).toBe(videoId);
    await expect
      .poll(async () => (await topSegments(live.dataDir, videoId)).length, { timeout: 20_000 })
      .toBeGreaterThan(before.length + 2);
    const sent = await back.publisher.stop();
    await expect.poll(async () => (await second.stream(s.id)).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    const ended = await second.stream(s.id);
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });
    // A deploy loses nothing, so nothing is said to be lacking (recording-gaps.ts compares what the
    // stopped instance received with what was published).
    expect(ended.lastError).toBeNull();
    expect(await live.sql(`SELECT id FROM "Video" WHERE "liveStreamId" = $1`, [s.id])).toHaveLength(1);
    const segments = await topSegments(live.dataDir, videoId);
    expect(segments.slice(0, before.length)).toEqual(before);
    const playlist = await topPlaylist(live.dataDir, videoId);
    expect(playlist.split("\n").filter((l) => l === "#EXT-X-DISCONTINUITY")).toHaveLength(1);
    // What the first API had published and all the second publisher sent.
    expect(ended.activeVideo!.duration!).toBeGreaterThan(before.length + sent - 1.5);
    restarted = second;
  }, 180_000);

  it("a publisher that does not come back within the window: the broadcast ends READY with what was published", async () => {
    const first = restarted ?? (await startApi("api-deploy-alone"));
    restarted = null;
    const s = await createLiveStreamWithKey(first, "Not back", { reconnectWindowSeconds: 2 });
    const { videoId } = await first.publish(s.id, s.key);
    await deployStop(first);
    const before = await topSegments(live.dataDir, videoId);
    // Another instance (the restarted one) finds the broadcast due once its window has passed.
    const next = await startApi("api-deploy-after");
    await expect.poll(async () => (await next.stream(s.id)).status, { timeout: 45_000, interval: 250 }).toBe("ENDED");
    const ended = await next.stream(s.id);
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });
    expect(await topSegments(live.dataDir, videoId)).toEqual(before);
    expect(ended.activeVideo!.duration!).toBeGreaterThan(before.length - 1);
    await deployStop(next);
  }, 180_000);
});

describe("two API instances behind a balancer, on one database, with worker processes of their own", () => {
  // A holds the broadcasts (their publishers reach it first) and applies no worker events; B applies
  // them, so what A's feeds hear of their encodes (how much is published) comes through the fan-out.
  const shared = {
    LOCAL_WORKER: "false",
    SIGNING_SECRET: "a-secret-both-instances-and-workers-share-0",
    JOB_STALL_SECONDS: "60",
  };
  let a: Awaited<ReturnType<typeof startApi>>;
  let b: Awaited<ReturnType<typeof startApi>>;
  const workers = new Map<string, Awaited<ReturnType<typeof live.startWorker>>>();
  beforeAll(async () => {
    a = await startApi("api-balanced-a", { ...shared, INGEST_EVENTS: "false" });
    b = await startApi("api-balanced-b", shared);
    for (const id of ["live-worker-1", "live-worker-2"]) {
      workers.set(id, await live.startWorker(id, { JOB_STALL_SECONDS: shared.JOB_STALL_SECONDS }));
      await workerReported(live.db, id);
    }
  }, 120_000);

  /** The worker whose run holds `videoId`'s LIVE job now. */
  const encodingWorker = async (videoId: string) =>
    (
      await live.sql(
        `SELECT r."workerId" FROM "JobRun" r JOIN "Job" j ON j.id = r."jobId" WHERE j."videoId" = $1 AND r.status = 'RUNNING'`,
        [videoId],
      )
    ).map((r) => r.workerId as string);

  it("kill -9 of the worker encoding a broadcast held by A: its feed on A loses its reader and the other worker takes it over", async () => {
    const s = await createLiveStreamWithKey(a, "Balanced, worker dies");
    const { publisher, videoId } = await a.publish(s.id, s.key);
    const [dying] = await encodingWorker(videoId);
    expect(workers.has(dying!)).toBe(true);
    await workers.get(dying!)!.stop("SIGKILL");
    workers.delete(dying!);
    const before = {
      segments: await topSegments(live.dataDir, videoId),
      seconds: await topSeconds(live.dataDir, videoId),
    };
    const [survivor] = workers.keys();
    // Taken over well before the transport would notice the dead run (JOB_STALL_SECONDS: 60 s).
    await expect
      .poll(async () => (await topSegments(live.dataDir, videoId)).length, { timeout: 25_000, interval: 250 })
      .toBeGreaterThan(before.segments.length + 2);
    expect(await encodingWorker(videoId)).toEqual([survivor]);
    const { ended, sent } = await expectOneRecording(
      b,
      { dataDir: live.dataDir, databaseUrl: live.db.url },
      s.id,
      videoId,
      before,
      publisher,
    );
    // The publisher never left: the recording holds all it sent (the feed kept what was not published;
    // the new run starts at the keyframe before it, so a group of pictures may be there twice).
    expect(ended.activeVideo!.duration!, `sent ${sent} s`).toBeGreaterThan(sent - 1);
    expect(ended.activeVideo!.duration!, `sent ${sent} s`).toBeLessThan(sent + 1.5);
    expect(ended.lastError).toBeNull();
  }, 150_000);

  it("SIGTERM of A holding a broadcast: the publisher's reconnect to B continues the same video", async () => {
    const s = await createLiveStreamWithKey(a, "Balanced deploy");
    const { publisher, videoId } = await a.publish(s.id, s.key);
    await deployStop(a);
    expect(await publisher.exited).not.toBe(0);
    const before = {
      segments: await topSegments(live.dataDir, videoId),
      seconds: await topSeconds(live.dataDir, videoId),
    };
    expect((await b.stream(s.id)).status).toBe("DISCONNECTED");
    // The balancer sends the reconnecting publisher to the instance still up.
    const back = await b.publish(s.id, s.key);
    expect(back.videoId).toBe(videoId);
    await expect
      .poll(async () => (await topSegments(live.dataDir, videoId)).length, { timeout: 20_000 })
      .toBeGreaterThan(before.segments.length + 2);
    const { ended, sent } = await expectOneRecording(
      b,
      { dataDir: live.dataDir, databaseUrl: live.db.url },
      s.id,
      videoId,
      before,
      back.publisher,
    );
    // What A had published, then all the reconnected publisher sent.
    expect(
      Math.abs(ended.activeVideo!.duration! - (before.seconds + sent)),
      `${before.seconds} s + ${sent} s`,
    ).toBeLessThan(1);
    expect(ended.lastError).toBeNull();
    await deployStop(b);
  }, 180_000);
});
