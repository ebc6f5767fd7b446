-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "chapters" JSONB NOT NULL DEFAULT '[]',
ADD COLUMN     "chaptersKey" TEXT;

