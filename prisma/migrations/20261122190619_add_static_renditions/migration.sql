-- CreateEnum
CREATE TYPE "StaticRenditionName" AS ENUM ('HIGHEST', 'LOW', 'AUDIO');

-- CreateEnum
CREATE TYPE "StaticRenditionStatus" AS ENUM ('PREPARING', 'READY', 'FAILED', 'SKIPPED');

-- AlterEnum
ALTER TYPE "JobKind" ADD VALUE 'STATIC_RENDITIONS';

-- CreateTable
CREATE TABLE "StaticRendition" (
    "id" UUID NOT NULL,
    "videoId" UUID NOT NULL,
    "name" "StaticRenditionName" NOT NULL,
    "status" "StaticRenditionStatus" NOT NULL DEFAULT 'PREPARING',
    "jobId" UUID,
    "videoRung" TEXT,
    "audioRung" TEXT,
    "width" INTEGER,
    "height" INTEGER,
    "bitrate" INTEGER,
    "sizeBytes" BIGINT,
    "key" TEXT,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "readyAt" TIMESTAMP(3),

    CONSTRAINT "StaticRendition_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "StaticRendition_videoId_name_key" ON "StaticRendition"("videoId", "name");

-- AddForeignKey
ALTER TABLE "StaticRendition" ADD CONSTRAINT "StaticRendition_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

