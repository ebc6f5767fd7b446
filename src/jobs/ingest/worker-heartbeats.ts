import type { WorkerHeartbeat } from "../../protocol/worker-messages.ts";
import type { IngestDeps } from "./ingest-deps.ts";

/**
 * A worker's heartbeat: what is alive (for LOCAL_FALLBACK routing and live admission), the runs it
 * no longer lists ended, the cancels it missed sent again, and its runs' heartbeats.
 */
export async function onHeartbeat(
  deps: Pick<IngestDeps, "db" | "onCanceledJobReported">,
  h: WorkerHeartbeat,
): Promise<void> {
  const { db } = deps;
  const at = new Date(h.at);
  // An older heartbeat delivered late changes nothing.
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
  if (h.activeJobs.length === 0) return;
  // Its runs' heartbeats: one statement for the jobs and one for the runs, whatever their number (a
  // worker of 16 slots lists 16), each locking its rows in id order as the progress batch does.
  const jobIds = h.activeJobs.map((a) => a.jobId);
  const attempts = h.activeJobs.map((a) => a.attempt);
  await db.$executeRaw`
    WITH locked AS MATERIALIZED (
      SELECT id FROM "Job" WHERE id = ANY(${jobIds}::uuid[]) ORDER BY id FOR NO KEY UPDATE
    )
    UPDATE "Job" AS j SET "heartbeatAt" = ${at}, "updatedAt" = now()
    FROM locked, unnest(${jobIds}::uuid[], ${attempts}::int[]) AS x(id, attempt)
    WHERE j.id = locked.id AND j.id = x.id AND j.attempt = x.attempt AND j.status = 'RUNNING'`;
  await db.$executeRaw`
    WITH locked AS MATERIALIZED (
      SELECT id FROM "JobRun" WHERE "jobId" = ANY(${jobIds}::uuid[]) AND "workerId" = ${h.workerId}
      ORDER BY id FOR NO KEY UPDATE
    )
    UPDATE "JobRun" AS r SET "heartbeatAt" = ${at}
    FROM locked, unnest(${jobIds}::uuid[], ${attempts}::int[]) AS x("jobId", attempt)
    WHERE r.id = locked.id AND r."jobId" = x."jobId" AND r.attempt = x.attempt AND r.status = 'RUNNING'`;
}
