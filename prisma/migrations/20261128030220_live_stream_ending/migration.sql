-- AlterTable
ALTER TABLE "LiveStream" ADD COLUMN     "endOnUnpublish" BOOLEAN NOT NULL DEFAULT true,
ADD COLUMN     "reconnectWindowSeconds" INTEGER;

