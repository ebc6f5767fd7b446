import { generateKeyPairSync } from "node:crypto";
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
