import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../src/db/client.ts";
import { watchReaders } from "../src/live/broadcast-handovers.ts";
import { LiveFeed } from "../src/live/feed.ts";
import { createLiveContext, type LiveDeps } from "../src/live/live-context.ts";
import { noGaps } from "../src/live/recording-gaps.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

// The API instance holding a broadcast's feed queues its encode again when no run reads the feed
// for 3 s (broadcast-handovers.ts): not while a run it just dispatched has yet to ask.

const LIVE_INPUT = {
  feedUrl: "http://127.0.0.1:9/live/v1/feeds/v.flv",
  input: { width: 320, height: 240, fps: 25, hasAudio: false },
  options: { segmentSeconds: 1, maxDurationSeconds: 600, record: true, reconnectWindowSeconds: 30 },
};

describe("a broadcast's feed with no reader", () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, { max: 2 });
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  /** A RUNNING LIVE job dispatched a minute ago, its feed held here with no reader, and the watch on it. */
  async function readerlessBroadcast() {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "live", status: "PROCESSING", sourceKey: "live" },
    });
    const job = await db.job.create({
      data: {
        videoId: video.id,
        kind: "LIVE",
        status: "RUNNING",
        input: LIVE_INPUT,
        dispatchedAt: new Date(Date.now() - 60_000),
      },
    });
    const ctx = createLiveContext({
      db,
      dispatcher: { kick: () => {} },
      stopRun: async () => {},
      withdrawJob: async () => {},
    } as unknown as LiveDeps);
    const feed = new LiveFeed();
    const held = { feed, streamId: "s", startedAt: Date.now(), reconnectWindowSeconds: 30, endOnUnpublish: true };
    ctx.feeds.set(video.id, { ...held, gaps: noGaps() });
    const status = async () => (await db.job.findUniqueOrThrow({ where: { id: job.id } })).status;
    return { job, feed, status, watch: () => watchReaders(ctx, video.id, feed, true) };
  }

  it("whose run holds its presence (alive, not reading: its end being written) is not taken over; once the presence goes, it is", async () => {
    const { feed, status, watch } = await readerlessBroadcast();
    const presence = Object.assign(new EventEmitter(), { writeHead: () => presence, flushHeaders() {}, end() {} });
    feed.holdPresence("run-1", presence as unknown as ServerResponse);
    watch();
    // Before: taken over 3 s after the reader went, while the run wrote its end; the new run kept a
    // disk reserve on the disk the old one had just let go of.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(await status()).toBe("RUNNING");
    // The run dies (its connection closes without its word that it is done).
    const diedAt = Date.now();
    presence.emit("close");
    await expect.poll(status, { timeout: 6000, interval: 100 }).toBe("QUEUED");
    expect(Date.now() - diedAt).toBeGreaterThan(2900);
  });

  it("is taken over 3 s after a run was dispatched or started, not 3 s after the feed was left", async () => {
    const { job, status, watch } = await readerlessBroadcast();
    const armedAt = Date.now();
    watch();

    // 2.5 s in, a run is dispatched (another takeover's, a lapsed claim's redelivery).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await db.job.update({ where: { id: job.id }, data: { dispatchedAt: new Date() } });
    // 3.5 s in: that run still has its time to ask for the feed (before: queued again, the message
    // withdrawn from under the run that had just claimed it, which then failed the broadcast).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await status()).toBe("RUNNING");
    // Still no reader 3 s after the dispatch: taken over.
    await expect.poll(status, { timeout: 5000, interval: 100 }).toBe("QUEUED");
    expect(Date.now() - armedAt).toBeGreaterThan(5500);
  });
});
