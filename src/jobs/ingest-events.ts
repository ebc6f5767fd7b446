import type { Db } from "../db/client.ts";
import { retryDelayMs } from "./dispatcher.ts";
import type { Variant } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import { parseWorkerEvent, type JobEvent, type WorkerEvent, type WorkerHeartbeat } from "../protocol/messages.ts";
import {
  TERMINAL_VARIANT_STATUSES,
  variantSnapshot,
  videoSnapshot,
  type VideoPubSub,
} from "../events/video-events.ts";

type EventOf<T extends JobEvent["type"]> = Extract<JobEvent, { type: T }>;

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
  progressWriteIntervalMs: number;
  onJobRequeued: (runAfter: Date) => void;
}): EventIngestor {
  const { db, pubSub } = deps;
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

  async function onStarted(e: EventOf<"job.started">, videoId: string): Promise<void> {
    const now = new Date(e.at);
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
      // A redelivered attempt starts its sequence again at 1.
      data: { status: "RUNNING", workerId: e.workerId, startedAt: now, heartbeatAt: now, lastSeq: e.seq },
    });
    const { count } = await db.video.updateMany({ where: { id: videoId, status: "QUEUED" }, data: { status: "PROCESSING" } });
    if (count) await publishStatus(videoId);
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

  async function onVariantReady(e: EventOf<"variant.ready">, videoId: string): Promise<void> {
    const { count } = await db.variant.updateMany({
      where: { videoId, name: e.name, status: { in: ["PENDING", "ENCODING"] } },
      data: { status: "READY", progress: 1, playlistKey: e.playlistKey, segmentCount: e.segmentCount, readyAt: new Date(e.at) },
    });
    if (!count) return;
    const variant = await db.variant.findUnique({ where: { videoId_name: { videoId, name: e.name } } });
    if (variant) await publishVariant(videoId, variant);
  }

  async function onPlayable(e: EventOf<"video.playable">, videoId: string): Promise<void> {
    const { count } = await db.video.updateMany({
      where: { id: videoId, playable: false },
      data: { playable: true, masterKey: e.masterKey, playableAt: new Date(e.at) },
    });
    if (count) await publishStatus(videoId);
  }

  async function onSucceeded(e: EventOf<"job.succeeded">, videoId: string): Promise<void> {
    const at = new Date(e.at);
    const { count } = await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
      data: { status: "SUCCEEDED", progress: 1, finishedAt: at, error: null },
    });
    if (!count) return;
    lastProgressWrite.delete(e.jobId);
    await db.video.updateMany({
      where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
      data: { status: "READY", playable: true, masterKey: e.masterKey, posterKey: e.posterKey, finishedAt: at },
    });
    await db.video.updateMany({ where: { id: videoId, playableAt: null }, data: { playableAt: at } });
    await publishStatus(videoId);
  }

  async function onFailed(e: EventOf<"job.failed">, videoId: string): Promise<void> {
    const job = await db.job.findUnique({ where: { id: e.jobId } });
    if (!job || job.attempt !== e.attempt || !["QUEUED", "RUNNING"].includes(job.status)) return;
    lastProgressWrite.delete(e.jobId);
    log.warn("job attempt failed", { jobId: e.jobId, attempt: e.attempt, error: e.error, command: e.command, stderrTail: e.stderrTail });
    if (e.retryable && job.attempt < job.maxAttempts) {
      const runAfter = new Date(Date.now() + retryDelayMs(job.attempt + 1));
      const { count } = await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "QUEUED", attempt: job.attempt + 1, dispatchedAt: null, runAfter, lastSeq: 0, error: e.error, workerId: null },
      });
      if (count) deps.onJobRequeued(runAfter);
      return;
    }
    const at = new Date(e.at);
    const { count } = await db.job.updateMany({
      where: { id: job.id, attempt: job.attempt, status: { in: ["QUEUED", "RUNNING"] } },
      data: { status: "FAILED", error: e.error, finishedAt: at },
    });
    if (!count) return;
    await db.variant.updateMany({ where: { videoId, status: { in: ["PENDING", "ENCODING"] } }, data: { status: "FAILED", error: e.error } });
    await db.video.updateMany({
      where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
      data: { status: "FAILED", error: e.error, finishedAt: at },
    });
    await publishStatus(videoId);
  }

  async function applyJobEvent(e: JobEvent): Promise<void> {
    const job = await db.job.findUnique({ where: { id: e.jobId }, select: { videoId: true, attempt: true, status: true, lastSeq: true } });
    if (!job) {
      log.warn("event for an unknown job ignored", { jobId: e.jobId, type: e.type });
      return;
    }
    if (e.attempt !== job.attempt || job.status === "SUCCEEDED" || job.status === "FAILED" || job.status === "CANCELED") {
      log.debug("event of a superseded attempt or finished job ignored", { jobId: e.jobId, attempt: e.attempt, type: e.type });
      return;
    }
    // Progress older than an applied state event says nothing new.
    if (e.type === "job.progress" && e.seq < job.lastSeq) return;
    switch (e.type) {
      case "job.started": await onStarted(e, job.videoId); break;
      case "job.probed": await onProbed(e, job.videoId); break;
      case "job.progress": await onProgress(e, job.videoId); break;
      case "variant.ready": await onVariantReady(e, job.videoId); break;
      case "video.playable": await onPlayable(e, job.videoId); break;
      case "job.succeeded": await onSucceeded(e, job.videoId); break;
      case "job.failed": await onFailed(e, job.videoId); break;
    }
    if (e.type !== "job.progress") {
      await db.job.updateMany({ where: { id: e.jobId, attempt: e.attempt, lastSeq: { lt: e.seq } }, data: { lastSeq: e.seq } });
    }
  }

  async function applyHeartbeat(h: WorkerHeartbeat): Promise<void> {
    const at = new Date(h.at);
    for (const active of h.activeJobs) {
      await db.job.updateMany({ where: { id: active.jobId, attempt: active.attempt, status: "RUNNING" }, data: { heartbeatAt: at } });
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
