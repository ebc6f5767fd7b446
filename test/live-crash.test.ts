import { beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/free-port.ts";
import {
  createLiveStreamWithKey,
  expectOneRecording,
  liveDeployment,
  topPlaylist,
  topSeconds,
  topSegments,
} from "./support/live-api.ts";
import { workerReported } from "./support/live-slots.ts";

// A crash (SIGKILL) of the API instance holding a broadcast, with worker processes of their own
// reading its feed over HTTP: the feed's connection breaks, the run holds the broadcast, and the
// publisher's reconnect (to the instance restarted on the same ports, or through another instance)
// continues the same video.

const live = liveDeployment("live-crash");
const WORKERS = ["crash-worker-1", "crash-worker-2"];
const shared = {
  LOCAL_WORKER: "false",
  SIGNING_SECRET: "a-secret-the-instances-and-workers-share-0",
  JOB_STALL_SECONDS: "60",
};
beforeAll(async () => {
  for (const id of WORKERS) await live.startWorker(id, { JOB_STALL_SECONDS: shared.JOB_STALL_SECONDS });
}, 120_000);

/** An API instance on the test's database and data dir, on the given ports (a restart takes the same). */
async function startApi(name: string, ports: { http: number; rtmp: number }) {
  const api = await live.startApi(name, {
    ...shared,
    PORT: String(ports.http),
    LIVE_RTMP_PORT: String(ports.rtmp),
  });
  // The workers' heartbeats reach the database through an API instance: live slots count them.
  for (const id of WORKERS) await workerReported(live.db, id);
  return api;
}

const ports = async () => ({ http: await freePort(), rtmp: await freePort() });

/**
 * The crash's aftermath before the publisher is back: the broadcast is held, not ended (the
 * video PROCESSING, its playlists open, no second video).
 */
async function expectHeld(videoId: string, streamId: string) {
  // Longer than the run took to end the broadcast before (0.7 s in chaos; its recording's remux here).
  await new Promise((resolve) => setTimeout(resolve, 4000));
  const [video] = await live.sql(`SELECT status FROM "Video" WHERE id = $1`, [videoId]);
  expect(video?.status).toBe("PROCESSING");
  expect(await topPlaylist(live.dataDir, videoId)).not.toContain("#EXT-X-ENDLIST");
  expect(await live.sql(`SELECT id FROM "Video" WHERE "liveStreamId" = $1`, [streamId])).toHaveLength(1);
}

/** One recording of what was sent while connected (expectOneRecording), within the chaos run's allowance. */
async function expectRecordingOfWhatWasSent(
  api: Awaited<ReturnType<typeof startApi>>,
  s: { id: string },
  videoId: string,
  before: { segments: string[]; seconds: number; sent: number },
  publisher: { stop(): Promise<number> },
) {
  const { ended, sent } = await expectOneRecording(
    api,
    { dataDir: live.dataDir, databaseUrl: live.db.url },
    s.id,
    videoId,
    before,
    publisher,
  );
  // What was sent while connected, within the chaos run's allowance: 1 s, and 3 s for the connection
  // cut off (what the killed instance had received and not published: a segment and a progress interval).
  const duration: number = ended.activeVideo!.duration!;
  const total = before.sent + sent;
  expect(duration, `published ${before.seconds} s before; sent ${before.sent} s + ${sent} s`).toBeGreaterThan(
    Math.max(before.seconds + sent - 1, total - 4),
  );
  expect(duration, `sent ${before.sent} s + ${sent} s`).toBeLessThan(total + 1.5);
}

describe("a crash (SIGKILL) of the API instance holding a broadcast", () => {
  /**
   * The restarted instance the first test leaves running, which the next crashes instead of starting
   * one of its own (an instance costs seconds of CPU to start); null when none is.
   */
  let restarted: Awaited<ReturnType<typeof startApi>> | null = null;

  it("restarted on the same ports: the publisher's reconnect continues the same video, READY with what was sent", async () => {
    const at = await ports();
    const first = await startApi("api-crash-first", at);
    const s = await createLiveStreamWithKey(first, "Crashed", { reconnectWindowSeconds: 20 });
    const { publisher, videoId } = await first.publish(s.id, s.key);
    await first.stop("SIGKILL");
    expect(await publisher.exited).not.toBe(0);
    const before = { segments: await topSegments(live.dataDir, videoId), seconds: 0, sent: publisher.sent() };
    await expectHeld(videoId, s.id);
    before.segments = await topSegments(live.dataDir, videoId);
    before.seconds = await topSeconds(live.dataDir, videoId);

    // The instance comes back on its ports, as a supervisor restarts it; so does the encoder.
    const second = await startApi("api-crash-second", at);
    const back = await second.publish(s.id, s.key);
    expect(back.videoId).toBe(videoId);
    await expectRecordingOfWhatWasSent(second, s, videoId, before, back.publisher);
    restarted = second;
  }, 240_000);

  it("one of two instances killed: the publisher back through the other continues the same video", async () => {
    const a = restarted ?? (await startApi("api-crash-a", await ports()));
    restarted = null;
    const b = await startApi("api-crash-b", await ports());
    const s = await createLiveStreamWithKey(a, "Crashed, balanced", { reconnectWindowSeconds: 20 });
    const { publisher, videoId } = await a.publish(s.id, s.key);
    await a.stop("SIGKILL");
    expect(await publisher.exited).not.toBe(0);
    const before = { segments: [] as string[], seconds: 0, sent: publisher.sent() };
    await expectHeld(videoId, s.id);
    before.segments = await topSegments(live.dataDir, videoId);
    before.seconds = await topSeconds(live.dataDir, videoId);

    // The balancer sends the reconnecting publisher to the instance still up.
    const back = await b.publish(s.id, s.key);
    expect(back.videoId).toBe(videoId);
    await expectRecordingOfWhatWasSent(b, s, videoId, before, back.publisher);
    await b.stop("SIGTERM");
  }, 240_000);
});
