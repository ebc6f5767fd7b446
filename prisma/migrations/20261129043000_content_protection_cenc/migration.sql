-- AlterEnum
ALTER TYPE "ContentProtection" ADD VALUE 'CENC';
