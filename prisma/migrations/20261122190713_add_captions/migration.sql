-- CreateEnum
CREATE TYPE "CaptionSource" AS ENUM ('UPLOADED');

-- CreateTable
CREATE TABLE "Caption" (
    "id" UUID NOT NULL,
    "videoId" UUID NOT NULL,
    "language" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "autoselect" BOOLEAN NOT NULL DEFAULT true,
    "forced" BOOLEAN NOT NULL DEFAULT false,
    "hearingImpaired" BOOLEAN NOT NULL DEFAULT false,
    "source" "CaptionSource" NOT NULL DEFAULT 'UPLOADED',
    "key" TEXT NOT NULL,
    "cueCount" INTEGER NOT NULL,
    "lastCueEnd" DOUBLE PRECISION NOT NULL,
    "size" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Caption_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Caption_videoId_createdAt_idx" ON "Caption"("videoId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "Caption_videoId_name_key" ON "Caption"("videoId", "name");

-- AddForeignKey
ALTER TABLE "Caption" ADD CONSTRAINT "Caption_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

