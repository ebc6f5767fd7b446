import { assertValidKey, type UploadTarget, type UploadTargetOptions } from "./types.ts";
import type { UrlSigner } from "./url-signer.ts";

/** The API route that serves published media (src/http/media.ts): `/media/{storage key}`. */
export const MEDIA_PATH_PREFIX = "/media/";

/** The API route that takes uploads for ResumableUploads storage (src/uploads/upload-put.ts). */
export const UPLOAD_PATH_PREFIX = "/uploads/";

/** The URL the API serves a stored object at, under `publicUrl` ("" for a URL relative to its origin). */
export const mediaUrl = (publicUrl: string, key: string): string => `${publicUrl}${MEDIA_PATH_PREFIX}${key}`;

/** What an adapter needs to hand out the API's own signed upload URLs. */
export interface UploadUrlSigning {
  /** Origin for the URLs handed out, or "" for URLs relative to the API's origin. */
  publicUrl: string;
  signer: UrlSigner;
  uploadUrlTtlSeconds: number;
}

/**
 * The API's own upload URL, `PUT /uploads/{videoId}?…&sig`, for storage that takes uploads
 * through the API (ResumableUploads). It is bound to the video (path), its size limit and the
 * nonce the video holds until the upload completes.
 */
export function signedUploadTarget(
  videoId: string,
  options: UploadTargetOptions,
  signing: UploadUrlSigning,
): UploadTarget {
  assertValidKey(videoId);
  const params = { max: String(options.size ?? options.maxBytes), n: options.nonce };
  const signed = signing.signer.sign(`${UPLOAD_PATH_PREFIX}${videoId}`, signing.uploadUrlTtlSeconds, params);
  return {
    url: `${signing.publicUrl}${signed}`,
    expiresAt: new Date(Date.now() + signing.uploadUrlTtlSeconds * 1000),
  };
}
