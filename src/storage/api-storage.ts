import type { Env } from "../config.ts";
import { s3CredentialsOf } from "../shared/env.ts";
import type { GcsStorage } from "./gcs.ts";
import { LocalStorage } from "./local.ts";
import type { S3Storage } from "./s3.ts";
import type { UrlSigner } from "./url-signer.ts";

/**
 * The storage the API uses, as STORAGE configures it. A cloud adapter is imported only when it is
 * the one configured: each SDK weighs tens of MiB of resident memory once loaded. A backend added to
 * the setting fails to compile here until it is built.
 */
export async function createApiStorage(
  env: Env,
  urls: { publicUrl: string; signer: UrlSigner },
): Promise<GcsStorage | S3Storage | LocalStorage> {
  const { publicUrl, signer } = urls;
  switch (env.STORAGE) {
    case "gcs": {
      const { GcsStorage } = await import("./gcs.ts");
      return new GcsStorage({
        bucket: env.GCS_BUCKET!,
        apiEndpoint: env.GCS_API_ENDPOINT,
        publicUrl,
        signedUrlTtlSeconds: env.GCS_SIGNED_URL_TTL_SECONDS,
      });
    }
    case "s3": {
      const { S3Storage } = await import("./s3.ts");
      return new S3Storage({
        bucket: env.S3_BUCKET!,
        endpoint: env.S3_ENDPOINT,
        region: env.S3_REGION,
        forcePathStyle: env.S3_FORCE_PATH_STYLE,
        credentials: s3CredentialsOf(env),
        signedUrlTtlSeconds: env.S3_SIGNED_URL_TTL_SECONDS,
        maxUploadBytes: env.MAX_UPLOAD_BYTES,
        publicUrl,
        signer,
        uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS,
      });
    }
    case "local":
      return new LocalStorage(env.DATA_DIR, { publicUrl, signer, uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS });
    default:
      throw new Error(`unknown STORAGE ${env.STORAGE satisfies never}`);
  }
}
