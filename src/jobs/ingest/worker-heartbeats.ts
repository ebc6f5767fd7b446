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
