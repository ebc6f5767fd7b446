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
