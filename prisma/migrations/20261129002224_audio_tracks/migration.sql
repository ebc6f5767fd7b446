-- CreateEnum
CREATE TYPE "AudioTrackStatus" AS ENUM ('PROCESSING', 'READY', 'FAILED');

-- AlterEnum
ALTER TYPE "JobKind" ADD VALUE 'AUDIO_TRACK';

-- CreateTable
CREATE TABLE "AudioTrack" (
    "id" UUID NOT NULL,
    "videoId" UUID NOT NULL,
    "language" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "status" "AudioTrackStatus" NOT NULL DEFAULT 'PROCESSING',
    "error" TEXT,
    "jobId" UUID,
    "sourceKey" TEXT,
    "sourceUrl" TEXT,
    "sourceDuration" DOUBLE PRECISION,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "readyAt" TIMESTAMP(3),

    CONSTRAINT "AudioTrack_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "AudioTrack_videoId_createdAt_idx" ON "AudioTrack"("videoId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "AudioTrack_videoId_name_key" ON "AudioTrack"("videoId", "name");

-- AddForeignKey
ALTER TABLE "AudioTrack" ADD CONSTRAINT "AudioTrack_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

