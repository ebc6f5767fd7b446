-- AlterTable
ALTER TABLE "Worker" ADD COLUMN     "probing" TEXT[] DEFAULT ARRAY[]::TEXT[];

