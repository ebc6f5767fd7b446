-- CreateEnum
CREATE TYPE "ContentProtection" AS ENUM ('AES_128');

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "contentProtection" "ContentProtection",
ADD COLUMN     "keyRotationSegments" INTEGER;

-- CreateTable
CREATE TABLE "ContentKey" (
    "videoId" UUID NOT NULL,
    "keyId" BYTEA NOT NULL,
    "sealedKey" BYTEA NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ContentKey_pkey" PRIMARY KEY ("videoId")
);

-- AddForeignKey
ALTER TABLE "ContentKey" ADD CONSTRAINT "ContentKey_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

