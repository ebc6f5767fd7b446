-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "uploadExpiresAt" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "Video_status_uploadExpiresAt_idx" ON "Video"("status", "uploadExpiresAt");

