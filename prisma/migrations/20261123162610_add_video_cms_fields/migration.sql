-- Trigram index on titles (finding videos by a part of their title). pg_trgm is a trusted
-- contrib extension: the database owner may create it (Postgres 13+, Cloud SQL, the embedded one).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- DropIndex
DROP INDEX "Video_tenantId_createdAt_idx";

-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "description" TEXT,
ADD COLUMN     "externalId" TEXT,
ADD COLUMN     "metadata" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "tags" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateIndex
CREATE INDEX "Video_tenantId_createdAt_id_idx" ON "Video"("tenantId", "createdAt", "id");

-- CreateIndex
CREATE INDEX "Video_tenantId_title_id_idx" ON "Video"("tenantId", "title", "id");

-- CreateIndex
CREATE INDEX "Video_tenantId_status_createdAt_id_idx" ON "Video"("tenantId", "status", "createdAt", "id");

-- CreateIndex
CREATE INDEX "Video_title_idx" ON "Video" USING GIN ("title" gin_trgm_ops);

-- CreateIndex
CREATE INDEX "Video_tags_idx" ON "Video" USING GIN ("tags");

-- CreateIndex
CREATE INDEX "Video_metadata_idx" ON "Video" USING GIN ("metadata" jsonb_path_ops);

-- CreateIndex
CREATE UNIQUE INDEX "Video_tenantId_externalId_key" ON "Video"("tenantId", "externalId");

