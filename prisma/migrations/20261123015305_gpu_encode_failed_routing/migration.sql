-- AlterEnum
ALTER TYPE "JobRoutingReason" ADD VALUE 'GPU_ENCODE_FAILED';

