-- CreateTable
CREATE TABLE "LiveUsage" (
    "tenantId" UUID NOT NULL,
    "month" DATE NOT NULL,
    "seconds" DOUBLE PRECISION NOT NULL DEFAULT 0,

    CONSTRAINT "LiveUsage_pkey" PRIMARY KEY ("tenantId","month")
);

-- AddForeignKey
ALTER TABLE "LiveUsage" ADD CONSTRAINT "LiveUsage_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;
