-- CreateEnum
CREATE TYPE "VideoSource" AS ENUM ('UPLOAD', 'URL', 'MANIM', 'COMPOSITION');

-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "JobKind" ADD VALUE 'RENDER_MANIM';
ALTER TYPE "JobKind" ADD VALUE 'RENDER_COMPOSITION';
ALTER TYPE "JobKind" ADD VALUE 'IMPORT_URL';

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "dispatchedTo" TEXT,
ADD COLUMN     "input" JSONB;

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "source" "VideoSource" NOT NULL DEFAULT 'UPLOAD';

-- CreateTable
CREATE TABLE "Worker" (
    "id" TEXT NOT NULL,
    "capabilities" TEXT[],
    "lastHeartbeatAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Worker_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Asset" (
    "id" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "contentType" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Asset_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Worker_lastHeartbeatAt_idx" ON "Worker"("lastHeartbeatAt");

-- CreateIndex
CREATE INDEX "Asset_tenantId_createdAt_idx" ON "Asset"("tenantId", "createdAt");

-- AddForeignKey
ALTER TABLE "Asset" ADD CONSTRAINT "Asset_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

