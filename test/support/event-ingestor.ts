import { expect } from "vitest";
import { DEFAULT_COST_SETTINGS } from "../../src/costs/cost-model.ts";
import type { Db } from "../../src/db/client.ts";
import { createVideoPubSub } from "../../src/events/video-events.ts";
import { createEventIngestor, type EventIngestor } from "../../src/jobs/ingest-events.ts";
import type { IngestOptions } from "../../src/jobs/ingest/ingest-deps.ts";
import { createWebhookEmitter } from "../../src/webhooks/events.ts";

/** Live-stream hooks for a test with no live streams: nothing is live, so there is nothing to tell. */
export const NO_LIVE_STREAMS = {
  onJobEvent: async () => {},
  discardUnrecordedMedia: async () => false,
  onVideoCanceled: async () => {},
};

/** A queue watch for a test that does not follow queue positions: no one is told. */
export const UNWATCHED_QUEUES = { changed: () => {}, jobChanged: async () => {} };

/**
 * The event ingestor's options on `db` alone: no fan-out beyond this process, every progress event
 * written at once, the default cost settings, this machine's clock, no live streams or queue
 * watch, requeues and cancel reports dropped; `overrides` says what the test cares about.
 */
function ingestOptions(db: Db, overrides: Partial<IngestOptions> = {}): IngestOptions {
  const noStorage = () =>
    Promise.reject(new Error("this test's ingestor has no storage: pass `storage` to list chunks"));
  return {
    db,
    storage: { write: noStorage, readText: noStorage, deletePrefix: noStorage },
    pubSub: createVideoPubSub(undefined),
    webhooks: createWebhookEmitter({ retryHours: 24, onQueued: () => {} }),
    progressWriteIntervalMs: 0,
    onJobRequeued: () => {},
    onCanceledJobReported: async () => {},
    costs: DEFAULT_COST_SETTINGS,
    queueWatch: UNWATCHED_QUEUES,
    live: NO_LIVE_STREAMS,
    clock: Date.now,
    stallSeconds: 30,
    ...overrides,
  };
}

/** The API's event ingestor built from `ingestOptions(db, overrides)`. */
export function createTestEventIngestor(db: Db, overrides: Partial<IngestOptions> = {}): EventIngestor {
  return createEventIngestor(ingestOptions(db, overrides));
}

/** The webhook deliveries queued for a video: their types, sorted, each once (distinct event ids). */
export async function queuedWebhookTypes(db: Db, videoId: string): Promise<string[]> {
  // Video events name the video in data.video.id; variant and job events in data.videoId, and in
  // data.video too (its CMS fields): each delivery once.
  const all = await db.webhookDelivery.findMany({
    where: {
      OR: [
        { payload: { path: ["data", "videoId"], equals: videoId } },
        { payload: { path: ["data", "video", "id"], equals: videoId } },
      ],
    },
  });
  expect(new Set(all.map((d) => d.eventId)).size).toBe(all.length);
  return all.map((d) => d.eventType).sort();
}
