import { access, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parsePlaylist } from "../src/shared/hls-playlists.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { queryDatabase } from "./support/db.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { killPublishersOnAir, publish, publishUntilStopped } from "./support/live-publisher.ts";
import { workersReported } from "./support/live-slots.ts";
import { FULL_DISK_RETRY_MS } from "../render-worker/handlers/live-full-disk.ts";
import { type BreakableProxy, startBreakableProxy } from "./support/cuttable-proxy.ts";
import { canMountTmpfs, fillDisk, fillInodes, keepDiskFull, mountSmallDisk } from "./support/tmpfs.ts";

// A full disk pauses a broadcast, it does not destroy it (docs/live.md "A full disk"). Real parts:
// the API and its worker process, an ffmpeg publisher over RTMP, and the media storage
// (DATA_DIR/videos) on a small tmpfs filled to a real ENOSPC and freed again.

if (!canMountTmpfs) console.warn("live-full-disk: SKIPPED, mounting a tmpfs needs root");

/**
 * Past the storage tests' 6 s fill and 8 s with the held feed broken, short enough for the tests of
 * space that never comes back.
 */
const PATIENCE_SECONDS = 12;

// One app for the file: its media storage (DATA_DIR/videos) on a small tmpfs, and its worker's temp
// dir on another, larger than the free space under which a segment cut short counts as the disk's
// fault (64 MiB), its inodes bounded too, so that filling them leaves no room for a run's own dir
// (fillInodes). Each test fills only the disk it is about.
let t: TestApp;
let disk: { unmount(): Promise<void> } | null = null;
let workDisk: { unmount(): Promise<void> } | null = null;
let workRoot: string;
/** The feed's address the worker reads (LIVE_FEED_URL), in front of the API: its reads can be broken. */
let feedAddress: BreakableProxy | null = null;
const sql = (text: string, values: unknown[] = []) => queryDatabase(t.database.url, text, values);
beforeAll(async () => {
  if (!canMountTmpfs) return;
  feedAddress = await startBreakableProxy();
  workRoot = await mkdtemp(path.join(tmpdir(), "videograph-live-workdir-"));
  workDisk = await mountSmallDisk(workRoot, 96 * 1024 * 1024, { inodes: 4096 });
  t = await startTestApp({
    env: {
      LIVE_SEGMENT_SECONDS: "1",
      LIVE_STALL_SECONDS: "5",
      LIVE_RECONNECT_GRACE_SECONDS: "10",
      LIVE_FEED_URL: feedAddress.url,
    },
    workerEnv: {
      LIVE_PASSTHROUGH: "true",
      WORKER_TMP_DIR: workRoot,
      LIVE_FULL_DISK_PATIENCE_SECONDS: String(PATIENCE_SECONDS),
    },
  });
  feedAddress.forwardTo(t.url);
  disk = await mountSmallDisk(path.join(t.dataDir, "videos"), 16 * 1024 * 1024);
  await workersReported(t);
});
afterAll(async () => {
  await disk?.unmount();
  await t?.stop();
  await workDisk?.unmount();
  await feedAddress?.stop();
});
afterEach(killPublishersOnAir);

// A new stream (each test names its own).
const CREATE_STREAM = graphql(`mutation ($title: String!) { createLiveStream(input: { title: $title }) {
  __typename ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } } }`);
const STREAM = graphql(
  `query ($id: ID!) { liveStream(id: $id) { status lastError activeVideo { id status duration } } }`,
);
const STREAM_PLAYABLE = graphql(`
  query ($id: ID!) { liveStream(id: $id) { status lastError activeVideo { id status duration playable } } }`);
const STREAM_VIDEO = graphql(`query ($id: ID!) { liveStream(id: $id) { status activeVideo { id status duration } } }`);
const STREAM_ERROR = graphql(`query ($id: ID!) { liveStream(id: $id) { status lastError } }`);
const STREAM_VIDEO_ID = graphql(`query ($id: ID!) { liveStream(id: $id) { status activeVideo { id } } }`);
const STREAM_VIDEO_ERROR = graphql(`
  query ($id: ID!) { liveStream(id: $id) { status activeVideo { id status duration error } } }`);

