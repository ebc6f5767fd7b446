-- CreateEnum
CREATE TYPE "CaptionStatus" AS ENUM ('PROCESSING', 'READY', 'FAILED');

-- AlterEnum
ALTER TYPE "CaptionSource" ADD VALUE 'GENERATED';

-- AlterEnum
ALTER TYPE "JobKind" ADD VALUE 'TRANSCRIBE';

-- AlterTable
ALTER TABLE "Caption" ADD COLUMN     "error" TEXT,
ADD COLUMN     "jobId" UUID,
ADD COLUMN     "progress" DOUBLE PRECISION NOT NULL DEFAULT 1,
ADD COLUMN     "status" "CaptionStatus" NOT NULL DEFAULT 'READY';

