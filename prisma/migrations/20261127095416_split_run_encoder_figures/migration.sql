-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "encoderFigures" JSONB;

