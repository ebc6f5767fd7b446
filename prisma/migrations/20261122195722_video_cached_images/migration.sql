-- AlterTable
ALTER TABLE "Video" ADD COLUMN     "cachedImages" INTEGER NOT NULL DEFAULT 0;

