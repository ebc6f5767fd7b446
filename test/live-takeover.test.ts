import { readFile } from "node:fs/promises";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { liveFeedReplayBytes } from "../src/metrics.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { killPublishersOnAir, publishUntilStopped } from "./support/live-publisher.ts";
import { startWorkerProcess, stopAllProcesses } from "./support/processes.ts";

// A broadcast whose encoding worker dies (kill -9) is taken over by another run, which goes on with
// the same playlists: numbering continues, a discontinuity is tagged, and the video ends READY.
// Real processes: the API, two worker processes serving `live`, an ffmpeg publisher over RTMP.

let t: TestApp;
const sql = async (text: string, values: unknown[] = []) => {
  const client = new pg.Client({ connectionString: t.database.url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
};
beforeAll(async () => {
  t = await startTestApp({
    worker: false,
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "3",
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      // The transport's own redelivery of a dead run's job comes after this: too late for the test.
      JOB_STALL_SECONDS: "60",
    },
  });
});
afterAll(async () => {
  await stopAllProcesses();
  await t?.stop();
});
afterEach(killPublishersOnAir);

/** The top rung's playlist as storage holds it (the publisher's 320x240: the 240p rung), or "". */
async function topPlaylist(videoId: string): Promise<string> {
  const file = path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8");
  return readFile(file, "utf8").catch(() => "");
}

const segmentUris = (playlist: string) => playlist.split("\n").filter((l) => l.startsWith("seg_"));

describe("a live broadcast outlives the process encoding it", () => {
  it("kill -9 of its worker: another run takes it over and goes on with the same playlists, and the recording is READY", async () => {
    const workerEnv = {
      DATABASE_URL: t.database.url,
      DATA_DIR: t.dataDir,
      WORKER_CAPABILITIES: "cpu,live",
      LIVE_PASSTHROUGH: "true",
      PROGRESS_INTERVAL_MS: "250",
      HEARTBEAT_INTERVAL_SECONDS: "2",
    };
    const first = await startWorkerProcess("live-worker-first", workerEnv);
    const created = await t.gql(
      `mutation { createLiveStream(input: { title: "Outlives its worker" }) { ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`,
    );
    const { streamKey, liveStream } = created.data.createLiveStream;
    const publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
    const state = async () =>
      (
        await t.gql(`query ($id: ID!) { liveStream(id: $id) { status activeVideo { id status duration } } }`, {
          id: liveStream.id,
        })
      ).data.liveStream;
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const videoId = (await state()).activeVideo.id;
    await expect
      .poll(async () => segmentUris(await topPlaylist(videoId)).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(3);

    // What the feed holds for a run that would take over: what is not published yet, a few seconds.
    const held = (await liveFeedReplayBytes.get()).values[0]?.value ?? 0;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(1024 * 1024);

    await first.stop("SIGKILL");
    const before = segmentUris(await topPlaylist(videoId));
    const killedAt = Date.now();
    await startWorkerProcess("live-worker-second", workerEnv);
    // The second run lists its own segments after the first run's, under new names: the API saw the
    // feed lose its reader and queued the job again, long before the transport would have noticed
    // the dead run (its claim lapses after JOB_STALL_SECONDS, 60 s here).
    await expect
      .poll(async () => segmentUris(await topPlaylist(videoId)).length, { timeout: 25_000, interval: 250 })
      .toBeGreaterThan(before.length + 2);
    const resumedSeconds = (Date.now() - killedAt) / 1000;
    expect(resumedSeconds).toBeLessThan(25);
    const runs = await sql(
      `SELECT r."workerId", r.status FROM "JobRun" r JOIN "Job" j ON j.id = r."jobId" WHERE j."videoId" = $1 ORDER BY r."startedAt"`,
      [videoId],
    );
    expect(runs.rows.map((r) => [r.workerId, r.status])).toEqual([
      ["live-worker-first", "ABANDONED"],
      ["live-worker-second", "RUNNING"],
    ]);
    const sent = await publisher.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    const ended = await state();
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });

    const playlist = await topPlaylist(videoId);
    const uris = segmentUris(playlist);
    // What viewers saw stays listed first, as it was; the numbers only go up.
    expect(uris.slice(0, before.length)).toEqual(before);
    const numbers = uris.map((u) => Number(u.slice(4, -3)));
    expect(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!)).toBe(true);
    // One discontinuity, right before the second run's first segment; the recording ends.
    const lines = playlist.split("\n");
    const tagged = lines.flatMap((l, i) => (l === "#EXT-X-DISCONTINUITY" ? [lines[i + 2]] : []));
    expect(tagged).toEqual([uris[before.length]]);
    expect(playlist).toContain("#EXT-X-ENDLIST");
    // Nothing published is lost, nor what the publisher sent meanwhile: the feed kept what the dead
    // run had not published and the taker started there (at most a group of pictures again).
    expect(ended.activeVideo.duration).toBeGreaterThan(sent - 1);
    expect(ended.activeVideo.duration).toBeLessThan(sent + 1.5);
  }, 150_000);
});
