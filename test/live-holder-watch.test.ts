import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { RESYNC } from "../src/events/postgres-event-target.ts";
import { listenForEnds } from "../src/live/broadcast-ends.ts";
import { type BroadcastHolds, createBroadcastHolds } from "../src/live/broadcast-holds.ts";
import { LiveFeed } from "../src/live/feed.ts";
import { HOLDER_GONE, reclaimStatus, watchHolders } from "../src/live/holder-watch.ts";
import { createLiveContext, type LiveContext, type LiveDeps } from "../src/live/live-context.ts";
import { noGaps } from "../src/live/recording-gaps.ts";
import { createWebhookEmitter } from "../src/webhooks/events.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";

// A stream on air whose broadcast no API instance holds any more (its holder was killed) says it is
// disconnected (holder-watch.ts), with its webhook; an instance whose session to Postgres came back
// and took its hold again says its publisher is still there. Real Postgres sessions: an instance's
// death is its holds' connection ending (as a killed process's does), its session's loss a
// pg_terminate_backend.

const LIVE_INPUT = {
  feedUrl: "http://127.0.0.1:9/live/v1/feeds/v.flv",
  input: { width: 320, height: 240, fps: 25, hasAudio: false },
  options: { segmentSeconds: 1, maxDurationSeconds: 600, record: true, reconnectWindowSeconds: 30 },
};

describe("a broadcast on air whose API instance is gone", () => {
  let database: TestDatabase;
  let db: Db;
  const opened: BroadcastHolds[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, { max: 3 });
    await db.webhookEndpoint.create({
      data: { tenantId: DEFAULT_TENANT_ID, url: "http://127.0.0.1:9/hook", secret: "s".repeat(32), events: [] },
    });
  });
  afterAll(async () => {
    await Promise.all(opened.map((h) => h.close()));
    await db?.$disconnect();
    await database?.drop();
  });

  /** An API instance's broadcast holds, on a Postgres session of their own; `retaken` hears a hold taken again. */
  function instanceHolds(retaken: (videoId: string) => void = () => {}) {
    const holds = createBroadcastHolds({ connectionString: database.url, onLost: () => {}, onRetaken: retaken });
    opened.push(holds);
    return holds;
  }

  function contextOf(holds: BroadcastHolds): LiveContext {
    return createLiveContext({
      db,
      holds,
      target: new EventTarget(),
      webhooks: createWebhookEmitter({ retryHours: 1, onQueued: () => {} }),
    } as unknown as LiveDeps);
  }

  /** A stream LIVE with a broadcast whose encode is `encode` (RUNNING: on). */
  async function streamOnAir(encode: "RUNNING" | "SUCCEEDED" = "RUNNING") {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "live", status: "PROCESSING", sourceKey: "live", playable: true },
    });
    await db.job.create({ data: { videoId: video.id, kind: "LIVE", status: encode, input: LIVE_INPUT } });
    const stream = await db.liveStream.create({
      data: {
        tenantId: DEFAULT_TENANT_ID,
        title: "on air",
        keyHash: `held-${video.id}`,
        keyHint: "held",
        status: "LIVE",
        activeVideoId: video.id,
      },
    });
    const state = async () => db.liveStream.findUniqueOrThrow({ where: { id: stream.id } });
    return { videoId: video.id, streamId: stream.id, state };
  }

  it("says so (DISCONNECTED, its webhook) 5 s after its holder's session ended; never while it is held", async () => {
    const { videoId, state } = await streamOnAir();
    const holder = instanceHolds();
    expect(await holder.take(videoId)).toBe(true);
    const watch = watchHolders(contextOf(instanceHolds()));
    try {
      // Held by a live instance: the stream keeps saying LIVE.
      await new Promise((resolve) => setTimeout(resolve, 7000));
      expect((await state()).status).toBe("LIVE");
      // The holder dies: Postgres lets go of its hold with its connection.
      const diedAt = Date.now();
      await holder.close();
      await expect.poll(async () => (await state()).status, { timeout: 12_000, interval: 200 }).toBe("DISCONNECTED");
      expect(Date.now() - diedAt).toBeGreaterThan(4500);
      expect((await state()).lastError).toBe(HOLDER_GONE);
      const hooks = await db.webhookDelivery.findMany({ where: { eventType: "live_stream.disconnected" } });
      expect(hooks.map((h) => (h.payload as { data: { video: { id: string } } }).data.video.id)).toContain(videoId);
    } finally {
      watch.stop();
    }
  }, 30_000);

  it("whose encode ended while the event fan-out was down: its feed here ends at the fan-out's resync; one whose encode goes on stays", async () => {
    const ctx = contextOf(instanceHolds());
    listenForEnds(ctx);
    const held = (streamId: string) => ({
      feed: new LiveFeed(),
      streamId,
      startedAt: Date.now(),
      reconnectWindowSeconds: 30,
      endOnUnpublish: true,
      gaps: noGaps(),
    });
    const over = await streamOnAir("SUCCEEDED");
    const on = await streamOnAir("RUNNING");
    const overAfterItsStop = await streamOnAir("SUCCEEDED");
    ctx.feeds.set(over.videoId, held(over.streamId));
    ctx.feeds.set(on.videoId, held(on.streamId));
    // A broadcast starting: its feed is here before its video and job are written.
    const starting = randomUUID();
    ctx.feeds.set(starting, held(on.streamId));
    const stopped = held(overAfterItsStop.streamId);
    ctx.endedFeeds.keep(overAfterItsStop.videoId, stopped);
    const overFeed = ctx.feeds.get(over.videoId)!.feed;
    // Before, the resync (no video named) was ignored: a publisher fed an encode that had ended, for good.
    ctx.target.dispatchEvent(new CustomEvent("liveBroadcastEnded", { detail: RESYNC }));
    await expect.poll(() => ctx.feeds.has(over.videoId)).toBe(false);
    expect(overFeed.ended).toBe(true);
    await expect.poll(() => ctx.endedFeeds.get(overAfterItsStop.videoId)).toBeUndefined();
    expect(ctx.feeds.get(on.videoId)?.feed.ended).toBe(false);
    expect(ctx.feeds.get(starting)?.feed.ended).toBe(false);
  });

  it("an instance that took its hold again after its session was lost says its publisher is still there", async () => {
    const { videoId, streamId, state } = await streamOnAir();
    let ctx: LiveContext | null = null;
    const holds = instanceHolds((retaken) => void reclaimStatus(ctx!, retaken));
    ctx = contextOf(holds);
    // Its publisher is connected here (no reconnect window running).
    const held = { feed: new LiveFeed(), streamId, startedAt: Date.now(), reconnectWindowSeconds: 30 };
    ctx.feeds.set(videoId, { ...held, endOnUnpublish: true, gaps: noGaps() });
    expect(await holds.take(videoId)).toBe(true);
    // Its session was down long enough for another instance to say the stream disconnected.
    await db.liveStream.update({ where: { id: streamId }, data: { status: "DISCONNECTED", lastError: HOLDER_GONE } });
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = hashtext($1)::oid`,
        [videoId],
      );
      expect(rowCount).toBe(1);
    } finally {
      await admin.end();
    }
    await expect.poll(async () => (await state()).status, { timeout: 15_000, interval: 200 }).toBe("LIVE");
    expect((await state()).lastError).toBeNull();
    expect(await holds.held(videoId)).toBe(true);
  }, 30_000);
});
