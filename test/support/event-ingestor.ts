import { expect } from "vitest";
import type { Db } from "../../src/db/client.ts";
import { createVideoPubSub } from "../../src/events/video-events.ts";
import { createEventIngestor, type EventIngestor } from "../../src/jobs/ingest-events.ts";
import type { IngestOptions } from "../../src/jobs/ingest/ingest-deps.ts";
import { createWebhookEmitter } from "../../src/webhooks/events.ts";

/**
 * The API's event ingestor on `db` alone: no fan-out beyond this process, every progress event
 * written at once, requeues and cancel reports dropped unless `options` says what to do with them.
 */
export function createTestEventIngestor(db: Db, options: Partial<IngestOptions> = {}): EventIngestor {
  return createEventIngestor({
    db,
    storage: {
      write: () => Promise.reject(new Error("this test's ingestor has no storage: pass `storage` to list chunks")),
      readText: () => Promise.reject(new Error("this test's ingestor has no storage: pass `storage` to list chunks")),
    },
    pubSub: createVideoPubSub(undefined),
    webhooks: createWebhookEmitter({ retryHours: 24, onQueued: () => {} }),
    progressWriteIntervalMs: 0,
    onJobRequeued: () => {},
    onCanceledJobReported: async () => {},
    stallSeconds: 30,
    ...options,
  });
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
