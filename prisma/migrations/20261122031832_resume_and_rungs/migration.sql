-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "rungs" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- AlterTable
ALTER TABLE "JobRun" ADD COLUMN     "resumedFromSeconds" DOUBLE PRECISION,
ADD COLUMN     "resumedSegments" INTEGER;

