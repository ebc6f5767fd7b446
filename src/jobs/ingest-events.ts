import type { Db } from "../db/client.ts";
import { videoWebhookData, webhookEventId, type WebhookEmitter } from "../webhooks/events.ts";
import { retryDelayMs } from "./dispatcher.ts";
import { userFacingError } from "./user-facing-error.ts";
import { lockVideo } from "./video-lock.ts";
import type { JobStatus, Variant } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import { parseWorkerEvent, type JobEvent, type WorkerEvent, type WorkerHeartbeat } from "../protocol/messages.ts";
import {
  TERMINAL_VARIANT_STATUSES,
  variantSnapshot,
  videoSnapshot,
  type VideoPubSub,
} from "../events/video-events.ts";

type EventOf<T extends JobEvent["type"]> = Extract<JobEvent, { type: T }>;

/** The JobRun row of the delivery that sent `e`; workers older than run ids have one run per attempt and worker. */
const runKey = (e: JobEvent) => ({ jobId: e.jobId, attempt: e.attempt, workerId: e.workerId, runId: e.runId ?? "" });

export interface EventIngestor {
  /** Parses, orders and applies a batch of raw worker events. */
  ingest(raw: unknown[]): Promise<void>;
}

/**
 * Applies worker events to Postgres and fans them out to subscribers. Every effect is
 * idempotent and monotonic (statuses only move forward, progress only grows), so a
 * redelivered or reordered event changes nothing; events of a superseded attempt are ignored.
 * Progress goes to subscribers at once but to the database at most every
 * `progressWriteIntervalMs` per job.
 */
