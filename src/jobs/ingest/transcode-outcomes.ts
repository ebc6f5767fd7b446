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

/** Tells the video's subscribers the variants' new states, in order, with one read of the video. */
export async function publishVariants(
  deps: Pick<IngestDeps, "db" | "pubSub">,
  videoId: string,
  variants: readonly Variant[],
): Promise<void> {
  if (variants.length === 0) return;
  const video = await deps.db.video.findUnique({ where: { id: videoId } });
  if (!video) return;
  for (const variant of variants) {
    deps.pubSub.publish("videoEvents", videoId, {
      kind: "variantStatus",
      video: videoSnapshot(video),
      variant: variantSnapshot(variant),
    });
  }
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
 * Makes the rungs' variants READY in `tx` and says so by webhook, one `variant.ready` each; resolves
 * with the rows it moved, in the rungs' order, leaving out those no longer pending or encoding. The
 * caller flushes the webhooks and publishes the variants once `tx` commits. Six statements for any
 * number of rungs: a run's rungs end together, and their events come in one batch
 * (docs/performance.md, "What a transcode's other events cost").
 */
export async function readyVariantsIn(
  webhooks: WebhookEmitter,
  tx: Tx,
  videoId: string,
  rungs: readonly ReadyRung[],
): Promise<Variant[]> {
  if (rungs.length === 0) return [];
  const readyOf = (e: ReadyRung) => ({
    status: "READY" as const,
    progress: 1,
    playlistKey: e.playlistKey,
    segmentCount: e.segmentCount,
    readyAt: e.at,
    ...(e.bitRates ? { peakBitRate: e.bitRates.peak, averageBitRate: e.bitRates.average } : {}),
  });
  // Before `job.probed` (events can arrive out of order) the rows do not exist yet.
  const created = await tx.variant.createManyAndReturn({
    data: rungs.map((e) => ({ ...variantOfRung(videoId, e.name, e.rung), ...readyOf(e) })),
    skipDuplicates: true,
    select: { name: true },
  });
  const moved = new Set(created.map((v) => v.name));
  const rest = rungs.filter((e) => !moved.has(e.name));
  if (rest.length > 0) {
    const names = rest.map((e) => e.name);
    // Rows locked in id order, as the progress batch locks them (progress-batch.ts): two writers wait, never deadlock.
    // A rung's measured rates replace the row's only where the event has them.
    const updated = await tx.$queryRaw<{ name: string }[]>`
      WITH locked AS MATERIALIZED (
        SELECT id FROM "Variant" WHERE "videoId" = ${videoId}::uuid AND name = ANY(${names}::text[])
        ORDER BY id FOR NO KEY UPDATE
      )
      UPDATE "Variant" AS v
      SET status = 'READY', progress = 1, "playlistKey" = x.key, "segmentCount" = x.segments,
        "readyAt" = x.at::timestamptz AT TIME ZONE 'UTC', "peakBitRate" = COALESCE(x.peak, v."peakBitRate"),
        "averageBitRate" = COALESCE(x.average, v."averageBitRate"), "updatedAt" = now()
      FROM locked, unnest(
        ${names}::text[], ${rest.map((e) => e.playlistKey)}::text[],
        ${rest.map((e) => e.segmentCount)}::int[], ${rest.map((e) => e.at.toISOString())}::text[],
        ${rest.map((e) => e.bitRates?.peak ?? null)}::int[], ${rest.map((e) => e.bitRates?.average ?? null)}::int[]
      ) AS x(name, key, segments, at, peak, average)
      WHERE v.id = locked.id AND v.name = x.name AND v.status IN ('PENDING', 'ENCODING')
      RETURNING v.name`;
    for (const { name } of updated) moved.add(name);
  }
  if (moved.size === 0) return [];
  const rows = await tx.variant.findMany({ where: { videoId, name: { in: [...moved] } } });
  const order = new Map(rungs.map((e, i) => [e.name, i]));
  rows.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  await webhooks.emitMany(
    tx,
    videoId,
    "variant.ready",
    rows.map((row) => ({
      eventId: webhookEventId("variant.ready", row.id, row.readyAt!.toISOString()),
      data: {
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
      },
    })),
  );
  return rows;
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
