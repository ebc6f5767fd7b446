import type { WorkerHeartbeat } from "../../protocol/worker-messages.ts";
import type { IngestDeps } from "./ingest-deps.ts";

/**
 * A worker's heartbeat: what is alive (for LOCAL_FALLBACK routing and live admission), the runs it
 * no longer lists ended, its runs' heartbeats, and the cancels it missed sent again.
 */
export async function onHeartbeat(
  deps: Pick<IngestDeps, "db" | "onCanceledJobReported">,
  h: WorkerHeartbeat,
): Promise<void> {
  const { db } = deps;
  const at = new Date(h.at);
  const jobIds = h.activeJobs.map((a) => a.jobId);
  const attempts = h.activeJobs.map((a) => a.attempt);
  // Two statements whatever the worker runs (docs/performance.md, "A heartbeat in two statements");
  // a heartbeat delivered late (the queue redelivers; a sample overtakes the queue) moves nothing back.
  // The worker, and its runs: those it lists heartbeat; those it started before the heartbeat but
  // no longer lists have ended (finished, their own event says so, or handed back at shutdown),
  // so another worker may take them at once. Its runs are locked in id order, as the progress
  // batch locks its rows.
  await db.$executeRaw`
    WITH worker AS (
      INSERT INTO "Worker" (id, capabilities, probing, slots, "liveSlots", "lastHeartbeatAt")
        VALUES (${h.workerId}, ${h.capabilities}, ${h.probing ?? []}::text[], ${h.slots ?? 1}, ${h.liveSlots ?? null}::int,
          ${at})
      ON CONFLICT (id) DO UPDATE
        SET capabilities = EXCLUDED.capabilities, probing = EXCLUDED.probing, slots = EXCLUDED.slots,
          "liveSlots" = EXCLUDED."liveSlots", "lastHeartbeatAt" = EXCLUDED."lastHeartbeatAt"
      WHERE "Worker"."lastHeartbeatAt" < EXCLUDED."lastHeartbeatAt"
      RETURNING 1
    ), locked AS MATERIALIZED (
      SELECT id FROM "JobRun" WHERE "workerId" = ${h.workerId} AND status = 'RUNNING' ORDER BY id FOR NO KEY UPDATE
    ), runs AS (
      SELECT r.id, x."jobId" IS NOT NULL AS listed
      FROM locked JOIN "JobRun" AS r ON r.id = locked.id
        LEFT JOIN unnest(${jobIds}::uuid[], ${attempts}::int[]) AS x("jobId", attempt)
          ON x."jobId" = r."jobId" AND x.attempt = r.attempt
      WHERE x."jobId" IS NOT NULL OR r."startedAt" < ${at}
    )
    UPDATE "JobRun" AS r
    SET status = CASE WHEN runs.listed THEN r.status ELSE 'ABANDONED'::"JobRunStatus" END,
      "finishedAt" = CASE WHEN runs.listed THEN r."finishedAt" ELSE ${at} END,
      "heartbeatAt" = CASE WHEN runs.listed THEN GREATEST(r."heartbeatAt", ${at}) ELSE r."heartbeatAt" END
    FROM runs WHERE r.id = runs.id`;
  if (h.activeJobs.length === 0) return;
  // The jobs it runs heartbeat (the attempt's, whoever runs it); and the attempts it lists that were
  // canceled: a cancel broadcast while this worker's control channel was down is lost, and it learns
  // of it here, on its next heartbeat (a worker sends one as soon as its channel is back).
  const canceled = await db.$queryRaw<{ id: string; attempt: number }[]>`
    WITH locked AS MATERIALIZED (
      SELECT id FROM "Job" WHERE id = ANY(${jobIds}::uuid[]) ORDER BY id FOR NO KEY UPDATE
    ), listed AS (
      SELECT * FROM unnest(${jobIds}::uuid[], ${attempts}::int[]) AS x(id, attempt)
    ), beat AS (
      UPDATE "Job" AS j SET "heartbeatAt" = GREATEST(j."heartbeatAt", ${at}), "updatedAt" = now()
      FROM locked, listed AS x
      WHERE j.id = locked.id AND j.id = x.id AND j.attempt = x.attempt AND j.status = 'RUNNING'
    )
    SELECT j.id::text AS id, j.attempt FROM "Job" AS j JOIN listed AS x ON j.id = x.id AND j.attempt = x.attempt
    WHERE j.status = 'CANCELED'`;
  for (const job of canceled) await deps.onCanceledJobReported(job.id, job.attempt, h.workerId);
}
