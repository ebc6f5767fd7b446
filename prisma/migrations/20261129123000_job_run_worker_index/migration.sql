-- A worker's heartbeat finds its running runs by this index (src/jobs/ingest/worker-heartbeats.ts).
-- CreateIndex
CREATE INDEX "JobRun_workerId_status_idx" ON "JobRun"("workerId", "status");