const segmentUris = (playlist: string) => playlist.split("\n").filter((l) => l.startsWith("seg_"));

/** The stream's lastError for a recording cut short by a disk that stayed full. */
const DISK_STAYED_FULL = "the server's disk stayed full: the recording holds only what was published before it filled";

/** Every rung's playlist under `hls` ends (`#EXT-X-ENDLIST`): a finished recording, not a live stream that stopped. */
async function expectEveryPlaylistEnded(hls: string): Promise<void> {
  const rungs = (await readdir(hls, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  expect(rungs.length).toBeGreaterThanOrEqual(2);
  for (const rung of rungs) {
    const text = await readFile(path.join(hls, rung, "index.m3u8"), "utf8");
    expect(text.endsWith("#EXT-X-ENDLIST\n"), `${rung}: ${text.slice(-80)}`).toBe(true);
  }
}

describe.skipIf(!canMountTmpfs)("ENOSPC during a broadcast (a tmpfs; needs root)", () => {
  it("storage full for 6 s mid-broadcast: the broadcast waits, goes on once there is room, and its one video is READY with everything sent", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Full disk" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
    const state = async () => (await t.gql(STREAM, { id: liveStream.id })).data.liveStream!;
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const videoId = (await state()).activeVideo!.id;
    const topPlaylist = () =>
      readFile(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);

    const filler = await fillDisk(path.join(t.dataDir, "videos"));
    await new Promise((resolve) => setTimeout(resolve, 6000));
    // Paused, not failed: the stream is on air, its video still being made, its publisher kept.
    const paused = await state();
    expect(paused).toMatchObject({ status: "LIVE", activeVideo: { id: videoId, status: "PROCESSING" } });
    expect(publisher.process.exitCode).toBeNull();
    const before = segmentUris(await topPlaylist());

    await rm(filler);
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000, interval: 250 })
      .toBeGreaterThan(before.length + 2);
    const sent = await publisher.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    const ended = await state();
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });
    // The feed kept what the pause did not publish: the recording holds all that was sent.
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1.5);
    const playlist = await topPlaylist();
    expect(segmentUris(playlist).slice(0, before.length)).toEqual(before);
    expect(playlist).toContain("#EXT-X-DISCONTINUITY");
    expect(playlist).toContain("#EXT-X-ENDLIST");
    const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
    expect(videos.rows).toEqual([{ status: "READY" }]);
  }, 120_000);

  it("storage full for good mid-broadcast: after LIVE_FULL_DISK_PATIENCE_SECONDS it ends READY with what was published, its playlists ended, and the stream takes its next publisher", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Never room again" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const url = `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`;
    const publisher = publishUntilStopped(url);
    const state = async () => (await t.gql(STREAM_PLAYABLE, { id: liveStream.id })).data.liveStream!;
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const videoId = (await state()).activeVideo!.id;
    const hls = path.join(t.dataDir, "videos", videoId, "hls");
    const topPlaylist = () => readFile(path.join(hls, "240p", "index.m3u8"), "utf8").catch(() => "");
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);
    // What an encode's start costs on this host now (ingest, the job, ffmpeg, two segments published):
    // the slack the end's bound allows for a try after the patience and the end's own work.
    const startupSeconds = (Date.now() - publisher.startedAt) / 1000;
    // The room the broadcast keeps to end its playlists: in storage, never served.
    const reserve = path.join(t.dataDir, "videos", videoId, "live", "disk-reserve");
    const reserveBytes = () =>
      stat(reserve).then(
        (s) => s.size,
        () => 0,
      );
    await expect.poll(reserveBytes, { timeout: 10_000 }).toBeGreaterThan(1024 * 1024);
    expect((await fetch(`${t.url}/media/videos/${videoId}/live/disk-reserve`)).status).toBe(404);

    const filler = await fillDisk(path.join(t.dataDir, "videos"));
    const filledAt = Date.now();
    try {
      await expect.poll(async () => (await state()).status, { timeout: 60_000, interval: 250 }).toBe("ENDED");
      // It waited for space first, LIVE_FULL_DISK_PATIENCE_SECONDS (12 s here, not the default 20 s)
      // from its first failed try (after the fill), then ended by itself: its publisher was cut off.
      // The bound: the patience, one retry's interval, and twice what an encode's start took here (a
      // fixed bound fails on a loaded host); a run that ignored the patience (the default 20 s, or
      // storage's 300 s wait) still fails it.
      const waited = (Date.now() - filledAt) / 1000;
      expect(waited).toBeGreaterThan(PATIENCE_SECONDS - 0.5);
      expect(waited).toBeLessThan(PATIENCE_SECONDS + FULL_DISK_RETRY_MS / 1000 + 2 * startupSeconds);
      expect(await publisher.exited).not.toBe(0);
      const ended = await state();
      expect(ended).toMatchObject({
        lastError: DISK_STAYED_FULL,
        activeVideo: { id: videoId, status: "READY", playable: true },
      });
      // The recording is what was published before the disk filled: every listed segment is there.
      const playlist = await topPlaylist();
      const listed = segmentUris(playlist);
      expect(listed.length).toBeGreaterThanOrEqual(2);
      await Promise.all(listed.map((uri) => access(path.join(hls, "240p", uri))));
      await access(path.join(hls, "master.m3u8"));
      // A finished recording, not a live stream that stopped: every rung's playlist ended, with the
      // room the broadcast kept from its start, let go (emptied) at its end.
      await expectEveryPlaylistEnded(hls);
      await access(reserve);
      expect(await reserveBytes()).toBe(0);
      // What it lacks: no source file (so no createClip of it) and no storyboard, not made later.
      const made = await readdir(path.join(t.dataDir, "videos", videoId));
      expect(made.filter((folder) => folder === "source" || folder === "storyboard")).toEqual([]);
      const seconds = (parsePlaylist(playlist).segments ?? []).reduce((sum, s) => sum + s.duration, 0);
      expect(Math.abs(ended.activeVideo!.duration! - seconds)).toBeLessThan(0.1);
      const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
      expect(videos.rows).toEqual([{ status: "READY" }]);
    } finally {
      await rm(filler);
    }
    // Once there is room, the stream takes its next publisher: a new broadcast.
    const next = publishUntilStopped(url);
    await expect
      .poll(async () => ((s) => `${s.status} ${s.activeVideo!.id === videoId ? "same" : "new"}`)(await state()), {
        timeout: 30_000,
        interval: 200,
      })
      .toBe("LIVE new");
    await next.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
  }, 150_000);

  it("the held feed's connection broken while storage is full (as its API instance's death breaks it): not the broadcast's end; it waits on and goes on once there is room", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Feed broken while full" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
    const state = async () => (await t.gql(STREAM_VIDEO, { id: liveStream.id })).data.liveStream!;
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const videoId = (await state()).activeVideo!.id;
    const topPlaylist = () =>
      readFile(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);

    const filler = await fillDisk(path.join(t.dataDir, "videos"));
    try {
      // Paused, its feed held; then every read of the feed's address is cut off, the address still
      // answering (HEAD: the broadcast goes on), as an API instance restarted in place answers.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      feedAddress!.breakConnections();
      await new Promise((resolve) => setTimeout(resolve, 4000));
      // A broken hold taken for the broadcast's end would have ended it by now: READY, its publisher cut off.
      expect(await state()).toMatchObject({ status: "LIVE", activeVideo: { id: videoId, status: "PROCESSING" } });
      expect(publisher.process.exitCode).toBeNull();
    } finally {
      await rm(filler);
    }
    const before = segmentUris(await topPlaylist()).length;
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000, interval: 250 })
      .toBeGreaterThan(before + 2);
    const sent = await publisher.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    const ended = await state();
    expect(ended.activeVideo).toMatchObject({ id: videoId, status: "READY" });
    expect(ended.activeVideo!.duration).toBeGreaterThan(sent - 1.5);
    const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
    expect(videos.rows).toEqual([{ status: "READY" }]);
  }, 120_000);

  it("a publisher that keeps reconnecting while storage is full is refused with the reason and makes no video; once there is room it goes on air", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Refused while full" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const url = `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`;
    const state = async () => (await t.gql(STREAM_ERROR, { id: liveStream.id })).data.liveStream!;
    const videos = async () =>
      (await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id])).rows;
    const filler = await fillDisk(path.join(t.dataDir, "videos"));
    try {
      // An encoder that reconnects at once, as OBS's auto-reconnect does.
      for (let i = 0; i < 3; i++) await publish(url, 10).exited;
      expect(await state()).toEqual({
        status: "IDLE",
        lastError: "the server's storage is full: no broadcast can start until there is room",
      });
      expect(await videos()).toEqual([]);
    } finally {
      await rm(filler);
    }
    const publisher = publishUntilStopped(url);
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    await publisher.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    expect(await videos()).toEqual([{ status: "READY" }]);
  }, 120_000);

  it("a stream left LIVE whose broadcast has ended (its end's write lost) takes its publisher again", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Left on air" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const url = `${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`;
    const state = async () => (await t.gql(STREAM_VIDEO_ID, { id: liveStream.id })).data.liveStream!;
    const status = async () => (await state()).status;
    const first = publishUntilStopped(url);
    await expect.poll(status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const firstVideo = (await state()).activeVideo!.id;
    await first.stop();
    await expect.poll(status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    // As a database out of space left it: the broadcast's job ended, the stream's move to ENDED lost.
    await sql(`UPDATE "LiveStream" SET status = 'LIVE' WHERE id = $1`, [liveStream.id]);
    const second = publishUntilStopped(url);
    await expect
      .poll(async () => ((s) => `${s.status} ${s.activeVideo!.id === firstVideo ? "first" : "next"}`)(await state()), {
        timeout: 30_000,
        interval: 200,
      })
      .toBe("LIVE next");
    await second.stop();
    await expect.poll(status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
    expect(videos.rows).toEqual([{ status: "READY" }, { status: "READY" }]);
  }, 120_000);
});

