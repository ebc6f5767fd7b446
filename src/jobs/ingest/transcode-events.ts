import type { JobKind, Variant } from "../../generated/prisma/client.ts";
import type { DbTransaction as Tx } from "../../db/client.ts";
import { encoderFigures, variantSnapshot, videoSnapshot } from "../../events/video-events.ts";
import type { Rung } from "../../protocol/messages.ts";
import { sourceName } from "../../protocol/storage-layout.ts";
import { inSpan } from "../../shared/tracing.ts";
import { videoWebhookData, webhookEventId, type WebhookEmitter } from "../../webhooks/events.ts";
import { userFacingError } from "../user-facing-error.ts";
import { estimateAtProbe } from "../../costs/job-cost.ts";
import { variantAfterProgress } from "../progress.ts";
import { lockVideo } from "../video-lock.ts";
import { publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { queueRequestedStaticRenditions } from "./static-rendition-events.ts";

/** A rung whose playlist is complete, as `variant.ready` says it. */
interface ReadyRung {
  name: string;
  rung: Rung;
  playlistKey: string;
  segmentCount: number;
  at: Date;
  /** What its published segments carry, where measured. */
  bitRates?: { peak: number; average: number };
}

/** A variant row's fields from its rung of the ladder. */
const variantOfRung = (videoId: string, name: string, rung: Rung) => ({
  videoId,
  name,
  kind: rung.kind,
  width: rung.width,
  height: rung.height,
  bandwidth: rung.bandwidth,
  codecs: rung.codecs,
  bitrate: rung.bitrate ?? null,
});

/**
 * A transcode's events: the probe and its ladder, progress per rung, each rung ready or failed,
 * the video playable, the job succeeded.
 */
export function createTranscodeEventIngestor(deps: IngestDeps, runs: JobRunIngestor) {
  const { db, pubSub, webhooks, progressWrites } = deps;

  async function publishVariant(videoId: string, variant: Variant): Promise<void> {
    const video = await db.video.findUnique({ where: { id: videoId } });
    if (!video) return;
    pubSub.publish("videoEvents", videoId, {
      kind: "variantStatus",
      video: videoSnapshot(video),
      variant: variantSnapshot(variant),
    });
  }

  async function emitPlayable(tx: Parameters<WebhookEmitter["emit"]>[0], videoId: string): Promise<void> {
    const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
    const eventId = webhookEventId("video.playable", videoId);
    await webhooks.emit(tx, videoId, "video.playable", eventId, { video: videoWebhookData(video) });
  }

  async function onProbed(e: EventOf<"job.probed">, videoId: string, kind: JobKind): Promise<void> {
    const { probe } = e;
    await db.$transaction([
      db.video.update({
        where: { id: videoId },
        data: {
          // A broadcast's probe has no length (0): its recording's comes with its end (finishVideoIn),
          // and a later run's probe (a delivery made again after the end) must not overwrite it.
          ...(kind === "LIVE" ? {} : { duration: probe.duration }),
          width: probe.width,
          height: probe.height,
          fps: probe.fps,
          rotation: probe.rotation,
          hasAudio: probe.hasAudio,
          videoCodec: probe.videoCodec,
          audioCodec: probe.audioCodec,
        },
      }),
      db.variant.createMany({
        data: e.ladder.map((rung) => variantOfRung(videoId, rung.name, rung)),
        skipDuplicates: true,
      }),
    ]);
    await runs.recordResume(e);
    // An audio-only source has no frame: its cost is its duration's decode and audio rungs.
    const source = { seconds: probe.duration, width: probe.width ?? 0, height: probe.height ?? 0, fps: probe.fps };
    await estimateAtProbe(db, deps.costs, e.jobId, source, e.ladder);
    await publishVideoStatus(deps, videoId);
  }

  async function onProgress(e: EventOf<"job.progress">, videoId: string): Promise<void> {
    const [video, variants] = await Promise.all([
      db.video.findUnique({ where: { id: videoId } }),
      db.variant.findMany({ where: { videoId } }),
    ]);
    if (!video) return;
    const byName = new Map(variants.map((v) => [v.name, v]));
    const writeNow = progressWrites.due(e.jobId);
    const snapshot = videoSnapshot(video);
    for (const reported of e.variants) {
      const row = byName.get(reported.name);
      const live = row && variantAfterProgress(row, reported);
      if (!row || !live) continue;
      pubSub.publish("videoEvents", videoId, {
        kind: "variantProgress",
        video: snapshot,
        variant: variantSnapshot(live),
        ...encoderFigures(e),
      });
      if (writeNow) {
        await db.variant.updateMany({
          where: { id: row.id, status: { in: ["PENDING", "ENCODING"] }, progress: { lte: live.progress } },
          data: { status: "ENCODING", progress: live.progress, segmentCount: live.segmentCount },
        });
      }
    }
    if (writeNow) {
      await db.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: "RUNNING", progress: { lte: e.progress } },
        data: { progress: e.progress },
      });
    }
  }

  /**
   * Makes a rung's variant READY in `tx` and says so by webhook; null when it was no longer
   * pending or encoding. The caller flushes the webhooks and publishes the variant once `tx` commits.
   */
  async function readyVariantIn(tx: Tx, videoId: string, e: ReadyRung): Promise<Variant | null> {
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

  async function onVariantReady(e: EventOf<"variant.ready">, videoId: string): Promise<void> {
    const variant = await db.$transaction((tx) => readyVariantIn(tx, videoId, { ...e, at: new Date(e.at) }));
    if (!variant) return;
    webhooks.flush();
    await publishVariant(videoId, variant);
  }

  async function onVariantFailed(e: EventOf<"variant.failed">, videoId: string): Promise<void> {
    const failed = { status: "FAILED" as const, error: userFacingError(e.error) };
    // Before `job.probed` (events can arrive out of order) the row does not exist yet.
    await db.variant.createMany({
      data: [{ ...variantOfRung(videoId, e.name, e.rung), ...failed }],
      skipDuplicates: true,
    });
    const { count } = await db.variant.updateMany({
      where: { videoId, name: e.name, status: { in: ["PENDING", "ENCODING"] } },
      data: failed,
    });
    if (!count) return;
    const variant = await db.variant.findUnique({ where: { videoId_name: { videoId, name: e.name } } });
    if (variant) await publishVariant(videoId, variant);
  }

  async function onPlayable(e: EventOf<"video.playable">, videoId: string): Promise<void> {
    const at = new Date(e.at);
    const count = await db.$transaction(async (tx) => {
      const { count } = await tx.video.updateMany({
        // A canceled or failed video offers no master, even when the event arrives after the cancel.
        where: { id: videoId, playable: false, status: { in: ["QUEUED", "PROCESSING", "READY"] } },
        data: { playable: true, masterKey: e.masterKey, playableAt: at },
      });
      if (count) await emitPlayable(tx, videoId);
      return count;
    });
    if (count) webhooks.flush();
    // `job.succeeded` overtook this event and stamped its own, later time.
    await db.video.updateMany({ where: { id: videoId, playableAt: { gt: at } }, data: { playableAt: at } });
    if (count) await publishVideoStatus(deps, videoId);
  }

  /**
   * The job's end: its video READY (`finishVideoIn`), or DISCARDED when it is a live broadcast
   * whose recording was not kept (`discarded`: its media are already deleted).
   */
  async function onSucceeded(e: EventOf<"job.succeeded">, videoId: string, discarded = false): Promise<void> {
    await runs.finishRun(e);
    const at = new Date(e.at);
    let renditionsQueued = false;
    const count = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const { count } = await tx.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "SUCCEEDED", progress: 1, finishedAt: at, error: null },
      });
      if (!count) return 0;
      if (discarded) await discardVideoIn(tx, videoId, e, at);
      else renditionsQueued = await finishVideoIn(tx, e.jobId, videoId, e, at, "ready");
      await deps.holdTransition?.(e);
      return count;
    });
    if (!count) return;
    webhooks.flush();
    progressWrites.forget(e.jobId);
    // The ingestor has no dispatcher: a queued job is dispatched through the requeue callback.
    if (renditionsQueued) deps.onJobRequeued(new Date());
    await publishVideoStatus(deps, videoId);
  }

  /**
   * An unrecorded broadcast's end, in `tx` under the video's lock: DISCARDED, no longer playable,
   * with no media keys (they are deleted); its duration stays (the broadcast's length).
   */
  async function discardVideoIn(tx: Tx, videoId: string, made: Pick<EventOf<"job.succeeded">, "duration">, at: Date) {
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
   * master, poster and storyboard (a live recording's also with its duration and source file), and READY (`ready`) with its webhook and the static renditions
   * asked for queued (true when some were); a split transcode's first run leaves it at `playable`
   * until its last chunk is listed.
   */
  async function finishVideoIn(
    tx: Tx,
    jobId: string,
    videoId: string,
    made: Pick<EventOf<"job.succeeded">, "masterKey" | "posterKey" | "storyboard" | "duration" | "sourceKey">,
    at: Date,
    state: "playable" | "ready",
  ): Promise<boolean> {
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
    if (!wasPlayable) await emitPlayable(tx, videoId);
    if (state !== "ready") return false;
    const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
    if (video.status === "READY") {
      await inSpan("video ready", { attributes: { "video.id": videoId } }, async () => {
        const eventId = webhookEventId("video.ready", videoId, video.finishedAt!.toISOString());
        await webhooks.emit(tx, videoId, "video.ready", eventId, { video: videoWebhookData(video) });
      });
    }
    return queueRequestedStaticRenditions(tx, jobId, videoId, deps);
  }

  return {
    onProbed,
    onProgress,
    onVariantReady,
    onVariantFailed,
    onPlayable,
    onSucceeded,
    readyVariantIn,
    finishVideoIn,
    publishVariant,
  };
}
