import { generateKeyPairSync } from "node:crypto";
import { S3Client } from "@aws-sdk/client-s3";
import { IdempotencyStrategy, Storage } from "@google-cloud/storage";

/**
 * A GCS client: Application Default Credentials against Google, or the server at `apiEndpoint`
 * (JSON API, uploads and signed URLs all go there). An emulator checks no signatures but signing
 * still needs a key, so without credentials a throwaway one is generated. `retryAlways`: every
 * request may be retried (a caller whose writes replace whole objects with the same content).
 */
export function createGcsClient(apiEndpoint?: string, options: { retryAlways?: boolean } = {}): Storage {
  const retry = options.retryAlways ? { retryOptions: { idempotencyStrategy: IdempotencyStrategy.RetryAlways } } : {};
  if (apiEndpoint && !process.env.GOOGLE_APPLICATION_CREDENTIALS) {
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    return new Storage({
      apiEndpoint,
      ...retry,
      projectId: process.env.GOOGLE_CLOUD_PROJECT ?? "videograph-local",
      credentials: {
        client_email: "videograph-emulator@videograph-local.iam.gserviceaccount.com",
        private_key: privateKey,
      },
    });
  }
  return new Storage({ ...retry, ...(apiEndpoint ? { apiEndpoint } : {}) });
}

export interface S3ConnectionOptions {
  /** An S3-compatible service (R2, Spaces, MinIO); undefined: AWS S3. */
  endpoint?: string;
  region: string;
  /** `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key` (MinIO, moto). */
  forcePathStyle: boolean;
}

/**
 * An S3 client; credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity, the instance's role). Other services than
 * AWS get checksums only where an operation requires them: several reject or mishandle the
 * SDK's default CRC headers.
 */
export function createS3Client(options: S3ConnectionOptions): S3Client {
  return new S3Client({
    region: options.region,
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint
      ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" }
      : {}),
  });
}