describe.skipIf(!canMountTmpfs)("the worker's work dir full for a moment (a tmpfs; needs root)", () => {
  // Filled for 2 s, then freed before the publisher sees the cut segment, as the chaos run's
  // disk-full fault does to a tmpfs that other writers share.
  it("a segment cut short by a full work dir, seen once there is room again: the broadcast waits and goes on, one video READY with everything sent", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Work dir full" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
    const state = async () => (await t.gql(STREAM_VIDEO_ERROR, { id: liveStream.id })).data.liveStream!;
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const videoId = (await state()).activeVideo!.id;
    const topPlaylist = () =>
      readFile(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);

    const filler = await fillDisk(workRoot, "work-dir-filler");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await rm(filler);
    const before = segmentUris(await topPlaylist()).length;
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000, interval: 250 })
      .toBeGreaterThan(before + 2);
    // LIVE again once the API has applied the resumed encode's events, which may come after its segments are stored.
    await expect
      .poll(state, { timeout: 10_000, interval: 250 })
      .toMatchObject({ status: "LIVE", activeVideo: { id: videoId, status: "PROCESSING" } });
    const sent = await publisher.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    expect((await state()).activeVideo).toMatchObject({ id: videoId, status: "READY" });
    expect((await state()).activeVideo!.duration).toBeGreaterThan(sent - 1.5);
    const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
    expect(videos.rows).toEqual([{ status: "READY" }]);
  }, 120_000);

  it("a work dir too full for the run's own dir when the broadcast's run starts: it waits, holding the feed, and goes on once there is room, one video READY with everything sent", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Work dir full at start" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const state = async () => (await t.gql(STREAM_VIDEO_ERROR, { id: liveStream.id })).data.liveStream!;
    // No byte and no inode left: the run's dir cannot be made (a tmpfs full of bytes still makes one).
    const bytes = await fillDisk(workRoot, "work-dir-filler");
    const inodes = await fillInodes(workRoot);
    let publisher: ReturnType<typeof publishUntilStopped>;
    try {
      publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
      await expect
        .poll(async () => (await state()).activeVideo?.status, { timeout: 30_000, interval: 200 })
        .toBe("PROCESSING");
      // Past the run's start and a few of its tries (2 s apart), within its patience: still on air.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      // A run that fails making its dir fails the video ("ENOSPC: no space left on device, mkdtemp").
      expect((await state()).activeVideo).toMatchObject({ status: "PROCESSING", error: null });
      expect(publisher.process.exitCode).toBeNull();
    } finally {
      await rm(inodes, { recursive: true, force: true });
      await rm(bytes, { force: true });
    }
    const videoId = (await state()).activeVideo!.id;
    const topPlaylist = () =>
      readFile(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 30_000, interval: 250 })
      .toBeGreaterThanOrEqual(3);
    // LIVE once the API has applied the run's first segments' event, which may come after they are stored.
    await expect
      .poll(state, { timeout: 10_000, interval: 250 })
      .toMatchObject({ status: "LIVE", activeVideo: { id: videoId, status: "PROCESSING" } });
    const sent = await publisher.stop();
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 250 }).toBe("ENDED");
    expect((await state()).activeVideo).toMatchObject({ id: videoId, status: "READY" });
    // The feed kept what the publisher sent while the run waited.
    expect((await state()).activeVideo!.duration).toBeGreaterThan(sent - 1.5);
    const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
    expect(videos.rows).toEqual([{ status: "READY" }]);
  }, 120_000);

  it("a work dir that fills for good mid-broadcast (ffmpeg's writes fail, its lists empty): paused, then after the patience it ends READY with what was published, its playlists ended, its publisher cut off, and lastError says why", async () => {
    const created = await t.gql(CREATE_STREAM, { title: "Work dir full for good" });
    const { streamKey, liveStream } = expectTypename(created.data.createLiveStream, "LiveStreamWithKey");
    const publisher = publishUntilStopped(`${liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${streamKey}`);
    const state = async () => (await t.gql(STREAM_PLAYABLE, { id: liveStream.id })).data.liveStream!;
    await expect.poll(async () => (await state()).status, { timeout: 30_000, interval: 200 }).toBe("LIVE");
    const videoId = (await state()).activeVideo!.id;
    const topPlaylist = () =>
      readFile(path.join(t.dataDir, "videos", videoId, "hls", "240p", "index.m3u8"), "utf8").catch(() => "");
    await expect
      .poll(async () => segmentUris(await topPlaylist()).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);
    const startupSeconds = (Date.now() - publisher.startedAt) / 1000;

    // Another writer takes every byte the run lets go of (its segments, emptied at each pause).
    const full = await keepDiskFull(workRoot);
    const filledAt = Date.now();
    try {
      // ffmpeg's failed writes leave its lists empty: unless the publisher sees that, the broadcast
      // stalls on air for as long as its publisher sends.
      await expect
        .poll(async () => (await state()).status, {
          timeout: (PATIENCE_SECONDS + FULL_DISK_RETRY_MS / 1000 + 2 * startupSeconds + 10) * 1000,
          interval: 250,
        })
        .toBe("ENDED");
      const waited = (Date.now() - filledAt) / 1000;
      expect(waited).toBeGreaterThan(PATIENCE_SECONDS - 0.5);
      expect(await publisher.exited).not.toBe(0);
    } finally {
      await full.stop();
    }
    const ended = await state();
    expect(ended).toMatchObject({
      lastError: DISK_STAYED_FULL,
      activeVideo: { id: videoId, status: "READY", playable: true },
    });
    // The recording is what was published before the work dir filled, every playlist ended with the
    // room the run kept in its work dir (before, they stayed open: the ended playlists, written in
    // the work dir first, found no room, and viewers' players waited for more).
    const hls = path.join(t.dataDir, "videos", videoId, "hls");
    const listed = segmentUris(await topPlaylist());
    expect(listed.length).toBeGreaterThanOrEqual(2);
    await Promise.all(listed.map((uri) => access(path.join(hls, "240p", uri))));
    await expectEveryPlaylistEnded(hls);
    const seconds = (parsePlaylist(await topPlaylist()).segments ?? []).reduce((sum, s) => sum + s.duration, 0);
    expect(Math.abs(ended.activeVideo!.duration! - seconds)).toBeLessThan(0.1);
    const videos = await sql(`SELECT status FROM "Video" WHERE "liveStreamId" = $1`, [liveStream.id]);
    expect(videos.rows).toEqual([{ status: "READY" }]);
  }, 150_000);
});
