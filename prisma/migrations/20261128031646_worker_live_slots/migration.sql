-- AlterTable
ALTER TABLE "Worker" ADD COLUMN     "liveSlots" INTEGER;

