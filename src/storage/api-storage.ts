import type { Env } from "../config.ts";
import { GcsStorage } from "./gcs.ts";
import { LocalStorage } from "./local.ts";
import { S3Storage } from "./s3.ts";
import type { UrlSigner } from "./url-signer.ts";

/** The storage the API uses, as STORAGE configures it. */
export function createApiStorage(
  env: Env,
  urls: { publicUrl: string; signer: UrlSigner },
): GcsStorage | S3Storage | LocalStorage {
  const { publicUrl, signer } = urls;
  if (env.STORAGE === "gcs") {
    return new GcsStorage({
      bucket: env.GCS_BUCKET!,
      apiEndpoint: env.GCS_API_ENDPOINT,
      publicUrl,
      signedUrlTtlSeconds: env.GCS_SIGNED_URL_TTL_SECONDS,
    });
  }
  if (env.STORAGE === "s3") {
    return new S3Storage({
      bucket: env.S3_BUCKET!,
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: env.S3_FORCE_PATH_STYLE,
      signedUrlTtlSeconds: env.S3_SIGNED_URL_TTL_SECONDS,
      maxUploadBytes: env.MAX_UPLOAD_BYTES,
      publicUrl,
      signer,
      uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS,
    });
  }
  return new LocalStorage(env.DATA_DIR, { publicUrl, signer, uploadUrlTtlSeconds: env.UPLOAD_URL_TTL_SECONDS });
}
