import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RESYNC } from "../src/events/postgres-event-target.ts";
import { listenForEnds } from "../src/live/broadcast-ends.ts";
import { LiveFeed } from "../src/live/feed.ts";
import { createFeedSpools } from "../src/live/feed-spool.ts";
import { createLiveContext, type LiveDeps } from "../src/live/live-context.ts";
import { packet, publish, reader } from "./support/live-feed-packets.ts";

// A broadcast's spool (feed-spool.ts): what its feed holds unpublished, on disk, given back to the
// feed of the instance restarted after a crash.

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const spoolDir = async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "videograph-spool-test-"));
  dirs.push(dir);
  return dir;
};
/** The spool's writes are asynchronous (a write stream per file): they reach the disk within this. */
const flushed = () => new Promise((resolve) => setTimeout(resolve, 200));

/** A feed spooled under `dir` that received 12 s (keyframes every second) and whose encode published 9.5 s. */
async function crashedFeed(dir: string, videoId: string) {
  const spools = createFeedSpools(dir);
  const feed = new LiveFeed();
  feed.spoolTo(await spools.open(videoId));
  feed.push(packet("metadata", 0));
  feed.push(packet("video header", 0));
  publish(feed, 0, 12_000);
  feed.published(9.5);
  await flushed();
  return spools;
}