export function createEventIngestor(deps: {
  db: Db;
  pubSub: VideoPubSub;
  webhooks: WebhookEmitter;
  progressWriteIntervalMs: number;
  onJobRequeued: (runAfter: Date) => void;
  /** A worker started (or still runs) an attempt that was canceled: tell it (or only `workerId`, or only its run `runId`) to stop. */
  onCanceledJobReported: (jobId: string, attempt: number, workerId?: string, runId?: string) => Promise<void>;
  /** A run whose worker has not been heard of for this long is presumed dead. */
  stallSeconds: number;
  /** Test seam: awaited inside the transaction of a job's final transition (under the video's lock), just before it commits. */
  holdTransition?: (e: JobEvent) => Promise<void>;
}): EventIngestor {
  const { db, pubSub, webhooks } = deps;
  const lastProgressWrite = new Map<string, number>();

  async function publishStatus(videoId: string): Promise<void> {
    const video = await db.video.findUnique({ where: { id: videoId } });
    if (video) pubSub.publish("videoEvents", videoId, { kind: "status", video: videoSnapshot(video) });
  }

  async function publishVariant(videoId: string, variant: Variant): Promise<void> {
    const video = await db.video.findUnique({ where: { id: videoId } });
    if (video) {
      pubSub.publish("videoEvents", videoId, { kind: "variantStatus", video: videoSnapshot(video), variant: variantSnapshot(variant) });
    }
  }

  async function emitPlayable(tx: Parameters<WebhookEmitter["emit"]>[0], videoId: string): Promise<void> {
    const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
    await webhooks.emit(tx, videoId, "video.playable", webhookEventId("video.playable", videoId), { video: videoWebhookData(video) });
  }

  async function onStarted(e: EventOf<"job.started">, videoId: string, jobStatus: JobStatus): Promise<void> {
    const now = new Date(e.at);
    if (jobStatus === "SUCCEEDED") {
      // A start that is not this worker's finished run arriving late: the transport delivered a
      // finished job again. The newcomer stops before it rewrites what the job published.
      const run = await db.jobRun.findUnique({ where: { jobId_attempt_workerId_runId: runKey(e) } });
      if (!run?.finishedAt || run.finishedAt < now) {
        log.warn("a finished job was started again; stopping the run", { jobId: e.jobId, workerId: e.workerId, runId: e.runId });
        await deps.onCanceledJobReported(e.jobId, e.attempt, e.workerId, e.runId);
        return;
      }
    }
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
      // A redelivered attempt starts its sequence again at 1.
      data: { status: "RUNNING", workerId: e.workerId, startedAt: now, heartbeatAt: now, lastSeq: e.seq },
    });
    // Arriving after the job finished (out of order), it still tells where and when it ran.
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: "SUCCEEDED", startedAt: null },
      data: { workerId: e.workerId, startedAt: now, heartbeatAt: now },
    });
    const key = runKey(e);
    await db.jobRun.upsert({
      where: { jobId_attempt_workerId_runId: key },
      create: { ...key, startedAt: now, heartbeatAt: now },
      update: {},
    });
    // The same worker starts the attempt again after handing it back (memory, shutdown).
    await db.jobRun.updateMany({
      where: { ...key, status: "ABANDONED", finishedAt: { lt: now } },
      data: { status: "RUNNING", finishedAt: null, heartbeatAt: now },
    });
    // The run was first heard of through a later event; this is when it really started.
    await db.jobRun.updateMany({
      where: { ...key, startedAt: { gt: now } },
      data: { startedAt: now, heartbeatAt: now },
    });
    // Another run of this job (on another worker, or another delivery to this one) has lost it:
    // its worker stopped heartbeating and the transport redelivered; it ended at its last sign of life.
    const others = await db.jobRun.findMany({ where: { jobId: e.jobId, status: "RUNNING", NOT: { workerId: key.workerId, runId: key.runId } } });
    const aliveSince = now.getTime() - deps.stallSeconds * 1000;
    if (others.some((run) => (run.heartbeatAt ?? run.startedAt).getTime() >= aliveSince)) {
      // Another run of this job is alive: the transport delivered it twice. The newcomer stops
      // (only it: the cancel names its run), so the job never runs twice at once for long.
      log.warn("duplicate run of a job; stopping the newcomer", { jobId: e.jobId, workerId: e.workerId, runId: e.runId });
      await deps.onCanceledJobReported(e.jobId, e.attempt, e.workerId, e.runId);
      return;
    }
    for (const run of others) {
      // Only if it is still RUNNING: a run that reported its end meanwhile stays finished.
      await db.jobRun.updateMany({ where: { id: run.id, status: "RUNNING" }, data: { status: "ABANDONED", finishedAt: run.heartbeatAt ?? run.startedAt } });
    }
    const { count } = await db.video.updateMany({ where: { id: videoId, status: "QUEUED" }, data: { status: "PROCESSING" } });
    if (count) await publishStatus(videoId);
  }

  async function finishRun(e: EventOf<"job.succeeded" | "source.ready" | "job.failed" | "job.canceled">): Promise<void> {
    const failure =
      e.type === "job.failed"
        ? { status: "FAILED" as const, error: e.error, command: e.command ?? null, stderrTail: e.stderrTail ?? null, exitCode: e.exitCode ?? null }
        : e.type === "job.canceled"
          ? { status: "CANCELED" as const }
          : { status: "SUCCEEDED" as const, alreadyDone: e.alreadyDone === true };
    const key = runKey(e);
    const finishedAt = new Date(e.at);
    if (failure.status === "SUCCEEDED" && failure.alreadyDone) {
      log.info("a delivery of a finished job found its output complete and did no work", { jobId: e.jobId, workerId: e.workerId, runId: e.runId });
    }
    // `job.started` may not have arrived yet; the run then starts when it is first heard of.
    await db.jobRun.upsert({
      where: { jobId_attempt_workerId_runId: key },
      create: { ...key, ...failure, startedAt: finishedAt, finishedAt },
      update: {},
    });
    // A run presumed dead that reports its end did run until then.
    await db.jobRun.updateMany({ where: { ...key, status: { in: ["RUNNING", "ABANDONED"] } }, data: { ...failure, finishedAt } });
  }

  async function onProbed(e: EventOf<"job.probed">, videoId: string): Promise<void> {
    const { probe } = e;
    await db.$transaction([
      db.video.update({
        where: { id: videoId },
        data: {
          duration: probe.duration,
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
        data: e.ladder.map((r) => ({
          videoId,
          name: r.name,
          kind: r.kind,
          width: r.width,
          height: r.height,
          bandwidth: r.bandwidth,
          codecs: r.codecs,
        })),
        skipDuplicates: true,
      }),
    ]);
    if (e.resumed) {
      const key = runKey(e);
      const resumed = { resumedSegments: e.resumed.segments, resumedFromSeconds: e.resumed.fromSeconds };
      const at = new Date(e.at);
      // `job.started` may not have arrived yet; the run then starts when it is first heard of.
      await db.jobRun.upsert({ where: { jobId_attempt_workerId_runId: key }, create: { ...key, ...resumed, startedAt: at, heartbeatAt: at }, update: resumed });
    }
    await publishStatus(videoId);
  }

  async function onProgress(e: EventOf<"job.progress">, videoId: string): Promise<void> {
    const [video, variants] = await Promise.all([
      db.video.findUnique({ where: { id: videoId } }),
      db.variant.findMany({ where: { videoId } }),
    ]);
    if (!video) return;
    const byName = new Map(variants.map((v) => [v.name, v]));
    const now = Date.now();
    const writeNow = now - (lastProgressWrite.get(e.jobId) ?? 0) >= deps.progressWriteIntervalMs;
    const snapshot = videoSnapshot(video);
    for (const p of e.variants) {
      const row = byName.get(p.name);
      if (!row || TERMINAL_VARIANT_STATUSES.has(row.status) || p.progress < row.progress) continue;
      const live: Variant = { ...row, status: "ENCODING", progress: p.progress, segmentCount: Math.max(row.segmentCount, p.segmentCount) };
      pubSub.publish("videoEvents", videoId, {
        kind: "variantProgress",
        video: snapshot,
        variant: variantSnapshot(live),
        fps: e.fps,
        speed: e.speed,
        etaSeconds: e.etaSeconds,
      });
      if (writeNow) {
        await db.variant.updateMany({
          where: { id: row.id, status: { in: ["PENDING", "ENCODING"] }, progress: { lte: p.progress } },
          data: { status: "ENCODING", progress: p.progress, segmentCount: live.segmentCount },
        });
      }
    }
    if (writeNow) {
      lastProgressWrite.set(e.jobId, now);
      await db.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: "RUNNING", progress: { lte: e.progress } },
        data: { progress: e.progress },
      });
    }
  }

  async function onRenderProgress(e: EventOf<"render.progress">, videoId: string): Promise<void> {
    const video = await db.video.findUnique({ where: { id: videoId } });
    if (!video) return;
    pubSub.publish("videoEvents", videoId, {
      kind: "renderProgress",
      video: videoSnapshot(video),
      index: e.index,
      count: e.count,
      percent: e.percent,
      description: e.description,
      renderedCount: e.renderedCount,
      cachedCount: e.cachedCount,
    });
    const now = Date.now();
    if (e.count && now - (lastProgressWrite.get(e.jobId) ?? 0) >= deps.progressWriteIntervalMs) {
      lastProgressWrite.set(e.jobId, now);
      const progress = Math.min(1, (Math.min(e.index, e.count - 1) + e.percent / 100) / e.count);
      await db.job.updateMany({ where: { id: e.jobId, attempt: e.attempt, status: "RUNNING", progress: { lte: progress } }, data: { progress } });
    }
  }

  /**
   * A render or import job made the video's source: it succeeds, and in the same transaction the
   * video gets the source and a transcode job (its child) is queued.
   */
  async function onSourceReady(e: EventOf<"source.ready">, videoId: string): Promise<void> {
    await finishRun(e);
    const at = new Date(e.at);
    const queued = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const { count } = await tx.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "SUCCEEDED", progress: 1, finishedAt: at, error: null },
      });
      if (!count) return false;
      const parent = await tx.job.findUniqueOrThrow({ where: { id: e.jobId } });
      await tx.video.updateMany({
        where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
        data: { sourceKey: e.outputKey, sourceName: e.outputKey.split("/").at(-1)!, uploadedAt: at },
      });
      await tx.job.create({ data: { videoId, kind: "TRANSCODE", capability: "cpu", parentId: parent.id, maxAttempts: parent.maxAttempts } });
      return true;
    });
    if (!queued) return;
    lastProgressWrite.delete(e.jobId);
    deps.onJobRequeued(new Date());
    await publishStatus(videoId);
  }

  async function onVariantReady(e: EventOf<"variant.ready">, videoId: string): Promise<void> {
    const ready = { status: "READY" as const, progress: 1, playlistKey: e.playlistKey, segmentCount: e.segmentCount, readyAt: new Date(e.at) };
    const variant = await db.$transaction(async (tx) => {
      // Before `job.probed` (events can arrive out of order) the row does not exist yet.
      const { count: created } = await tx.variant.createMany({
        data: [{ videoId, name: e.name, kind: e.rung.kind, width: e.rung.width, height: e.rung.height, bandwidth: e.rung.bandwidth, codecs: e.rung.codecs, ...ready }],
        skipDuplicates: true,
      });
      const { count } = await tx.variant.updateMany({ where: { videoId, name: e.name, status: { in: ["PENDING", "ENCODING"] } }, data: ready });
      if (!count && !created) return null;
      const row = await tx.variant.findUniqueOrThrow({ where: { videoId_name: { videoId, name: e.name } } });
      const data = { videoId, variant: { id: row.id, name: row.name, kind: row.kind, width: row.width, height: row.height, segmentCount: row.segmentCount } };
      await webhooks.emit(tx, videoId, "variant.ready", webhookEventId("variant.ready", row.id, row.readyAt!.toISOString()), data);
      return row;
    });
    if (!variant) return;
    webhooks.flush();
    await publishVariant(videoId, variant);
  }

  async function onVariantFailed(e: EventOf<"variant.failed">, videoId: string): Promise<void> {
    const failed = { status: "FAILED" as const, error: userFacingError(e.error) };
    // Before `job.probed` (events can arrive out of order) the row does not exist yet.
    await db.variant.createMany({
      data: [{ videoId, name: e.name, kind: e.rung.kind, width: e.rung.width, height: e.rung.height, bandwidth: e.rung.bandwidth, codecs: e.rung.codecs, ...failed }],
      skipDuplicates: true,
    });
    const { count } = await db.variant.updateMany({ where: { videoId, name: e.name, status: { in: ["PENDING", "ENCODING"] } }, data: failed });
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
    if (count) await publishStatus(videoId);
  }

  async function onSucceeded(e: EventOf<"job.succeeded">, videoId: string): Promise<void> {
    await finishRun(e);
    const at = new Date(e.at);
    const count = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const { count } = await tx.job.updateMany({
        where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "SUCCEEDED", progress: 1, finishedAt: at, error: null },
      });
      if (!count) return 0;
      // `video.playable` may not have arrived yet; the video is playable now, so say it once.
      const wasPlayable = (await tx.video.findUnique({ where: { id: videoId }, select: { playable: true } }))?.playable ?? true;
      await tx.video.updateMany({
        where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
        // A retried rung's job makes no poster: the video keeps the one it has.
        data: { status: "READY", playable: true, masterKey: e.masterKey, posterKey: e.posterKey ?? undefined, finishedAt: at },
      });
      await tx.video.updateMany({ where: { id: videoId, playableAt: null }, data: { playableAt: at } });
      if (!wasPlayable) await emitPlayable(tx, videoId);
      const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
      if (video.status === "READY") {
        await webhooks.emit(tx, videoId, "video.ready", webhookEventId("video.ready", videoId, video.finishedAt!.toISOString()), { video: videoWebhookData(video) });
      }
      await deps.holdTransition?.(e);
      return count;
    });
    if (!count) return;
    webhooks.flush();
    lastProgressWrite.delete(e.jobId);
    await publishStatus(videoId);
  }

  async function onFailed(e: EventOf<"job.failed">, videoId: string): Promise<void> {
    await finishRun(e);
    const job = await db.job.findUnique({ where: { id: e.jobId } });
    if (!job || job.attempt !== e.attempt || !["QUEUED", "RUNNING"].includes(job.status)) return;
    lastProgressWrite.delete(e.jobId);
    log.warn("job attempt failed", { jobId: e.jobId, attempt: e.attempt, error: e.error, command: e.command, stderrTail: e.stderrTail });
    const error = userFacingError(e.error);
    if (e.retryable && job.attempt < job.maxAttempts) {
      const runAfter = new Date(Date.now() + retryDelayMs(job.attempt + 1));
      const { count } = await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "QUEUED", attempt: job.attempt + 1, dispatchedAt: null, runAfter, lastSeq: 0, error, workerId: null },
      });
      if (count) deps.onJobRequeued(runAfter);
      return;
    }
    const at = new Date(e.at);
    const count = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const { count } = await tx.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "FAILED", error, finishedAt: at },
      });
      if (!count) return 0;
      await tx.variant.updateMany({ where: { videoId, status: { in: ["PENDING", "ENCODING"] } }, data: { status: "FAILED", error } });
      await tx.video.updateMany({
        where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
        // Its master lists playlists that will never end: nothing to play.
        data: { status: "FAILED", playable: false, error, finishedAt: at },
      });
      const jobData = { id: job.id, kind: job.kind, attempt: job.attempt, error, videoId };
      await webhooks.emit(tx, videoId, "job.failed", webhookEventId("job.failed", job.id, String(job.attempt)), { job: jobData });
      const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
      if (video.status === "FAILED") {
        await webhooks.emit(tx, videoId, "video.failed", webhookEventId("video.failed", videoId, video.finishedAt!.toISOString()), { video: videoWebhookData(video) });
      }
      await deps.holdTransition?.(e);
      return count;
    });
    if (!count) return;
    webhooks.flush();
    await publishStatus(videoId);
  }

  async function applyJobEvent(e: JobEvent): Promise<void> {
    const job = await db.job.findUnique({ where: { id: e.jobId }, select: { videoId: true, attempt: true, status: true, lastSeq: true } });
    if (!job) {
      log.warn("event for an unknown job ignored", { jobId: e.jobId, type: e.type });
      return;
    }
    if (job.status === "CANCELED" && e.attempt === job.attempt) {
      // The cancel won: the job and video stay as it left them. A run that ended says how; one
      // still working is told (again) to stop.
      if (e.type === "job.canceled" || e.type === "job.succeeded" || e.type === "source.ready" || e.type === "job.failed") await finishRun(e);
      else await deps.onCanceledJobReported(e.jobId, e.attempt);
      return;
    }
    // A SUCCEEDED job still takes the late data events of its attempt (each handler below only
    // moves states forward), so arrival order does not change the outcome.
    if (e.attempt !== job.attempt || job.status === "FAILED" || job.status === "CANCELED") {
      log.debug("event of a superseded attempt or finished job ignored", { jobId: e.jobId, attempt: e.attempt, type: e.type });
      return;
    }
    // Progress older than an applied state event says nothing new.
    if ((e.type === "job.progress" || e.type === "render.progress") && e.seq < job.lastSeq) return;
    switch (e.type) {
      case "job.started": await onStarted(e, job.videoId, job.status); break;
      case "job.probed": await onProbed(e, job.videoId); break;
      case "job.progress": await onProgress(e, job.videoId); break;
      case "variant.ready": await onVariantReady(e, job.videoId); break;
      case "variant.failed": await onVariantFailed(e, job.videoId); break;
      case "video.playable": await onPlayable(e, job.videoId); break;
      case "job.succeeded": await onSucceeded(e, job.videoId); break;
      case "render.progress": await onRenderProgress(e, job.videoId); break;
      case "source.ready": await onSourceReady(e, job.videoId); break;
      case "job.failed": await onFailed(e, job.videoId); break;
      // A duplicate run stopped on request (a canceled job's runs returned above).
      case "job.canceled": await finishRun(e); break;
    }
    if (e.type !== "job.progress" && e.type !== "render.progress") {
      await db.job.updateMany({ where: { id: e.jobId, attempt: e.attempt, lastSeq: { lt: e.seq } }, data: { lastSeq: e.seq } });
    }
  }

  async function applyHeartbeat(h: WorkerHeartbeat): Promise<void> {
    const at = new Date(h.at);
    // What is alive, for LOCAL_FALLBACK routing; an older heartbeat delivered late changes nothing.
    await db.$executeRaw`
      INSERT INTO "Worker" (id, capabilities, "lastHeartbeatAt") VALUES (${h.workerId}, ${h.capabilities}, ${at})
      ON CONFLICT (id) DO UPDATE SET capabilities = EXCLUDED.capabilities, "lastHeartbeatAt" = EXCLUDED."lastHeartbeatAt"
      WHERE "Worker"."lastHeartbeatAt" < EXCLUDED."lastHeartbeatAt"`;
    // Runs this worker started before the heartbeat but no longer lists have ended: finished (their
    // own event says so) or handed back at shutdown, so another worker may take them at once.
    await db.jobRun.updateMany({
      where: {
        workerId: h.workerId,
        status: "RUNNING",
        startedAt: { lt: at },
        NOT: h.activeJobs.map((a) => ({ jobId: a.jobId, attempt: a.attempt })),
      },
      data: { status: "ABANDONED", finishedAt: at },
    });
    // A cancel broadcast while this worker's control channel was down is lost; it learns of it
    // here, on its next heartbeat (a worker sends one as soon as its channel is back).
    if (h.activeJobs.length > 0) {
      const canceled = await db.job.findMany({
        where: { status: "CANCELED", OR: h.activeJobs.map((a) => ({ id: a.jobId, attempt: a.attempt })) },
        select: { id: true, attempt: true },
      });
      for (const job of canceled) await deps.onCanceledJobReported(job.id, job.attempt, h.workerId);
    }
    for (const active of h.activeJobs) {
      await db.job.updateMany({ where: { id: active.jobId, attempt: active.attempt, status: "RUNNING" }, data: { heartbeatAt: at } });
      await db.jobRun.updateMany({
        where: { jobId: active.jobId, attempt: active.attempt, workerId: h.workerId, status: "RUNNING" },
        data: { heartbeatAt: at },
      });
    }
  }

  return {
    async ingest(raw) {
      const events: WorkerEvent[] = [];
      for (const item of raw) {
        try {
          events.push(parseWorkerEvent(item));
        } catch (err) {
          // A foreign or malformed message can never become valid: drop it instead of redelivering forever.
          log.error("worker event rejected", { err: (err as Error).message });
        }
      }
      const order = (e: WorkerEvent) => (e.type === "worker.heartbeat" ? [e.workerId, 0, 0] : [e.jobId, e.attempt, e.seq]);
      events.sort((a, b) => {
        const [ka, aa, sa] = order(a);
        const [kb, ab, sb] = order(b);
        return ka < kb ? -1 : ka > kb ? 1 : (aa as number) - (ab as number) || (sa as number) - (sb as number);
      });
      for (const e of events) {
        if (e.type === "worker.heartbeat") await applyHeartbeat(e);
        else await applyJobEvent(e);
      }
    },
  };
}
