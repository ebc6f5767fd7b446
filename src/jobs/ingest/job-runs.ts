import type { Db } from "../../db/client.ts";
import { log } from "../../log.ts";
import type { Job, JobKind, JobRun, JobStatus } from "../../generated/prisma/client.ts";
import { cancelSplitFamily } from "../cancel.ts";
import {
  endsRun,
  isProgressEvent,
  type JobEvent,
  type RunEndEvent,
  type WorkerHeartbeat,
} from "../../protocol/messages.ts";
import { videoWebhookData, webhookEventId } from "../../webhooks/events.ts";
import { retryDelayMs } from "../dispatcher.ts";
import { recordActualCost } from "../../costs/job-cost.ts";
import { userFacingError } from "../user-facing-error.ts";
import { lockVideo } from "../video-lock.ts";
import { publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import { failStaticRenditions } from "../queue-static-renditions.ts";
import { JOB_KINDS } from "../kinds/index.ts";

/**
 * The JobRun row of the delivery that sent `e`; workers older than run ids have one run per
 * attempt and worker.
 */
const runKey = (e: JobEvent) => ({
  jobId: e.jobId,
  attempt: e.attempt,
  workerId: e.workerId,
  runId: e.runId ?? "",
});

/** Names a run in log lines. */
const runOf = (e: JobEvent) => ({ jobId: e.jobId, workerId: e.workerId, runId: e.runId });

/**
 * Whether a new run of the job encodes its whole part again: a run of a split transcode (a chunk,
 * or the first run once it has chunks) does (docs/chunked-transcoding.md), so the transcode's
 * progress and ETA count that part from its start when a retry or a takeover starts one.
 */
async function startsOver(db: Db, job: { id: string; kind: JobKind }): Promise<boolean> {
  if (job.kind === "TRANSCODE_CHUNK") return true;
  return job.kind === "TRANSCODE" && (await db.job.count({ where: { parentId: job.id, kind: "TRANSCODE_CHUNK" } })) > 0;
}

/**
 * The bookkeeping every job kind shares: which events of which attempt still count (and their
 * sequence), its runs (a delivery to a worker: started, finished, abandoned when it stalls or a
 * duplicate takes over), the failure and retry of attempts, and worker heartbeats.
 */
export function createJobRunIngestor(deps: IngestDeps) {
  const { db, webhooks } = deps;

  /**
   * The job's video and status when `e` still counts, or null when it is ignored: an unknown job,
   * a superseded attempt, a finished job's end, or progress older than an applied state event.
   * Events of a canceled attempt end their run or tell the worker (again) to stop.
   */
  async function admit(e: JobEvent): Promise<{ videoId: string; status: JobStatus; kind: JobKind } | null> {
    const job = await db.job.findUnique({
      where: { id: e.jobId },
      select: { videoId: true, attempt: true, status: true, lastSeq: true, kind: true },
    });
    if (!job) {
      log.warn("event for an unknown job ignored", { jobId: e.jobId, type: e.type });
      return null;
    }
    if (job.status === "CANCELED" && e.attempt === job.attempt) {
      // The cancel won: the job and video stay as it left them. A run that ended says how; one
      // still working is told (again) to stop.
      if (endsRun(e)) await finishRun(e);
      else await deps.onCanceledJobReported(e.jobId, e.attempt);
      return null;
    }
    // A SUCCEEDED job still takes the late data events of its attempt (each handler only moves
    // states forward), so arrival order does not change the outcome.
    if (e.attempt !== job.attempt || job.status === "FAILED" || job.status === "CANCELED") {
      const about = { jobId: e.jobId, attempt: e.attempt, type: e.type };
      log.debug("event of a superseded attempt or finished job ignored", about);
      return null;
    }
    // Progress older than an applied state event says nothing new.
    if (isProgressEvent(e) && e.seq < job.lastSeq) return null;
    return { videoId: job.videoId, status: job.status, kind: job.kind };
  }

  /** Remembers the latest state event applied; progress is not a state event. */
  async function recordSeq(e: JobEvent): Promise<void> {
    if (isProgressEvent(e)) return;
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, lastSeq: { lt: e.seq } },
      data: { lastSeq: e.seq },
    });
  }

  async function onStarted(
    e: EventOf<"job.started">,
    job: { videoId: string; status: JobStatus; kind: JobKind },
  ): Promise<void> {
    const { videoId } = job;
    const now = new Date(e.at);
    if (job.status === "SUCCEEDED") {
      // A start that is not this worker's finished run arriving late: the transport delivered a
      // finished job again. The newcomer stops before it rewrites what the job published.
      const run = await db.jobRun.findUnique({ where: { jobId_attempt_workerId_runId: runKey(e) } });
      if (!run?.finishedAt || run.finishedAt < now) {
        log.warn("a finished job was started again; stopping the run", runOf(e));
        await deps.onCanceledJobReported(e.jobId, e.attempt, e.workerId, e.runId);
        return;
      }
    }
    const key = runKey(e);
    const delivery = e.delivery ? { deliveryMessageId: e.delivery.messageId, deliveryCount: e.delivery.count } : {};
    await db.jobRun.upsert({
      where: { jobId_attempt_workerId_runId: key },
      create: { ...key, ...delivery, startedAt: now, heartbeatAt: now },
      // A run first heard of through a later event learns its delivery here.
      update: delivery,
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
    // its worker stopped heartbeating, or its claim lapsed, and the transport redelivered; it ended at
    // its last sign of life.
    const others = await db.jobRun.findMany({
      where: { jobId: e.jobId, status: "RUNNING", NOT: { workerId: key.workerId, runId: key.runId } },
    });
    const aliveSince = now.getTime() - deps.stallSeconds * 1000;
    const lastSign = (run: JobRun) => run.heartbeatAt ?? run.startedAt;
    const heartbeating = (run: JobRun) => lastSign(run).getTime() >= aliveSince;
    // The transport's claim and the run's heartbeats are refreshed apart, so a run whose worker died
    // can still look alive when its message is delivered again. The transport's count says better: it
    // delivers the same message again only once the earlier delivery's claim lapsed or was handed back.
    const claimLapsed = (run: JobRun) =>
      e.delivery !== undefined &&
      run.deliveryMessageId === e.delivery.messageId &&
      run.deliveryCount !== null &&
      run.deliveryCount < e.delivery.count;
    if (others.some((run) => heartbeating(run) && !claimLapsed(run))) {
      // Another run of this job is alive and holds its delivery: the transport delivered it twice.
      // The newcomer stops (only it: the cancel names its run), so the job never runs twice at once
      // for long.
      log.warn("duplicate run of a job; stopping the newcomer", runOf(e));
      await deps.onCanceledJobReported(e.jobId, e.attempt, e.workerId, e.runId);
      return;
    }
    let tookOver = false;
    for (const run of others) {
      // Only if it is still RUNNING: a run that reported its end meanwhile stays finished.
      const finishedAt = new Date(Math.min(lastSign(run).getTime(), now.getTime()));
      const { count } = await db.jobRun.updateMany({
        where: { id: run.id, status: "RUNNING" },
        data: { status: "ABANDONED", finishedAt },
      });
      if (count) tookOver = true;
      if (count && heartbeating(run) && run.runId) {
        // Its claim lapsed, but its worker may be alive and only cut off from the transport: it would
        // go on beside the newcomer, so it is told to stop (only that run; a dead worker hears nothing).
        const lost = { workerId: run.workerId, runId: run.runId };
        log.warn("a redelivery after a lapsed claim took the job over; stopping the earlier run", {
          ...runOf(e),
          from: lost,
        });
        await deps.onCanceledJobReported(e.jobId, run.attempt, lost.workerId, lost.runId);
      }
    }
    // The run holds the job now: its worker and delivery, and a redelivered attempt starts its
    // sequence again at 1 (a newcomer stopped above changes none of it); a run of a split transcode
    // that took over encodes its part again from its start.
    const holder = { workerId: e.workerId, runId: key.runId, startedAt: now, heartbeatAt: now };
    const fromZero = tookOver && (await startsOver(db, { id: e.jobId, kind: job.kind }));
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
      data: { ...holder, status: "RUNNING", lastSeq: e.seq, ...(fromZero ? { progress: 0 } : {}) },
    });
    // Arriving after the job finished (out of order), it still tells where and when it ran.
    await db.job.updateMany({
      where: { id: e.jobId, attempt: e.attempt, status: "SUCCEEDED", startedAt: null },
      data: holder,
    });
    const { count } = await db.video.updateMany({
      where: { id: videoId, status: "QUEUED" },
      data: { status: "PROCESSING" },
    });
    if (count) await publishVideoStatus(deps, videoId);
  }

  /** Records how a run ended (also a run first heard of by its end, or one presumed dead). */
  async function finishRun(e: RunEndEvent): Promise<void> {
    const failure =
      e.type === "job.failed"
        ? {
            status: "FAILED" as const,
            error: e.error,
            command: e.command ?? null,
            stderrTail: e.stderrTail ?? null,
            exitCode: e.exitCode ?? null,
          }
        : e.type === "job.canceled"
          ? { status: "CANCELED" as const }
          : { status: "SUCCEEDED" as const, alreadyDone: e.alreadyDone === true };
    const usage = e.usage ? { cpuSeconds: e.usage.cpuSeconds, wallSeconds: e.usage.wallSeconds } : {};
    const key = runKey(e);
    const finishedAt = new Date(e.at);
    if (failure.status === "SUCCEEDED" && failure.alreadyDone) {
      log.info("a delivery of a finished job found its output complete and did no work", runOf(e));
    }
    // `job.started` may not have arrived yet; the run then starts when it is first heard of.
    await db.jobRun.upsert({
      where: { jobId_attempt_workerId_runId: key },
      create: { ...key, ...failure, ...usage, startedAt: finishedAt, finishedAt },
      update: {},
    });
    // A run presumed dead that reports its end did run until then.
    await db.jobRun.updateMany({
      where: { ...key, status: { in: ["RUNNING", "ABANDONED"] } },
      data: { ...failure, ...usage, finishedAt },
    });
    if (e.usage) await recordActualCost(db, deps.costs, e.jobId);
  }

  /** The run resumed from what an earlier run published. */
  async function recordResume(e: EventOf<"job.probed">): Promise<void> {
    if (!e.resumed) return;
    const key = runKey(e);
    const resumed = { resumedSegments: e.resumed.segments, resumedFromSeconds: e.resumed.fromSeconds };
    const at = new Date(e.at);
    // `job.started` may not have arrived yet; the run then starts when it is first heard of.
    await db.jobRun.upsert({
      where: { jobId_attempt_workerId_runId: key },
      create: { ...key, ...resumed, startedAt: at, heartbeatAt: at },
      update: resumed,
    });
  }

  /**
   * Whether the transport delivered the message of `e`'s run again and that delivery's run started:
   * the attempt is that run's now.
   */
  async function takenOver(e: JobEvent): Promise<boolean> {
    const run = await db.jobRun.findUnique({ where: { jobId_attempt_workerId_runId: runKey(e) } });
    if (run?.deliveryMessageId == null || run.deliveryCount == null) return false;
    const later = await db.jobRun.count({
      where: {
        jobId: e.jobId,
        attempt: e.attempt,
        deliveryMessageId: run.deliveryMessageId,
        deliveryCount: { gt: run.deliveryCount },
      },
    });
    return later > 0;
  }

  /**
   * Whether `e`'s run, abandoned, was of a broadcast's job queued again for another run to take it
   * over (its feed lost its reader: src/live/broadcast-handovers.ts): its failure is not the broadcast's.
   */
  async function liveTakenOver(e: JobEvent): Promise<boolean> {
    const job = await db.job.findUnique({ where: { id: e.jobId }, select: { kind: true, runId: true } });
    return job?.kind === "LIVE" && job.runId !== (e.runId ?? "");
  }

  /** The attempt failed: the job is queued again when it may be retried, else it and its video fail. */
  async function onFailed(e: EventOf<"job.failed">, videoId: string): Promise<void> {
    const run = await db.jobRun.findUnique({ where: { jobId_attempt_workerId_runId: runKey(e) } });
    await finishRun(e);
    if ((await takenOver(e)) || (run?.status === "ABANDONED" && (await liveTakenOver(e)))) {
      // A run that lost its claim (stopped when it found out, say) fails alone: the redelivery goes on.
      log.warn("a run whose delivery another run took over failed; the attempt goes on", runOf(e));
      return;
    }
    const job = await db.job.findUnique({ where: { id: e.jobId } });
    if (!job || job.attempt !== e.attempt || !["QUEUED", "RUNNING"].includes(job.status)) return;
    deps.progressWrites.forget(e.jobId);
    const { jobId, attempt, command, stderrTail } = e;
    log.warn("job attempt failed", { jobId, attempt, error: e.error, command, stderrTail });
    const error = userFacingError(e.error);
    if (e.retryable && job.attempt < job.maxAttempts) {
      const runAfter = new Date(Date.now() + retryDelayMs(job.attempt + 1));
      const fromZero = await startsOver(db, job);
      const { count } = await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: {
          status: "QUEUED",
          attempt: job.attempt + 1,
          dispatchedAt: null,
          runAfter,
          lastSeq: 0,
          error,
          workerId: null,
          runId: "",
          ...(fromZero ? { progress: 0 } : {}),
          // A GPU can pass its probe and still fail real encodes (driver, session limit, memory):
          // the next attempts go to cpu rather than to the GPU that failed.
          ...(job.dispatchedTo === "nvenc" ? { routingReason: "GPU_ENCODE_FAILED" as const } : {}),
        },
      });
      if (count && job.dispatchedTo === "nvenc") {
        log.warn("job attempt failed on the nvenc queue; its next attempt goes to cpu", { jobId, attempt });
      }
      if (count) deps.onJobRequeued(runAfter);
      return;
    }
    const at = new Date(e.at);
    const stopped: Job[] = [];
    const count = await db.$transaction(async (tx) => {
      await lockVideo(tx, videoId);
      const { count } = await tx.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "FAILED", error, finishedAt: at },
      });
      if (!count) return 0;
      // What a job's last failure does, as its kind's module says.
      const onLastFailure = JOB_KINDS[job.kind].onLastFailure;
      switch (onLastFailure) {
        case "fail its static renditions":
          await failStaticRenditions(tx, job.id, error);
          break;
        case "fail the video":
          // A split transcode's other runs stop: without this job's part the video cannot be whole.
          stopped.push(...(await cancelSplitFamily(tx, job, error, at)));
          await failVideoIn(tx, videoId, error, at);
          break;
        default:
          onLastFailure satisfies never;
      }
      const jobData = { id: job.id, kind: job.kind, attempt: job.attempt, error, videoId };
      const jobEventId = webhookEventId("job.failed", job.id, String(job.attempt));
      await webhooks.emit(tx, videoId, "job.failed", jobEventId, { job: jobData });
      const video = await tx.video.findUniqueOrThrow({ where: { id: videoId } });
      if (video.status === "FAILED") {
        const eventId = webhookEventId("video.failed", videoId, video.finishedAt!.toISOString());
        await webhooks.emit(tx, videoId, "video.failed", eventId, { video: videoWebhookData(video) });
      }
      await deps.holdTransition?.(e);
      return count;
    });
    if (!count) return;
    webhooks.flush();
    for (const other of stopped) await deps.onCanceledJobReported(other.id, other.attempt);
    await publishVideoStatus(deps, videoId);
  }

  async function onHeartbeat(h: WorkerHeartbeat): Promise<void> {
    const at = new Date(h.at);
    // What is alive, for LOCAL_FALLBACK routing and live admission; an older heartbeat delivered late changes nothing.
    await db.$executeRaw`
      INSERT INTO "Worker" (id, capabilities, probing, slots, "liveSlots", "lastHeartbeatAt")
        VALUES (${h.workerId}, ${h.capabilities}, ${h.probing ?? []}::text[], ${h.slots ?? 1}, ${h.liveSlots ?? null}::int,
          ${at})
      ON CONFLICT (id) DO UPDATE
        SET capabilities = EXCLUDED.capabilities, probing = EXCLUDED.probing, slots = EXCLUDED.slots,
          "liveSlots" = EXCLUDED."liveSlots", "lastHeartbeatAt" = EXCLUDED."lastHeartbeatAt"
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
      await db.job.updateMany({
        where: { id: active.jobId, attempt: active.attempt, status: "RUNNING" },
        data: { heartbeatAt: at },
      });
      await db.jobRun.updateMany({
        where: { jobId: active.jobId, attempt: active.attempt, workerId: h.workerId, status: "RUNNING" },
        data: { heartbeatAt: at },
      });
    }
  }

  return { admit, recordSeq, onStarted, finishRun, recordResume, onFailed, onHeartbeat };
}
export type JobRunIngestor = ReturnType<typeof createJobRunIngestor>;

/**
 * Fails a video that cannot be finished, and its unfinished rungs, in the caller's transaction: its
 * master lists playlists that will never end, so it is not playable either.
 */
export async function failVideoIn(
  tx: Pick<Db, "variant" | "video">,
  videoId: string,
  error: string,
  at: Date,
): Promise<void> {
  await tx.variant.updateMany({
    where: { videoId, status: { in: ["PENDING", "ENCODING"] } },
    data: { status: "FAILED", error },
  });
  await tx.video.updateMany({
    where: { id: videoId, status: { in: ["QUEUED", "PROCESSING"] } },
    data: { status: "FAILED", playable: false, error, finishedAt: at },
  });
}
