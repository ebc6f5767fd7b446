-- AlterTable
ALTER TABLE "Tenant" ADD COLUMN     "analyticsEnabled" BOOLEAN NOT NULL DEFAULT true;

-- CreateTable
CREATE TABLE "AnalyticsView" (
    "id" UUID NOT NULL,
    "videoId" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastBeaconAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeq" INTEGER NOT NULL DEFAULT -1,
    "startupMs" INTEGER,
    "watchMs" BIGINT NOT NULL DEFAULT 0,
    "rebufferCount" INTEGER NOT NULL DEFAULT 0,
    "rebufferMs" BIGINT NOT NULL DEFAULT 0,
    "renditionSwitches" INTEGER NOT NULL DEFAULT 0,
    "failed" BOOLEAN NOT NULL DEFAULT false,
    "failureCode" TEXT,
    "completed" BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "AnalyticsView_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AnalyticsHour" (
    "videoId" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "hour" TIMESTAMP(3) NOT NULL,
    "views" INTEGER NOT NULL DEFAULT 0,
    "uniqueViewers" INTEGER NOT NULL DEFAULT 0,
    "watchMs" BIGINT NOT NULL DEFAULT 0,
    "startupHistogram" INTEGER[],
    "rebufferCount" INTEGER NOT NULL DEFAULT 0,
    "rebufferMs" BIGINT NOT NULL DEFAULT 0,
    "renditionSwitches" INTEGER NOT NULL DEFAULT 0,
    "failedViews" INTEGER NOT NULL DEFAULT 0,
    "completedViews" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "AnalyticsHour_pkey" PRIMARY KEY ("videoId","hour")
);

-- CreateTable
CREATE TABLE "AnalyticsTenantHour" (
    "tenantId" UUID NOT NULL,
    "hour" TIMESTAMP(3) NOT NULL,
    "views" INTEGER NOT NULL DEFAULT 0,
    "uniqueViewers" INTEGER NOT NULL DEFAULT 0,
    "watchMs" BIGINT NOT NULL DEFAULT 0,
    "startupHistogram" INTEGER[],
    "rebufferCount" INTEGER NOT NULL DEFAULT 0,
    "rebufferMs" BIGINT NOT NULL DEFAULT 0,
    "renditionSwitches" INTEGER NOT NULL DEFAULT 0,
    "failedViews" INTEGER NOT NULL DEFAULT 0,
    "completedViews" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "AnalyticsTenantHour_pkey" PRIMARY KEY ("tenantId","hour")
);

-- CreateTable
CREATE TABLE "AnalyticsHeightHour" (
    "videoId" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "hour" TIMESTAMP(3) NOT NULL,
    "height" INTEGER NOT NULL,
    "watchMs" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "AnalyticsHeightHour_pkey" PRIMARY KEY ("videoId","hour","height")
);

-- CreateTable
CREATE TABLE "AnalyticsDailyViewer" (
    "videoId" UUID NOT NULL,
    "day" DATE NOT NULL,
    "viewerHash" TEXT NOT NULL,

    CONSTRAINT "AnalyticsDailyViewer_pkey" PRIMARY KEY ("videoId","day","viewerHash")
);

-- CreateTable
CREATE TABLE "AnalyticsSalt" (
    "day" DATE NOT NULL,
    "salt" TEXT NOT NULL,

    CONSTRAINT "AnalyticsSalt_pkey" PRIMARY KEY ("day")
);

-- CreateIndex
CREATE INDEX "AnalyticsView_videoId_lastBeaconAt_idx" ON "AnalyticsView"("videoId", "lastBeaconAt");

-- CreateIndex
CREATE INDEX "AnalyticsView_startedAt_idx" ON "AnalyticsView"("startedAt");

-- CreateIndex
CREATE INDEX "AnalyticsHour_tenantId_hour_idx" ON "AnalyticsHour"("tenantId", "hour");

-- CreateIndex
CREATE INDEX "AnalyticsHeightHour_tenantId_hour_idx" ON "AnalyticsHeightHour"("tenantId", "hour");

-- CreateIndex
CREATE INDEX "AnalyticsDailyViewer_day_idx" ON "AnalyticsDailyViewer"("day");

-- AddForeignKey
ALTER TABLE "AnalyticsView" ADD CONSTRAINT "AnalyticsView_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AnalyticsHour" ADD CONSTRAINT "AnalyticsHour_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AnalyticsTenantHour" ADD CONSTRAINT "AnalyticsTenantHour_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AnalyticsHeightHour" ADD CONSTRAINT "AnalyticsHeightHour_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AnalyticsDailyViewer" ADD CONSTRAINT "AnalyticsDailyViewer_videoId_fkey" FOREIGN KEY ("videoId") REFERENCES "Video"("id") ON DELETE CASCADE ON UPDATE CASCADE;

