-- AlterTable
ALTER TABLE "Variant" ADD COLUMN     "averageBitRate" INTEGER,
ADD COLUMN     "peakBitRate" INTEGER;

