-- CreateTable
CREATE TABLE "LiveBroadcastCharge" (
    "videoId" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "seconds" DOUBLE PRECISION NOT NULL,
    "chargedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "LiveBroadcastCharge_pkey" PRIMARY KEY ("videoId")
);

