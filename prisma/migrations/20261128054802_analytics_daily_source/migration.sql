-- CreateTable
CREATE TABLE "AnalyticsDailySource" (
    "videoId" UUID NOT NULL,
    "day" DATE NOT NULL,
    "sourceHash" TEXT NOT NULL,
    "viewers" INTEGER NOT NULL,

    CONSTRAINT "AnalyticsDailySource_pkey" PRIMARY KEY ("videoId","day","sourceHash")
);

-- CreateIndex
CREATE INDEX "AnalyticsDailySource_day_idx" ON "AnalyticsDailySource"("day");

-- AddForeignKey
ALTER TABLE "AnalyticsDailySource" ADD CONSTRAINT "AnalyticsDailySource_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

