-- AlterTable
ALTER TABLE "Variant" ADD COLUMN     "bitrate" INTEGER;

