-- DropIndex
DROP INDEX "JobRun_jobId_attempt_workerId_key";

-- AlterTable
ALTER TABLE "JobRun" ADD COLUMN     "alreadyDone" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "runId" TEXT NOT NULL DEFAULT '';

-- CreateIndex
CREATE UNIQUE INDEX "JobRun_jobId_attempt_workerId_runId_key" ON "JobRun"("jobId", "attempt", "workerId", "runId");

