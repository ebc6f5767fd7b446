-- AlterEnum
ALTER TYPE "VideoStatus" ADD VALUE 'DISCARDED';

-- AlterTable
ALTER TABLE "LiveStream" ADD COLUMN     "recording" BOOLEAN NOT NULL DEFAULT true;
