-- AlterTable
ALTER TABLE "JobRun" ADD COLUMN     "deliveryCount" INTEGER,
ADD COLUMN     "deliveryMessageId" TEXT;

