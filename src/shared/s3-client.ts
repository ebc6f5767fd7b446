import { S3Client } from "@aws-sdk/client-s3";
import type { S3Credentials } from "./env.ts";

export interface S3ConnectionOptions {
  /** An S3-compatible service (R2, Spaces, MinIO); undefined: AWS S3. */
  endpoint?: string;
  region: string;
  /** `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key` (MinIO, moto). */
  forcePathStyle: boolean;
  /** Static keys (S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: `s3CredentialsOf`); undefined: the SDK's default chain. */
  credentials?: S3Credentials;
}

/**
 * An S3 client; credentials are the static keys given, else come from the SDK's default chain
 * (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity, the instance's role).
 * Other services than AWS get checksums only where an operation requires them: several reject or
 * mishandle the SDK's default CRC headers.
 */
export function createS3Client(options: S3ConnectionOptions): S3Client {
  return new S3Client({
    region: options.region,
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle,
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.endpoint
      ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" }
      : {}),
  });
}
