-- CreateEnum
CREATE TYPE "LiveStreamStatus" AS ENUM ('IDLE', 'CONNECTED', 'LIVE', 'DISCONNECTED', 'ENDED');

-- CreateEnum
CREATE TYPE "LiveLatencyMode" AS ENUM ('STANDARD', 'LOW');

-- AlterEnum
ALTER TYPE "JobKind" ADD VALUE 'LIVE';

-- AlterEnum
ALTER TYPE "VideoSource" ADD VALUE 'LIVE';

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "liveStreamId" UUID;

-- CreateTable
CREATE TABLE "LiveStream" (
    "id" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "title" TEXT NOT NULL,
    "playbackPolicy" "PlaybackPolicy" NOT NULL DEFAULT 'PUBLIC',
    "latencyMode" "LiveLatencyMode" NOT NULL DEFAULT 'STANDARD',
    "keyHash" TEXT NOT NULL,
    "keyHint" TEXT NOT NULL,
    "disabledAt" TIMESTAMP(3),
    "status" "LiveStreamStatus" NOT NULL DEFAULT 'IDLE',
    "lastError" TEXT,
    "activeVideoId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "LiveStream_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "LiveStream_keyHash_key" ON "LiveStream"("keyHash");

-- CreateIndex
CREATE INDEX "LiveStream_tenantId_createdAt_idx" ON "LiveStream"("tenantId", "createdAt");

-- AddForeignKey
ALTER TABLE "LiveStream" ADD CONSTRAINT "LiveStream_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Video" ADD CONSTRAINT "Video_liveStreamId_fkey" FOREIGN KEY ("liveStreamId") REFERENCES "LiveStream"("id") ON DELETE SET NULL ON UPDATE CASCADE;