describe("a broadcast's feed spool", () => {
  it("holds what the encode has not published, on its media time, and gives it to the restarted instance's feed, which goes on after it", async () => {
    const dir = await spoolDir();
    const videoId = randomUUID();
    await crashedFeed(dir, videoId);
    // Files from a keyframe every 4 s: those wholly before the keyframe at or before 9.5 s are gone.
    expect(await readdir(path.join(dir, videoId))).toEqual(["8000.flv"]);

    // The process died; the instance restarted in its place reads the spool.
    const spooled = await createFeedSpools(dir).read(videoId);
    expect(spooled?.headers.map((h) => h.kind).sort()).toEqual(["metadata", "video header"]);
    expect(spooled?.media[0]).toMatchObject({ kind: "keyframe", dts: 8000 });
    expect(spooled?.media.at(-1)?.dts).toBe(11_900);
    const feed = new LiveFeed({ continuesBroadcast: true });
    expect(feed.restore(spooled!.headers, spooled!.media)).toEqual({ fromSeconds: 8, toSeconds: 11.9 });
    expect(feed.receivedSeconds).toBeCloseTo(11.9);

    // The run taking it over asks from where its published media ends: it gets it all from the keyframe before.
    const taker = reader();
    expect(feed.attach(taker.res, 9.5)).toBe(0);
    // The publisher back: its media follow one frame after what the spool held.
    feed.resume();
    publish(feed, 50_000, 50_300);
    const times = taker.mediaTags().map(([, dts]) => dts);
    expect(times.slice(0, 3)).toEqual([9000, 9100, 9200]);
    expect(times.slice(-4)).toEqual([11_900, 11_940, 12_040, 12_140]);
  });

  it("whose media begin after the run's point: the run's first picture lands at its point and the gap is counted missed", async () => {
    const dir = await spoolDir();
    const videoId = randomUUID();
    await crashedFeed(dir, videoId);
    const spooled = await createFeedSpools(dir).read(videoId);
    const feed = new LiveFeed({ continuesBroadcast: true });
    feed.restore(spooled!.headers, spooled!.media);
    const taker = reader();
    // Its encode had published only 5.9835 s: the spool, from 8 s, lacks 2.0165 s.
    expect(feed.attach(taker.res, 5.9835)).toBeCloseTo(2.0165);
    expect(taker.mediaTags()[0]).toEqual([9, 5983]);
    // Spooled again on the moved media time, in whole milliseconds, and read back after another crash.
    const spools = createFeedSpools(dir);
    feed.spoolTo(await spools.open(videoId));
    feed.resume();
    publish(feed, 50_000, 50_500);
    await flushed();
    const again = await spools.read(videoId);
    expect(again?.media[0]).toMatchObject({ kind: "keyframe", dts: 5984 });
    expect(again?.media.at(-1)?.dts).toBe(10_324);
  });

  it("restored, keeps all it was given past the feed's 30 s until its encode publishes it; a reader naming no point (a run's sample) misses nothing", async () => {
    const dir = await spoolDir();
    const videoId = randomUUID();
    const spools = createFeedSpools(dir);
    const first = new LiveFeed();
    first.spoolTo(await spools.open(videoId));
    first.push(packet("video header", 0));
    // An encode stuck at 0.5 s (storage out): memory keeps the last 30 s, the spool all 45 s.
    publish(first, 0, 45_000);
    first.published(0.5);
    await flushed();
    const spooled = await spools.read(videoId);
    const feed = new LiveFeed({ continuesBroadcast: true });
    expect(feed.restore(spooled!.headers, spooled!.media)).toEqual({ fromSeconds: 0, toSeconds: 44.9 });
    feed.resume();
    publish(feed, 90_000, 95_000);
    const sample = reader();
    expect(feed.attach(sample.res)).toBe(0);
    const run = reader();
    expect(feed.attach(run.res, 0.5)).toBe(0);
    expect(run.mediaTags()[0]).toEqual([9, 0]);
    expect(run.mediaTags().at(-1)).toEqual([9, 49_840]);
  });

  it("that fails to write is deleted, not left part-written; one not written for 30 minutes is swept", async () => {
    const dir = await spoolDir();
    const videoId = randomUUID();
    const spools = createFeedSpools(dir);
    const feed = new LiveFeed();
    feed.spoolTo(await spools.open(videoId));
    publish(feed, 0, 2000);
    await flushed();
    // Its directory goes from under it (as a write fails on a full disk): the next file cannot be made.
    await rm(path.join(dir, videoId), { recursive: true });
    publish(feed, 2000, 6000);
    await flushed();
    expect(await spools.read(videoId)).toBeNull();
    await expect(readdir(path.join(dir, videoId))).rejects.toThrow(/ENOENT/);

    const stale = path.join(dir, randomUUID());
    const fresh = path.join(dir, randomUUID());
    for (const at of [stale, fresh]) {
      await mkdir(at);
      await writeFile(path.join(at, "0.flv"), "");
    }
    const old = new Date(Date.now() - 31 * 60_000);
    await utimes(path.join(stale, "0.flv"), old, old);
    await utimes(stale, old, old);
    spools.startSweeping();
    await expect.poll(() => readdir(dir)).toEqual([path.basename(fresh)]);
    spools.stop();
  });

  it("of an ended broadcast goes at its end; the event fan-out's resync after a database restart (no video named) ends nothing and throws nothing", async () => {
    const dir = await spoolDir();
    const videoId = randomUUID();
    const target = new EventTarget();
    const spools = createFeedSpools(dir);
    const ctx = createLiveContext({ target, spools, holds: { release: async () => {} } } as unknown as LiveDeps);
    listenForEnds(ctx);
    const feed = new LiveFeed();
    feed.spoolTo(await spools.open(videoId));
    publish(feed, 0, 2000);
    await flushed();
    // Before, this listener's spool removal threw on it (a crash of the API at chaos's pg-restart).
    const thrown: unknown[] = [];
    const onUncaught = (err: unknown) => thrown.push(err);
    process.on("uncaughtException", onUncaught);
    try {
      for (const topic of ["liveBroadcastEnded", "liveBroadcastFinish"])
        target.dispatchEvent(new CustomEvent(topic, { detail: RESYNC }));
      await flushed();
    } finally {
      process.off("uncaughtException", onUncaught);
    }
    expect(thrown).toEqual([]);
    expect(await readdir(path.join(dir, videoId))).toEqual(["0.flv"]);
    target.dispatchEvent(new CustomEvent("liveBroadcastEnded", { detail: { videoId } }));
    await expect.poll(() => readdir(dir)).toEqual([]);
  });
});
