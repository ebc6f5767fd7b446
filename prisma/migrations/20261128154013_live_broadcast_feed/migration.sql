-- CreateTable
CREATE TABLE "LiveBroadcastFeed" (
    "videoId" UUID NOT NULL,
    "receivedSeconds" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "lackedSeconds" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "LiveBroadcastFeed_pkey" PRIMARY KEY ("videoId")
);

-- AddForeignKey
ALTER TABLE "LiveBroadcastFeed" ADD CONSTRAINT "LiveBroadcastFeed_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

