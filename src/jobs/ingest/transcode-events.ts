import type { DbTransaction as Tx } from "../../db/client.ts";
import type { JobKind, Variant } from "../../generated/prisma/client.ts";
import { encoderFigures } from "../../events/video-events.ts";
import { userFacingError } from "../user-facing-error.ts";
import { estimateAtProbe } from "../../costs/job-cost.ts";
import { variantAfterProgress } from "../progress.ts";
import { lockVideo } from "../video-lock.ts";
import { publishProgress, publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import { finishRun, recordResume, succeedAttemptIn } from "./run-records.ts";
import {
  discardVideoIn,
  emitPlayable,
  finishVideoIn,
  publishVariants,
  type ReadyRung,
  readyVariantsIn,
  variantOfRung,
} from "./transcode-outcomes.ts";

/**
 * A transcode's events: the probe and its ladder, progress per rung, each rung ready or failed,
 * the video playable, the job succeeded. What they write in a transaction, which a split
 * transcode's chunks write too, is `transcode-outcomes.ts`.
 */
export function createTranscodeEventIngestor(deps: IngestDeps) {
  return {
    onProbed: (e: EventOf<"job.probed">, videoId: string, kind: JobKind) => onProbed(deps, e, videoId, kind),
    onProgress: (e: EventOf<"job.progress">, videoId: string) => onProgress(deps, e, videoId),
    /** One run's `variant.ready` events, applied together (consecutive in a batch: a run's rungs end together). */
    onVariantsReady: (events: EventOf<"variant.ready">[], videoId: string) => onVariantsReady(deps, events, videoId),
    onVariantFailed: (e: EventOf<"variant.failed">, videoId: string) => onVariantFailed(deps, e, videoId),
    onPlayable: (e: EventOf<"video.playable">, videoId: string) => onPlayable(deps, e, videoId),
    onSucceeded: (e: EventOf<"job.succeeded">, videoId: string, discarded = false) =>
      onSucceeded(deps, e, videoId, discarded),
    readyVariantsIn: (tx: Tx, videoId: string, rungs: ReadyRung[]) =>
      readyVariantsIn(deps.webhooks, tx, videoId, rungs),
    finishVideoIn: (
      tx: Tx,
      jobId: string,
      videoId: string,
      made: Parameters<typeof finishVideoIn>[4],
      at: Date,
      state: "playable" | "ready",
    ) => finishVideoIn(deps, tx, jobId, videoId, made, at, state),
    publishVariants: (videoId: string, variants: Variant[]) => publishVariants(deps, videoId, variants),
  };
}

async function onProbed(deps: IngestDeps, e: EventOf<"job.probed">, videoId: string, kind: JobKind): Promise<void> {
  const { db } = deps;
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
  await recordResume(db, e);
  // An audio-only source has no frame: its cost is its duration's decode and audio rungs.
  const source = { seconds: probe.duration, width: probe.width ?? 0, height: probe.height ?? 0, fps: probe.fps };
  await estimateAtProbe(db, deps.costs, e.jobId, source, e.ladder);
  await publishVideoStatus(deps, videoId);
}

async function onProgress(deps: IngestDeps, e: EventOf<"job.progress">, videoId: string): Promise<void> {
  const { db, pubSub } = deps;
  const [video, variants] = await Promise.all([
    db.video.findUnique({ where: { id: videoId } }),
    db.variant.findMany({ where: { videoId } }),
  ]);
  if (!video) return;
  const byName = new Map(variants.map((v) => [v.name, v]));
  const writeNow = deps.progressWrites.due(e.jobId);
  const moved: Variant[] = [];
  for (const reported of e.variants) {
    const row = byName.get(reported.name);
    const live = row && variantAfterProgress(row, reported);
    if (live) moved.push(live);
  }
  publishProgress(pubSub, video, moved, encoderFigures(e));
  if (writeNow) {
    for (const live of moved) {
      await db.variant.updateMany({
        where: { id: live.id, status: { in: ["PENDING", "ENCODING"] }, progress: { lte: live.progress } },
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

async function onVariantsReady(deps: IngestDeps, events: EventOf<"variant.ready">[], videoId: string): Promise<void> {
  const rungs = events.map((e) => ({ ...e, at: new Date(e.at) }));
  const variants = await deps.db.$transaction((tx) => readyVariantsIn(deps.webhooks, tx, videoId, rungs));
  if (variants.length === 0) return;
  deps.webhooks.flush();
  await publishVariants(deps, videoId, variants);
}

async function onVariantFailed(deps: IngestDeps, e: EventOf<"variant.failed">, videoId: string): Promise<void> {
  const { db } = deps;
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
  if (variant) await publishVariants(deps, videoId, [variant]);
}

async function onPlayable(deps: IngestDeps, e: EventOf<"video.playable">, videoId: string): Promise<void> {
  const { db, webhooks } = deps;
  const at = new Date(e.at);
  const count = await db.$transaction(async (tx) => {
    const { count } = await tx.video.updateMany({
      // A canceled or failed video offers no master, even when the event arrives after the cancel.
      where: { id: videoId, playable: false, status: { in: ["QUEUED", "PROCESSING", "READY"] } },
      data: { playable: true, masterKey: e.masterKey, playableAt: at },
    });
    if (count) await emitPlayable(webhooks, tx, videoId);
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
async function onSucceeded(
  deps: IngestDeps,
  e: EventOf<"job.succeeded">,
  videoId: string,
  discarded: boolean,
): Promise<void> {
  await finishRun(deps, e);
  const at = new Date(e.at);
  let renditionsQueued = false;
  const count = await deps.db.$transaction(async (tx) => {
    await lockVideo(tx, videoId);
    const count = await succeedAttemptIn(tx, e, at);
    if (!count) return 0;
    if (discarded) await discardVideoIn(tx, videoId, e, at);
    else renditionsQueued = await finishVideoIn(deps, tx, e.jobId, videoId, e, at, "ready");
    return count;
  });
  if (!count) return;
  deps.webhooks.flush();
  deps.progressWrites.forget(e.jobId);
  // The ingestor has no dispatcher: a queued job is dispatched through the requeue callback.
  if (renditionsQueued) deps.onJobRequeued(new Date());
  await publishVideoStatus(deps, videoId);
}
