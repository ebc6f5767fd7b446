-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "storyboard" JSONB;

