import type { Variant } from "../../generated/prisma/client.ts";
import type { DbTransaction as Tx } from "../../db/client.ts";
import { variantSnapshot, videoSnapshot } from "../../events/video-events.ts";
import type { Rung } from "../../protocol/media-facts.ts";
import { sourceName } from "../../protocol/storage-layout.ts";
import { inSpan } from "../../shared/tracing.ts";
import { videoWebhookData, webhookEventId, type WebhookEmitter } from "../../webhooks/events.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";
import { queueRequestedStaticRenditions } from "./static-rendition-events.ts";
import { queueGeneratedCaptions } from "../../captions/generated-caption-jobs.ts";

/** A rung whose playlist is complete, as `variant.ready` says it. */
export interface ReadyRung {
  name: string;
  rung: Rung;
  playlistKey: string;
  segmentCount: number;
  at: Date;
  /** What its published segments carry, where measured. */
  bitRates?: { peak: number; average: number };
}

/** A variant row's fields from its rung of the ladder. */
export const variantOfRung = (videoId: string, name: string, rung: Rung) => ({
  videoId,
  name,
  kind: rung.kind,
  width: rung.width,
  height: rung.height,
  bandwidth: rung.bandwidth,
  codecs: rung.codecs,
  bitrate: rung.bitrate ?? null,
});

/** Tells the video's subscribers a variant's new state. */
export async function publishVariant(
  deps: Pick<IngestDeps, "db" | "pubSub">,
  videoId: string,
  variant: Variant,
): Promise<void> {
  const video = await deps.db.video.findUnique({ where: { id: videoId } });
  if (!video) return;
  deps.pubSub.publish("videoEvents", videoId, {
    kind: "variantStatus",
    video: videoSnapshot(video),
    variant: variantSnapshot(variant),
  });
}

/** Says by webhook, in `tx`, that the video is playable. */
export async function emitPlayable(
  webhooks: WebhookEmitter,
  tx: Parameters<WebhookEmitter["emit"]>[0],
  videoId: string,
): Promise<void> {
  const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
  const eventId = webhookEventId("video.playable", videoId);
  await webhooks.emit(tx, videoId, "video.playable", eventId, { video: videoWebhookData(video) });
}

/**
 * Makes a rung's variant READY in `tx` and says so by webhook; null when it was no longer
 * pending or encoding. The caller flushes the webhooks and publishes the variant once `tx` commits.
 */
export async function readyVariantIn(
  webhooks: WebhookEmitter,
  tx: Tx,
  videoId: string,
  e: ReadyRung,
): Promise<Variant | null> {
  const ready = {
    status: "READY" as const,
    progress: 1,
    playlistKey: e.playlistKey,
    segmentCount: e.segmentCount,
    readyAt: e.at,
    ...(e.bitRates ? { peakBitRate: e.bitRates.peak, averageBitRate: e.bitRates.average } : {}),
  };
  // Before `job.probed` (events can arrive out of order) the row does not exist yet.
  const { count: created } = await tx.variant.createMany({
    data: [{ ...variantOfRung(videoId, e.name, e.rung), ...ready }],
    skipDuplicates: true,
  });
  const { count } = await tx.variant.updateMany({
    where: { videoId, name: e.name, status: { in: ["PENDING", "ENCODING"] } },
    data: ready,
  });
  if (!count && !created) return null;
  const row = await tx.variant.findUniqueOrThrow({ where: { videoId_name: { videoId, name: e.name } } });
  const data = {
    videoId,
    variant: {
      id: row.id,
      name: row.name,
      kind: row.kind,
      width: row.width,
      height: row.height,
      segmentCount: row.segmentCount,
      // What its segments carry (null where not measured: a worker older than the figures).
      peakBitRate: row.peakBitRate,
      averageBitRate: row.averageBitRate,
    },
  };
  const eventId = webhookEventId("variant.ready", row.id, row.readyAt!.toISOString());
  await webhooks.emit(tx, videoId, "variant.ready", eventId, data);
  return row;
}

/**
 * An unrecorded broadcast's end, in `tx` under the video's lock: DISCARDED, no longer playable,
 * with no media keys (they are deleted); its duration stays (the broadcast's length).
 */
export async function discardVideoIn(
  tx: Tx,
  videoId: string,
  made: Pick<EventOf<"job.succeeded">, "duration">,
  at: Date,
): Promise<void> {
  await tx.video.updateMany({
    where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
    data: {
      status: "DISCARDED",
      finishedAt: at,
      playable: false,
      masterKey: null,
      posterKey: null,
      duration: made.duration,
    },
  });
}

/**
 * What a transcode's end does to its video, in `tx` under the video's lock: playable with its
 * master, poster and storyboard (a live recording's also with its duration and source file), and
 * READY (`ready`) with its webhook and the static renditions and generated captions asked for queued (true
 * when some were);
 * a split transcode's first run leaves it at `playable` until its last chunk is listed.
 */
export async function finishVideoIn(
  deps: Pick<IngestDeps, "webhooks" | "costs">,
  tx: Tx,
  jobId: string,
  videoId: string,
  made: Pick<EventOf<"job.succeeded">, "masterKey" | "posterKey" | "storyboard" | "duration" | "sourceKey">,
  at: Date,
  state: "playable" | "ready",
): Promise<boolean> {
  const { webhooks } = deps;
  // `video.playable` may not have arrived yet; the video is playable now, so say it once.
  const before = await tx.video.findUnique({ where: { id: videoId }, select: { playable: true } });
  const wasPlayable = before?.playable ?? true;
  await tx.video.updateMany({
    where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
    // A retried rung's job makes no poster: the video keeps the one it has.
    data: {
      ...(state === "ready" ? { status: "READY" as const, finishedAt: at } : {}),
      playable: true,
      masterKey: made.masterKey,
      posterKey: made.posterKey ?? undefined,
      storyboard: made.storyboard ?? undefined,
      // A live recording's length and source file, known only at its end.
      duration: made.duration,
      ...(made.sourceKey ? { sourceKey: made.sourceKey, sourceName: sourceName(made.sourceKey) } : {}),
    },
  });
  await tx.video.updateMany({ where: { id: videoId, playableAt: null }, data: { playableAt: at } });
  if (!wasPlayable) await emitPlayable(webhooks, tx, videoId);
  if (state !== "ready") return false;
  const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
  if (video.status === "READY") {
    await inSpan("video ready", { attributes: { "video.id": videoId } }, async () => {
      const eventId = webhookEventId("video.ready", videoId, video.finishedAt!.toISOString());
      await webhooks.emit(tx, videoId, "video.ready", eventId, { video: videoWebhookData(video) });
    });
  }
  const renditions = await queueRequestedStaticRenditions(tx, jobId, videoId, deps);
  const { maxAttempts } = await tx.job.findUniqueOrThrow({ where: { id: jobId }, select: { maxAttempts: true } });
  const captions = await queueGeneratedCaptions(tx, videoId, { maxAttempts, costs: deps.costs });
  return renditions || captions.length > 0;
}
