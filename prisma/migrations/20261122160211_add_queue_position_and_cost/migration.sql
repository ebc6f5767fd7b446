-- CreateEnum
CREATE TYPE "CostEstimateBasis" AS ENUM ('PROBE', 'UPLOAD_SIZE');

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "actualCostUsd" DOUBLE PRECISION,
ADD COLUMN     "cpuSeconds" DOUBLE PRECISION,
ADD COLUMN     "estimateBasis" "CostEstimateBasis",
ADD COLUMN     "estimatedCostUsd" DOUBLE PRECISION,
ADD COLUMN     "estimatedCpuSeconds" DOUBLE PRECISION,
ADD COLUMN     "estimatedWallSeconds" DOUBLE PRECISION,
ADD COLUMN     "rungCosts" JSONB,
ADD COLUMN     "wallSeconds" DOUBLE PRECISION;

-- AlterTable
ALTER TABLE "JobRun" ADD COLUMN     "cpuSeconds" DOUBLE PRECISION,
ADD COLUMN     "wallSeconds" DOUBLE PRECISION;

-- AlterTable
ALTER TABLE "Worker" ADD COLUMN     "slots" INTEGER NOT NULL DEFAULT 1;

-- CreateIndex
CREATE INDEX "Job_finishedAt_idx" ON "Job"("finishedAt");

