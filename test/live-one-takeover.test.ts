import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { queryDatabase } from "./support/db.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { ffmpegStandIn, slowLiveFfmpeg } from "./support/ffmpeg-stand-in.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { durationOf, encoderOf, topPlaylist, topSegments } from "./support/live-api.ts";
import { workerReported } from "./support/live-slots.ts";
import { startWorkerProcess, stopAllProcesses } from "./support/processes.ts";

// A broadcast's encode taken over leaves one delivery of its job (issue #66): the messages of the
// runs taken over are withdrawn from the transport, whether their worker was killed (its claim
// lapses) or handed its run back (SIGTERM). Real processes: the API, worker processes serving
// `live`, an ffmpeg publisher over RTMP.

const CREATE_STREAM = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`);
const STREAM = graphql(
  `query ($id: ID!) { liveStream(id: $id) { status lastError activeVideo { id status duration } } }`,
);

let t: TestApp;
const sql = (text: string, values: unknown[] = []) => queryDatabase(t.database.url, text, values);
beforeAll(async () => {
  t = await startTestApp({
    worker: false,
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      // A dead run's claim lapses after this, and pg-boss delivers its message again: within the test.
      JOB_STALL_SECONDS: "10",
    },
  });
});
afterAll(async () => {
  await stopAllProcesses();
  await t?.stop();
});
afterEach(killPublishersOnAir);
// A worker a failed test left running would take the next test's broadcast over.
afterEach(stopAllProcesses);

const workerEnv = (extra: Record<string, string> = {}) => ({
  DATABASE_URL: t.database.url,
  DATA_DIR: t.dataDir,
  WORKER_CAPABILITIES: "cpu,live",
  LIVE_PASSTHROUGH: "true",
  PROGRESS_INTERVAL_MS: "250",
  HEARTBEAT_INTERVAL_SECONDS: "2",
  SHUTDOWN_GRACE_SECONDS: "1",
  ...extra,
});

/**
 * A publisher on air on a new stream (`publishing`: `publish`'s `readrate` and `gopSeconds`), once its
 * broadcast is LIVE with two segments published.
 */
async function broadcast(title: string, publishing: { readrate?: number; gopSeconds?: number } = {}) {
  const created = await t.gql(CREATE_STREAM, { title });
  const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
  const publisher = publishUntilStopped(
    `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`,
    publishing,
  );
  const state = async () => (await t.gql(STREAM, { id: liveStream.id })).data.liveStream!;
  await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
  const videoId: string = (await state()).activeVideo!.id;
  await expect
    .poll(async () => (await topSegments(t.dataDir, videoId)).length, { timeout: 30_000 })
    .toBeGreaterThanOrEqual(2);
  return { videoId, publisher, state };
}

/** The broadcast's runs in the order they started: worker, status and the transport's message. */
const runsOf = async (videoId: string) =>
  (
    await sql(
      `SELECT r."workerId", r.status, r."deliveryMessageId" FROM "JobRun" r JOIN "Job" j ON j.id = r."jobId"
       WHERE j."videoId" = $1 ORDER BY r."startedAt"`,
      [videoId],
    )
  ).rows as { workerId: string; status: string; deliveryMessageId: string | null }[];

/** pg-boss's state of a job message. */
const messageState = async (id: string) =>
  (await sql(`SELECT state FROM pgboss.job WHERE id = $1`, [id])).rows[0]?.state as string | undefined;

/** The publisher stopped, the recording READY with every second sent. */
async function expectWholeRecording(b: Awaited<ReturnType<typeof broadcast>>): Promise<void> {
  const sent = await b.publisher.stop();
  await expect.poll(async () => (await b.state()).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
  const ended = await b.state();
  expect(ended.activeVideo).toMatchObject({ id: b.videoId, status: "READY" });
  expect(await topPlaylist(t.dataDir, b.videoId)).toContain("#EXT-X-ENDLIST");
  expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1);
  expect(ended.activeVideo!.duration).toBeLessThan(sent + 1.5);
}

describe("one delivery per takeover of a live job", () => {
  it("kill -9 of its worker: the API's takeover is the one run; the dead run's message is withdrawn, not delivered again when its claim lapses", async () => {
    const first = await startWorkerProcess("one-kill-first", workerEnv());
    await workerReported(t.database, "one-kill-first");
    const b = await broadcast("One takeover after a kill");
    await first.stop("SIGKILL");
    const killedAt = Date.now();
    const second = await startWorkerProcess("one-kill-second", workerEnv());
    const before = (await topSegments(t.dataDir, b.videoId)).length;
    await expect
      .poll(async () => (await topSegments(t.dataDir, b.videoId)).length, { timeout: 30_000, interval: 250 })
      .toBeGreaterThan(before + 1);
    // Past the dead run's claim (JOB_STALL_SECONDS, 10 s, and pg-boss's check every 4 s): without the
    // withdrawal its message came back and a third run started beside the second (stopped as a duplicate).
    const lapsed = killedAt + 20_000;
    while (Date.now() < lapsed) await new Promise((r) => setTimeout(r, 500));
    const runs = await runsOf(b.videoId);
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([
      ["one-kill-first", "ABANDONED"],
      ["one-kill-second", "RUNNING"],
    ]);
    expect(runs[0]!.deliveryMessageId).not.toBe(runs[1]!.deliveryMessageId);
    expect(await messageState(runs[0]!.deliveryMessageId!)).toBe("cancelled");
    await expectWholeRecording(b);
    await second.stop("SIGTERM");
  }, 180_000);

  it("SIGTERM of its worker: the run handed back is not delivered again beside the API's takeover", async () => {
    const first = await startWorkerProcess("one-term-first", workerEnv());
    await workerReported(t.database, "one-term-first");
    const b = await broadcast("One takeover after a SIGTERM");
    expect(await first.stop("SIGTERM")).toBe(0);
    // The takeover (3 s without a reader) has queued the job again before a worker is there to take
    // either message: without the withdrawal the next worker took both, the hand-back's and the takeover's.
    await expect
      .poll(
        async () =>
          (await sql(`SELECT status FROM "Job" WHERE "videoId" = $1 AND kind = 'LIVE'`, [b.videoId])).rows[0]?.status,
        { timeout: 20_000, interval: 250 },
      )
      .toBe("QUEUED");
    const second = await startWorkerProcess("one-term-second", workerEnv());
    const before = (await topSegments(t.dataDir, b.videoId)).length;
    await expect
      .poll(async () => (await topSegments(t.dataDir, b.videoId)).length, { timeout: 30_000, interval: 250 })
      .toBeGreaterThan(before + 1);
    await new Promise((r) => setTimeout(r, 3000));
    const runs = await runsOf(b.videoId);
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([
      ["one-term-first", "ABANDONED"],
      ["one-term-second", "RUNNING"],
    ]);
    expect(await messageState(runs[0]!.deliveryMessageId!)).toBe("cancelled");
    await expectWholeRecording(b);
    await second.stop("SIGTERM");
  }, 180_000);
});

/**
 * The recording's remux into its source file (its inputs in the work dir's `highest/`) starts a
 * minute late: a run that has published every segment and ended its playlists, its end not sent yet.
 */
const lateRecordingFfmpeg = () =>
  ffmpegStandIn(
    "late-recording-ffmpeg",
    "the live recording's remux starts a minute late",
    `*"/highest/"*`,
    `sleep 60; exec ffmpeg "$@"`,
  );

describe("a broadcast's encode killed after its publisher stopped", () => {
  it("kill -9 of its worker with the encode behind: a run takes it over with the tail the ended feed kept, and the recording holds every second sent", async () => {
    const slow = await startWorkerProcess("tail-slow", workerEnv({ FFMPEG_PATH: await slowLiveFfmpeg() }));
    await workerReported(t.database, "tail-slow");
    const b = await broadcast("The tail after the stop");
    await new Promise((r) => setTimeout(r, 4000));
    const sent = await b.publisher.stop();
    await slow.stop("SIGKILL");
    // The encode was behind: what it had published lacks seconds the feed had received.
    const published = durationOf(await topPlaylist(t.dataDir, b.videoId));
    expect(published).toBeLessThan(sent - 2);
    const second = await startWorkerProcess("tail-second", workerEnv());
    await expect.poll(async () => (await b.state()).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
    const ended = await b.state();
    expect(ended.activeVideo).toMatchObject({ id: b.videoId, status: "READY" });
    // Before, the ended feed was gone (GET 404, HEAD 410) and nothing took over: the recording was
    // what the killed run had published, READY and short.
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1);
    expect(ended.activeVideo!.duration).toBeLessThan(sent + 1.5);
    // The API's takeover, not the transport's redelivery of the dead run's message, ran the tail.
    const runs = await runsOf(b.videoId);
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([
      ["tail-slow", "ABANDONED"],
      ["tail-second", "SUCCEEDED"],
    ]);
    expect(runs[0]!.deliveryMessageId).not.toBe(runs[1]!.deliveryMessageId);
    await second.stop("SIGTERM");
  }, 180_000);

  it("kill -9 of its ffmpeg alone with the encode behind: the same run starts a new encode from the tail the ended feed kept, and the recording holds every second sent", async () => {
    const slow = await startWorkerProcess(
      "tail-ffmpeg",
      workerEnv({ FFMPEG_PATH: await slowLiveFfmpeg({ once: true }) }),
    );
    await workerReported(t.database, "tail-ffmpeg");
    const b = await broadcast("The tail after the stop, ffmpeg killed");
    await new Promise((r) => setTimeout(r, 4000));
    const sent = await b.publisher.stop();
    const encoder = encoderOf(b.videoId);
    expect(encoder).toBeDefined();
    process.kill(encoder!, "SIGKILL");
    // The encode was behind: what it had published lacks seconds the feed had received.
    const published = durationOf(await topPlaylist(t.dataDir, b.videoId));
    expect(published).toBeLessThan(sent - 2);
    await expect.poll(async () => (await b.state()).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
    const ended = await b.state();
    expect(ended.activeVideo).toMatchObject({ id: b.videoId, status: "READY" });
    // Before, the run took the ended feed for the end of the broadcast and ended it with what it had
    // published: READY and short.
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1);
    expect(ended.activeVideo!.duration).toBeLessThan(sent + 1.5);
    // The same run, not a takeover: its worker lived.
    expect((await runsOf(b.videoId)).map((r) => [r.workerId, r.status])).toEqual([["tail-ffmpeg", "SUCCEEDED"]]);
    await slow.stop("SIGTERM");
  }, 180_000);
  it("kill -9 of its worker after it published everything, before its end was sent: the run taking over publishes nothing again", async () => {
    const late = await startWorkerProcess("whole-late-end", workerEnv({ FFMPEG_PATH: await lateRecordingFfmpeg() }));
    await workerReported(t.database, "whole-late-end");
    // A keyframe every 5 s; stopped 2.5 s or more past the one at 5 s, so the last group of pictures
    // holds seconds the run taking over could record again.
    const b = await broadcast("Everything published", { gopSeconds: 5 });
    await expect.poll(() => b.publisher.sent(), { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(7.5);
    const sent = await b.publisher.stop();
    // Every segment published and the playlists ended; the recording's end not sent (its remux waits).
    await expect
      .poll(async () => await topPlaylist(t.dataDir, b.videoId), { timeout: 30_000, interval: 250 })
      .toContain("#EXT-X-ENDLIST");
    const published = await topPlaylist(t.dataDir, b.videoId);
    expect((await b.state()).activeVideo!.status).not.toBe("READY");
    await late.stop("SIGKILL");
    const second = await startWorkerProcess("whole-second", workerEnv());
    await expect.poll(async () => (await b.state()).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
    const ended = await b.state();
    expect(ended.activeVideo).toMatchObject({ id: b.videoId, status: "READY" });
    // The run taking over ended the recording with what was published, and added nothing to it.
    // Read whole without its trim, the feed's tail (from the keyframe at 5 s) was encoded again: 10.36 s
    // recorded of 7.68 s sent, its last seconds twice after a discontinuity.
    expect(await topPlaylist(t.dataDir, b.videoId)).toBe(published);
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1);
    expect(ended.activeVideo!.duration).toBeLessThan(sent + 0.5);
    const runs = await runsOf(b.videoId);
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([
      ["whole-late-end", "ABANDONED"],
      ["whole-second", "SUCCEEDED"],
    ]);
    await second.stop("SIGTERM");
  }, 180_000);
});

describe("a broadcast taken over after its feed let go of unpublished media", () => {
  it("kill -9 of its worker with the encode far behind: the stream's lastError says how many seconds the recording lacks, and the recording lacks them", async () => {
    // The feed keeps 30 s of media its encode has not published. An encode at half pace behind a
    // publisher at 4 times real time (an encoder emptying its buffer after its uplink stalled)
    // passes that in about 9 s, where a publisher in real time needs over 30 s of an outage.
    const slow = await startWorkerProcess("lacks-slow", workerEnv({ FFMPEG_PATH: await slowLiveFfmpeg() }));
    await workerReported(t.database, "lacks-slow");
    const b = await broadcast("Lacks seconds", { readrate: 4 });
    await expect.poll(() => b.publisher.sent(), { timeout: 30_000, interval: 250 }).toBeGreaterThan(45);
    await slow.stop("SIGKILL");
    expect((await b.state()).lastError).toBeNull();
    const second = await startWorkerProcess("lacks-second", workerEnv());
    const lacking = /^the recording lacks (\d+\.\d) s of the broadcast/;
    await expect
      .poll(async () => (await b.state()).lastError ?? "", { timeout: 30_000, interval: 250 })
      .toMatch(lacking);
    // The takeover's run publishing: every reader it attached (its sample, its encode) has said what it missed.
    const before = (await topSegments(t.dataDir, b.videoId)).length;
    await expect
      .poll(async () => (await topSegments(t.dataDir, b.videoId)).length, { timeout: 30_000, interval: 250 })
      .toBeGreaterThan(before + 2);
    const sent = await b.publisher.stop();
    await expect.poll(async () => (await b.state()).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
    const ended = await b.state();
    expect(ended.activeVideo).toMatchObject({ id: b.videoId, status: "READY" });
    // It says what the recording lacks, and it stays said once the broadcast has ended (before, the
    // publisher's stop cleared it): the seconds sent less the recording's, within a group of
    // pictures (a second) and what the dead run published after its last progress report (at half
    // pace, a fraction of a second).
    expect(ended.lastError).toMatch(lacking);
    const lacks = Number(lacking.exec(ended.lastError!)![1]);
    expect(lacks).toBeGreaterThan(5);
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - lacks - 1.5);
    expect(ended.activeVideo!.duration).toBeLessThan(sent - lacks + 1.5);
    await second.stop("SIGTERM");
  }, 180_000);
});
