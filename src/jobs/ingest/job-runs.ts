import type { Db } from "../../db/client.ts";
import { log } from "../../log.ts";
import type { Job, JobKind, JobStatus } from "../../generated/prisma/client.ts";
import { cancelSplitFamily } from "../cancel.ts";
import { endsRun, isProgressEvent, type JobEvent, type RunEndEvent } from "../../protocol/job-events.ts";
import type { WorkerHeartbeat } from "../../protocol/worker-messages.ts";
import { videoWebhookData, webhookEventId } from "../../webhooks/events.ts";
import { retryDelayMs } from "../dispatcher.ts";
import { userFacingError } from "../user-facing-error.ts";
import { lockVideo } from "../video-lock.ts";
import { publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import { failStaticRenditions } from "../queue-static-renditions.ts";
import { failAudioTrackOfJob } from "../../audio-tracks/audio-track-jobs.ts";
import { failGeneratedCaption } from "../../captions/generated-caption-jobs.ts";
import { JOB_KINDS } from "../kinds/index.ts";
import { finishRun, recordResume, runKey, runOf, startsOver } from "./run-records.ts";
import { onRunStarted } from "./run-starts.ts";
import { onHeartbeat } from "./worker-heartbeats.ts";

/** An admitted event's job, as `admit` found it. */
type AdmittedJob = { videoId: string; status: JobStatus; kind: JobKind };

/**
 * The bookkeeping every job kind shares: which events of which attempt still count (and their
 * sequence), its runs (a delivery to a worker: started in `run-starts.ts`, finished in
 * `run-records.ts`, abandoned when it stalls or a duplicate takes over), the failure and retry of
 * attempts, and worker heartbeats (`worker-heartbeats.ts`).
 */
export function createJobRunIngestor(deps: IngestDeps) {
  return {
    admit: (e: JobEvent) => admit(deps, e),
    recordSeq: (e: JobEvent) => recordSeq(deps.db, e),
    onStarted: (e: EventOf<"job.started">, job: AdmittedJob) => onRunStarted(deps, e, job),
    finishRun: (e: RunEndEvent) => finishRun(deps, e),
    recordResume: (e: EventOf<"job.probed">) => recordResume(deps.db, e),
    onFailed: (e: EventOf<"job.failed">, videoId: string) => onFailed(deps, e, videoId),
    onHeartbeat: (h: WorkerHeartbeat) => onHeartbeat(deps, h),
  };
}
export type JobRunIngestor = ReturnType<typeof createJobRunIngestor>;

/**
 * The job's video and status when `e` still counts, or null when it is ignored: an unknown job,
 * a superseded attempt, a finished job's end, or progress older than an applied state event.
 * Events of a canceled attempt end their run or tell the worker (again) to stop.
 */
async function admit(deps: IngestDeps, e: JobEvent): Promise<AdmittedJob | null> {
  const job = await deps.db.job.findUnique({
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
    if (endsRun(e)) await finishRun(deps, e);
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
async function recordSeq(db: Db, e: JobEvent): Promise<void> {
  if (isProgressEvent(e)) return;
  await db.job.updateMany({
    where: { id: e.jobId, attempt: e.attempt, lastSeq: { lt: e.seq } },
    data: { lastSeq: e.seq },
  });
}

/**
 * Whether the transport delivered the message of `e`'s run again and that delivery's run started:
 * the attempt is that run's now.
 */
async function takenOver(db: Db, e: JobEvent): Promise<boolean> {
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
async function liveTakenOver(db: Db, e: JobEvent): Promise<boolean> {
  const job = await db.job.findUnique({ where: { id: e.jobId }, select: { kind: true, runId: true } });
  return job?.kind === "LIVE" && job.runId !== (e.runId ?? "");
}

/** The attempt failed: the job is queued again when it may be retried, else it and its video fail. */
async function onFailed(deps: IngestDeps, e: EventOf<"job.failed">, videoId: string): Promise<void> {
  const { db } = deps;
  const run = await db.jobRun.findUnique({ where: { jobId_attempt_workerId_runId: runKey(e) } });
  await finishRun(deps, e);
  if ((await takenOver(db, e)) || (run?.status === "ABANDONED" && (await liveTakenOver(db, e)))) {
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
  if (e.retryable && job.attempt < job.maxAttempts) await retryAttempt(deps, job, error);
  else await failLastAttempt(deps, e, job, videoId, error);
}

/** Queues the job's next attempt after its back-off. */
async function retryAttempt(deps: IngestDeps, job: Job, error: string): Promise<void> {
  const runAfter = new Date(Date.now() + retryDelayMs(job.attempt + 1));
  const fromZero = await startsOver(deps.db, job);
  const { count } = await deps.db.job.updateMany({
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
    log.warn("job attempt failed on the nvenc queue; its next attempt goes to cpu", {
      jobId: job.id,
      attempt: job.attempt,
    });
  }
  if (count) deps.onJobRequeued(runAfter);
}

/** The job's last attempt failed: the job fails, and what its kind says follows, with its webhooks. */
async function failLastAttempt(
  deps: IngestDeps,
  e: EventOf<"job.failed">,
  job: Job,
  videoId: string,
  error: string,
): Promise<void> {
  const { webhooks } = deps;
  const at = new Date(e.at);
  const stopped: Job[] = [];
  const count = await deps.db.$transaction(async (tx) => {
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
      case "fail its audio track":
        await failAudioTrackOfJob(tx, job.id, error);
        break;
      case "fail its caption":
        await failGeneratedCaption(tx, job.id, error);
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
    return count;
  });
  if (!count) return;
  webhooks.flush();
  for (const other of stopped) await deps.onCanceledJobReported(other.id, other.attempt);
  await publishVideoStatus(deps, videoId);
}

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
