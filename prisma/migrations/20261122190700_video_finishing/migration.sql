-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "finishing" JSONB;

