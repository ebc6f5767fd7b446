import type { Db, DbTransaction as Tx } from "../../db/client.ts";
import type { JobKind } from "../../generated/prisma/client.ts";
import { log } from "../../log.ts";
import type { JobEvent, RunEndEvent } from "../../protocol/job-events.ts";
import { recordActualCost } from "../../costs/job-cost.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";

/**
 * The JobRun row of the delivery that sent `e`; workers older than run ids have one run per
 * attempt and worker.
 */
export const runKey = (e: JobEvent) => ({
  jobId: e.jobId,
  attempt: e.attempt,
  workerId: e.workerId,
  runId: e.runId ?? "",
});

/** Names a run in log lines. */
export const runOf = (e: JobEvent) => ({ jobId: e.jobId, workerId: e.workerId, runId: e.runId });

/**
 * Whether a new run of the job encodes its whole part again: a run of a split transcode (a chunk,
 * or the first run once it has chunks) does (docs/chunked-transcoding.md), so the transcode's
 * progress and ETA count that part from its start when a retry or a takeover starts one.
 */
export async function startsOver(db: Db, job: { id: string; kind: JobKind }): Promise<boolean> {
  if (job.kind === "TRANSCODE_CHUNK") return true;
  return job.kind === "TRANSCODE" && (await db.job.count({ where: { parentId: job.id, kind: "TRANSCODE_CHUNK" } })) > 0;
}

/** The run's row as its end leaves it: how it ended and, from newer workers, what it used. */
function runEnding(e: RunEndEvent) {
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
  return { failure, usage };
}

/** Records how a run ended (also a run first heard of by its end, or one presumed dead). */
export async function finishRun(deps: Pick<IngestDeps, "db" | "costs">, e: RunEndEvent): Promise<void> {
  const { db } = deps;
  const { failure, usage } = runEnding(e);
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
export async function recordResume(db: Db, e: EventOf<"job.probed">): Promise<void> {
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
 * `e`'s attempt SUCCEEDED at `at`, if it is still queued or running (a later attempt, a cancel or an
 * end applied before leaves it as it is): the number of jobs moved, 0 or 1. Inside the caller's
 * transaction, under the video's lock.
 */
export async function succeedAttemptIn(tx: Tx, e: JobEvent, at: Date): Promise<number> {
  const { count } = await tx.job.updateMany({
    where: { id: e.jobId, attempt: e.attempt, status: { in: ["QUEUED", "RUNNING"] } },
    data: { status: "SUCCEEDED", progress: 1, finishedAt: at, error: null },
  });
  return count;
}
