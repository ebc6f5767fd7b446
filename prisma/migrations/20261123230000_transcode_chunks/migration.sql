-- AlterEnum
ALTER TYPE "JobKind" ADD VALUE 'TRANSCODE_CHUNK';

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "output" JSONB;
