import type { JobKind, JobRun, JobStatus } from "../../generated/prisma/client.ts";
import { log } from "../../log.ts";
import { publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import { runKey, runOf, startsOver } from "./run-records.ts";

type StartDeps = Pick<IngestDeps, "db" | "pubSub" | "stallSeconds" | "onCanceledJobReported">;
type Started = EventOf<"job.started">;

/**
 * A run started: its row, the runs of the job it takes over (or its own stop, when another run still
 * holds the delivery), and the job and video as it now holds them.
 */
export async function onRunStarted(
  deps: StartDeps,
  e: Started,
  job: { videoId: string; status: JobStatus; kind: JobKind },
): Promise<void> {
  const now = new Date(e.at);
  if (job.status === "SUCCEEDED" && (await isRedeliveryOfFinished(deps, e, now))) {
    log.warn("a finished job was started again; stopping the run", runOf(e));
    await deps.onCanceledJobReported(e.jobId, e.attempt, e.workerId, e.runId);
    return;
  }
  await recordRunStart(deps, e, now);
  const tookOver = await takeOverOtherRuns(deps, e, now);
  if (tookOver === "stopped") return;
  await holdJob(deps, e, job, now, tookOver);
}

/**
 * A start that is not this worker's finished run arriving late: the transport delivered a finished
 * job again. The newcomer stops before it rewrites what the job published.
 */
async function isRedeliveryOfFinished(deps: StartDeps, e: Started, now: Date): Promise<boolean> {
  const run = await deps.db.jobRun.findUnique({ where: { jobId_attempt_workerId_runId: runKey(e) } });
  return !run?.finishedAt || run.finishedAt < now;
}

/** The run's row, with its delivery and its true start however its events arrived. */
async function recordRunStart(deps: StartDeps, e: Started, now: Date): Promise<void> {
  const { db } = deps;
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
}

/**
 * Another run of this job (on another worker, or another delivery to this one) has lost it: its
 * worker stopped heartbeating, or its claim lapsed, and the transport redelivered; it ended at its
 * last sign of life. Whether the newcomer took one over, or was itself stopped as a duplicate.
 */
async function takeOverOtherRuns(deps: StartDeps, e: Started, now: Date): Promise<boolean | "stopped"> {
  const { db } = deps;
  const key = runKey(e);
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
    return "stopped";
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
  return tookOver;
}

/**
 * The run holds the job now: its worker and delivery, and a redelivered attempt starts its sequence
 * again at 1; a run of a split transcode that took over encodes its part again from its start.
 */
async function holdJob(
  deps: StartDeps,
  e: Started,
  job: { videoId: string; kind: JobKind },
  now: Date,
  tookOver: boolean,
): Promise<void> {
  const { db } = deps;
  const holder = { workerId: e.workerId, runId: runKey(e).runId, startedAt: now, heartbeatAt: now };
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
    where: { id: job.videoId, status: "QUEUED" },
    data: { status: "PROCESSING" },
  });
  if (count) await publishVideoStatus(deps, job.videoId);
}
