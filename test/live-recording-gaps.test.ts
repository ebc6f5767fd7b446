import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TENANT_ID } from "../src/auth/api-keys.ts";
import { createDb, type Db } from "../src/db/client.ts";
import { takeFeed } from "../src/live/broadcast-ends.ts";
import { LiveFeed } from "../src/live/feed.ts";
import { handleFeed, signedFeedUrl } from "../src/live/feed-endpoint.ts";
import { createLiveContext, type LiveDeps } from "../src/live/live-context.ts";
import { noGaps } from "../src/live/recording-gaps.ts";
import { LIVE_FEED_FROM_HEADER } from "../src/protocol/live-messages.ts";
import { UrlSigner } from "../src/storage/url-signer.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { packet, publish, reader } from "./support/live-feed-packets.ts";

// What a broadcast's recording lacks, as its stream's lastError says it (recording-gaps.ts), when
// runs taking its encode over ask its feed (feed-endpoint.ts) from where their published media ends.

describe("what a broadcast's recording lacks", () => {
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

  it("sums what each takeover misses, also once the broadcast ended and its feed only waits for its encode", async () => {
    const video = await db.video.create({
      data: { tenantId: DEFAULT_TENANT_ID, title: "live", status: "PROCESSING", sourceKey: "live" },
    });
    const stream = await db.liveStream.create({
      data: {
        tenantId: DEFAULT_TENANT_ID,
        title: "gaps",
        keyHash: `gaps-${video.id}`,
        keyHint: "gaps",
        status: "LIVE",
        activeVideoId: video.id,
      },
    });
    const signer = new UrlSigner("s".repeat(32));
    const ctx = createLiveContext({
      db,
      signer,
      target: new EventTarget(),
      settings: { feedBaseUrl: () => "http://127.0.0.1:9", maxDurationSeconds: 600 },
    } as unknown as LiveDeps);
    const feed = new LiveFeed();
    ctx.feeds.set(video.id, {
      feed,
      streamId: stream.id,
      startedAt: Date.now(),
      reconnectWindowSeconds: 30,
      endOnUnpublish: true,
      gaps: noGaps(),
    });
    const url = new URL(signedFeedUrl(ctx, video.id));
    /** A run asking the feed over HTTP from where its published media ends. */
    const ask = (fromSeconds: number) => {
      const req = { method: "GET", headers: { [LIVE_FEED_FROM_HEADER]: fromSeconds.toFixed(6) } };
      handleFeed(ctx, req as unknown as IncomingMessage, reader().res, url);
    };
    const lastError = async () => (await db.liveStream.findUniqueOrThrow({ where: { id: stream.id } })).lastError;

    feed.push(packet("video header", 0));
    publish(feed, 0, 4000);
    feed.published(4);
    // Its encode publishes nothing for 40 s: the feed keeps the last 30 s (from 13 s).
    publish(feed, 4000, 44_000);
    ask(4);
    await expect.poll(lastError).toMatch(/^the recording lacks 9\.0 s of the broadcast/);
    // The publisher stops: the broadcast ends, its feed waits for its encode's run. That run publishes
    // nothing either and restarts after 16 s more had gone (the feed held 13 s to 43.9 s; now from 29 s).
    publish(feed, 44_000, 60_000);
    takeFeed(ctx, video.id)?.end();
    ask(4);
    // Before, an ended broadcast's ask said only its own 16 s.
    await expect.poll(lastError).toMatch(/^the recording lacks 25\.0 s of the broadcast/);
    // Written in order: the first ask's total (9 s) never lands after the second's.
    const lacked = async () => (await db.liveBroadcastFeed.findUnique({ where: { videoId: video.id } }))?.lackedSeconds;
    await expect.poll(lacked).toBeCloseTo(25, 5);
  });
});
