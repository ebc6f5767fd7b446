-- CreateEnum
CREATE TYPE "SegmentFormat" AS ENUM ('TS', 'FMP4');

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "segmentFormat" "SegmentFormat" NOT NULL DEFAULT 'TS';

