-- AlterTable
ALTER TABLE "Tenant" ADD COLUMN     "cachedImageBytes" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "cachedImageBytes" INTEGER NOT NULL DEFAULT 0;

