-- AlterEnum
ALTER TYPE "VideoSource" ADD VALUE 'CLIP';

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "clipEnd" DOUBLE PRECISION,
ADD COLUMN     "clipOfId" UUID,
ADD COLUMN     "clipStart" DOUBLE PRECISION;

-- CreateIndex
CREATE INDEX "Video_clipOfId_idx" ON "Video"("clipOfId");

-- AddForeignKey
ALTER TABLE "Video" ADD CONSTRAINT "Video_clipOfId_fkey" FOREIGN KEY ("clipOfId") REFERENCES "Video"("id") ON DELETE SET NULL ON UPDATE CASCADE;

