import type { Db } from "../../db/client.ts";
import type { Variant, Video } from "../../generated/prisma/client.ts";
import { type EncoderFigures, type VideoPubSub, variantSnapshot, videoSnapshot } from "../../events/video-events.ts";
import type { JobEvent } from "../../protocol/job-events.ts";
import type { ApiStorage } from "../../storage/types.ts";
import type { WebhookEmitter } from "../../webhooks/events.ts";
import type { CostSettings } from "../../costs/cost-model.ts";
import type { ProgressWriteThrottle } from "../progress.ts";
import type { QueueWatch } from "../queue-position.ts";

export type EventOf<T extends JobEvent["type"]> = Extract<JobEvent, { type: T }>;

/** What the event ingestor is built from (createEventIngestor's options). */
export interface IngestOptions {
  db: Db;
  /**
   * Where the API writes the playlists of a split transcode as its chunks end, and reads its master
   * to state what the variants measured.
   */
  storage: Pick<ApiStorage, "write" | "readText" | "deletePrefix">;
  pubSub: VideoPubSub;
  webhooks: WebhookEmitter;
  progressWriteIntervalMs: number;
  onJobRequeued: (runAfter: Date) => void;
  /**
   * A worker started (or still runs) an attempt that was canceled: tell it (or only `workerId`,
   * or only its run `runId`) to stop.
   */
  onCanceledJobReported: (jobId: string, attempt: number, workerId?: string, runId?: string) => Promise<void>;
  /** Prices and the CPU table of the jobs' costs (COST_* settings). */
  costs: CostSettings;
  /** Told when a job of a queue starts or ends, so the jobs behind it hear their new positions. */
  queueWatch: Pick<QueueWatch, "jobChanged">;
  /**
   * Live streams (src/live/): told of every event of a LIVE job once it is applied (its stream's
   * state follows the broadcast's encode), and of `live.progress`, which only they use.
   */
  live: {
    onJobEvent(e: JobEvent, videoId: string): Promise<void>;
    /** Deletes the media of an unrecorded broadcast `e` ends; true when it did: its video is then DISCARDED. */
    discardUnrecordedMedia(e: JobEvent, videoId: string): Promise<boolean>;
  };
  /**
   * This machine's clock, in ms since the epoch (`Date.now`). Times written for other API
   * instances are in Postgres's clock (`createDbClock`), so instances whose clocks differ agree.
   */
  clock: () => number;
  /** A run whose worker has not been heard of for this long is presumed dead. */
  stallSeconds: number;
}

/** What every part of the ingestor shares: its options and one progress throttle. */
export interface IngestDeps extends IngestOptions {
  progressWrites: ProgressWriteThrottle;
}

/** Tells the video's subscribers its current state. */
export async function publishVideoStatus(deps: Pick<IngestDeps, "db" | "pubSub">, videoId: string): Promise<void> {
  const video = await deps.db.video.findUnique({ where: { id: videoId } });
  if (video) deps.pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(video) });
}

/**
 * Tells the video's subscribers one progress report's rungs (`variants`, as it left them), in one
 * message for them all (`VariantsProgressMessage`); nothing when it moved none.
 */
export function publishProgress(
  pubSub: VideoPubSub,
  video: Video,
  variants: readonly Variant[],
  figures: EncoderFigures,
): void {
  if (!variants.length) return;
  pubSub.publish("videoEvents", video.id, {
    kind: "variantsProgress",
    video: videoSnapshot(video),
    variants: variants.map(variantSnapshot),
    ...figures,
  });
}
