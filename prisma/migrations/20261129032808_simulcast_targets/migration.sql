-- CreateEnum
CREATE TYPE "SimulcastTargetState" AS ENUM ('IDLE', 'CONNECTING', 'LIVE', 'RETRYING', 'STOPPED');

-- CreateTable
CREATE TABLE "SimulcastTarget" (
    "id" UUID NOT NULL,
    "liveStreamId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "keyCiphertext" TEXT NOT NULL,
    "keyHint" TEXT NOT NULL,
    "state" "SimulcastTargetState" NOT NULL DEFAULT 'IDLE',
    "lastError" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "SimulcastTarget_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "SimulcastTarget_liveStreamId_createdAt_idx" ON "SimulcastTarget"("liveStreamId", "createdAt");

-- AddForeignKey
ALTER TABLE "SimulcastTarget" ADD CONSTRAINT "SimulcastTarget_liveStreamId_fkey" FOREIGN KEY ("liveStreamId") REFERENCES "LiveStream"("id") ON DELETE CASCADE ON UPDATE CASCADE;

