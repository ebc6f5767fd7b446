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
import { slowLiveFfmpeg } from "./support/ffmpeg-stand-in.ts";
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
/** The file's workers, which the last test stops. */
const workers: Awaited<ReturnType<typeof live.startWorker>>[] = [];
beforeAll(async () => {
  for (const id of WORKERS) workers.push(await live.startWorker(id, { JOB_STALL_SECONDS: shared.JOB_STALL_SECONDS }));
}, 120_000);

/** An API instance on the test's database and data dir, on the given ports (a restart takes the same). */
const startApi = (name: string, ports: { http: number; rtmp: number }) => startApiOf(WORKERS, name, ports);

/** startApi, once the workers `workerIds` have reported through it; `env` beside the file's. */
async function startApiOf(
  workerIds: string[],
  name: string,
  ports: { http: number; rtmp: number },
  env: Record<string, string> = {},
) {
  const api = await live.startApi(name, {
    ...shared,
    PORT: String(ports.http),
    LIVE_RTMP_PORT: String(ports.rtmp),
    ...env,
  });
  // The workers' heartbeats reach the database through an API instance: live slots count them.
  for (const id of workerIds) await workerReported(live.db, id);
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
    // The instance still up says the stream lost its publisher: nobody holds its broadcast any more
    // (before, it said LIVE until the publisher was back). Its reconnect then adopts it from there.
    const status = async () => (await live.sql(`SELECT status FROM "LiveStream" WHERE id = $1`, [s.id]))[0]?.status;
    await expect.poll(status, { timeout: 15_000, interval: 250 }).toBe("DISCONNECTED");
    before.segments = await topSegments(live.dataDir, videoId);
    before.seconds = await topSeconds(live.dataDir, videoId);

    // The balancer sends the reconnecting publisher to the instance still up.
    const back = await b.publish(s.id, s.key);
    expect(back.videoId).toBe(videoId);
    await expectRecordingOfWhatWasSent(b, s, videoId, before, back.publisher);
    await b.stop("SIGTERM");
  }, 240_000);
});

describe("a crash of the API instance and the worker of a broadcast whose encode is behind", () => {
  it("on the same disk, the restarted instance's spool gives back what died with the process; on another machine, what died is said and lacked", async () => {
    // Last in the file: its own workers only, whose encode reads its feed at half pace, so what the
    // API has received and the encode has not published grows (a loaded machine's encode).
    for (const worker of workers) await worker.stop("SIGTERM");
    const slowWorker = async (id: string) =>
      live.startWorker(id, { JOB_STALL_SECONDS: shared.JOB_STALL_SECONDS, FFMPEG_PATH: await slowLiveFfmpeg() });
    /** Until what `publisher` sent (after `sentBefore` s of the broadcast) is 8 s ahead of what was published. */
    const behind = (publisher: { sent(): number }, sentBefore: number) =>
      expect
        .poll(async () => sentBefore + publisher.sent() - (await topSeconds(live.dataDir, videoId)), {
          timeout: 60_000,
          interval: 250,
        })
        .toBeGreaterThan(8);
    const at = await ports();
    let slow = await slowWorker("crash-slow-1");
    const first = await startApiOf(["crash-slow-1"], "api-spool-first", at);
    const s = await createLiveStreamWithKey(first, "Crashed behind", { reconnectWindowSeconds: 30 });
    const { publisher, videoId } = await first.publish(s.id, s.key, 2);
    await behind(publisher, 0);
    // Both processes go (kill -9): neither the feed's memory nor the run's ffmpeg keeps what was
    // received and not published. The machine stays: its disk, the spool on it, too.
    await Promise.all([first.stop("SIGKILL"), slow.stop("SIGKILL")]);
    expect(await publisher.exited).not.toBe(0);
    const sentFirst = publisher.sent();

    // Restarted in their place, as a supervisor would: the spool gives the run taking over what the
    // dead instance had received, so nothing is lacking and the published media pass what was sent.
    slow = await slowWorker("crash-slow-2");
    const second = await startApiOf(["crash-slow-2"], "api-spool-second", at);
    const again = await second.publish(s.id, s.key, 2);
    expect(again.videoId).toBe(videoId);
    await expect
      .poll(() => topSeconds(live.dataDir, videoId), { timeout: 90_000, interval: 250 })
      .toBeGreaterThan(sentFirst - 1);
    expect((await second.stream(s.id)).lastError).toBeNull();
    await behind(again.publisher, sentFirst);

    // Then the machine is lost, its disk with it: the instance taking over on another has no spool.
    await Promise.all([second.stop("SIGKILL"), slow.stop("SIGKILL")]);
    expect(await again.publisher.exited).not.toBe(0);
    const sentBefore = sentFirst + again.publisher.sent();
    const publishedBefore = await topSeconds(live.dataDir, videoId);
    await live.startWorker("crash-after", { JOB_STALL_SECONDS: shared.JOB_STALL_SECONDS });
    const third = await startApiOf(["crash-after"], "api-spool-elsewhere", at, {
      LIVE_SPOOL_DIR: `${live.dataDir}/another-machine-spool`,
    });
    const back = await third.publish(s.id, s.key);
    expect(back.videoId).toBe(videoId);
    const lacking = /^the recording lacks (\d+\.\d) s of the broadcast: the API instance holding it stopped/;
    const sent = await back.publisher.stop();
    await expect.poll(async () => (await third.stream(s.id)).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
    const ended = await third.stream(s.id);
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });
    // Said, and still said once it ended (before: ENDED with no lastError, the seconds gone unsaid).
    expect(ended.lastError).toMatch(lacking);
    const lacks = Number(lacking.exec(ended.lastError!)![1]);
    // What the dead instance had received beyond what was published, less up to its last write's
    // interval (2 s), a group of pictures, and what the first crash's publisher sent that never
    // arrived (in flight; up to a second): a lower bound of what the recording lacks.
    const lost = sentBefore - publishedBefore;
    expect(lacks, `sent ${sentBefore} s, published ${publishedBefore} s before the crash`).toBeGreaterThan(lost - 4.5);
    expect(lacks).toBeLessThan(lost + 1.5);
    // All the rest, the first crash's unpublished seconds included (a second's slack for each crash).
    const duration: number = ended.activeVideo!.duration!;
    expect(duration).toBeGreaterThan(sentBefore + sent - lacks - 5.5);
    expect(duration).toBeLessThan(sentBefore + sent - lacks + 1.5);
    await third.stop("SIGTERM");
  }, 300_000);
});
