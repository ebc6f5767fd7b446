import type { Readable } from "node:stream";

/** Where a client sends the bytes of a new video's file. */
export interface UploadTarget {
  /**
   * `PUT` the file here, whole or in chunks with `Content-Range: bytes start-end/total`; the
   * answer is `308` with `Range` until the last byte lands, then `200`/`201`. Local storage hands
   * and S3 hand out the API's own `/uploads/…` URL (relative unless PUBLIC_URL is set), GCS a
   * resumable upload session URI; all speak this protocol (GCS wants chunks in multiples of 256 KiB).
   */
  url: string;
  /** After this the URL takes no more bytes. */
  expiresAt: Date;
}

export interface UploadTargetOptions {
  /** Largest file accepted (MAX_UPLOAD_BYTES). */
  maxBytes: number;
  /** The file's size when the client declared it; storage binds the target to it where it can. */
  size: number | null;
  /** Origin of the browser page that will upload, for CORS on the target (GCS sessions). */
  origin: string | null;
  /** Random value stored on the video; the target is good only while the video holds it. */
  nonce: string;
}

/** Bytes `start` to `end` of an object, both included. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * How players get the published objects the API does not write itself (segments, posters,
 * storyboard sheets, MP4 renditions): what `/media/` (src/http/media.ts) does differently per storage.
 */
export type PublishedObjectAccess =
  /** The API sends them from storage, with byte ranges; playlists name them by relative URI, so players come back to it. */
  | { servedBy: "api"; read(key: string, range?: ByteRange): Readable }
  /**
   * Players fetch them from the bucket: the API redirects a request for one to its signed URL, and
   * the playlists and storyboards it serves name them by signed URL, each good for `signedUrlTtlSeconds`.
   */
  | { servedBy: "bucket"; signedUrlTtlSeconds: number; signedReadUrl(key: string): Promise<string> };

/**
 * The API's view of media storage. Keys are relative, slash-separated paths laid out as in
 * docs/storage-and-deployment.md ("Storage layout"): `videos/{videoId}/source/upload`,
 * `videos/{videoId}/hls/{rung}/index.m3u8`, … Workers write published media with their own
 * adapter (render-worker/storage/); the API takes uploads, hands out URLs and deletes.
 */
export interface ApiStorage {
  /**
   * Creates the target a client uploads the source of `videoId` to; the bytes end up at
   * `videos/{videoId}/source/upload`.
   */
  createUploadTarget(videoId: string, options: UploadTargetOptions): Promise<UploadTarget>;
  /**
   * Stores a whole object from a stream and returns its size. Past `limit` bytes it throws
   * `UploadTooLargeError` and leaves no object behind; an existing object is replaced atomically.
   */
  write(key: string, body: AsyncIterable<Uint8Array>, options: { limit: number; contentType: string }): Promise<number>;
  /** Size in bytes, or null when the object does not exist. */
  size(key: string): Promise<number | null>;
  /** The object as UTF-8 text (a playlist, a WebVTT file), or null when it does not exist. */
  readText(key: string): Promise<string | null>;
  /** The bytes of an object (the image route reads published segments). */
  readObject(key: string): AsyncIterable<Uint8Array>;
  /** How players get published objects (src/http/media.ts). */
  readonly publishedObjects: PublishedObjectAccess;
  /**
   * The URL a player or browser fetches a published object (HLS playlist, segment, poster)
   * from. Playlists are always served by the API under `/media/` (relative unless PUBLIC_URL is
   * set); other objects may live elsewhere (a signed GCS URL).
   */
  urlFor(key: string): Promise<string>;
  /**
   * Like `urlFor`, for a file a browser should save as `filename` (`Content-Disposition:
   * attachment`): the API's `/media/…?download=` (which checks the name again), or a signed URL
   * whose response carries the header. `filename` is already safe (src/videos/download-filename.ts).
   */
  downloadUrlFor(key: string, filename: string): Promise<string>;
  /** Deletes every object whose key starts with `${prefix}/`; nothing there is not an error. */
  deletePrefix(prefix: string): Promise<void>;
}

/**
 * Storage whose uploads the API answers itself at its signed `PUT /uploads/{videoId}` URL
 * (src/uploads/upload-put.ts): the local directory, and S3-compatible buckets, which have no
 * resumable session a client could be handed. Calls for one upload never overlap within an
 * API instance.
 */
export interface ResumableUploads {
  /** Smallest chunk a request may declare, except the one that ends the file. */
  readonly minChunkBytes: number;
  /** How many bytes of the video's upload are held, from byte 0 without a gap. */
  receivedUploadBytes(videoId: string): Promise<number>;
  /**
   * Takes `body` as the upload's bytes from offset `start` (at most the bytes held) and returns
   * how many bytes are then held. Past `limit` it throws UploadTooLargeError. `isComplete` says
   * whether a number of bytes held is the whole file.
   */
  writeUploadChunk(
    videoId: string,
    start: number,
    body: AsyncIterable<Uint8Array>,
    options: { limit: number; isComplete(held: number): boolean },
  ): Promise<number>;
  /** Makes the bytes held the video's source, `videos/{id}/source/upload`, and returns that key. */
  finishUpload(videoId: string): Promise<string>;
}

export class UploadTooLargeError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`Upload exceeds the limit of ${limit} bytes`);
    this.name = "UploadTooLargeError";
    this.limit = limit;
  }
}

/** Storage keys are relative, slash-separated and never climb out of the root. */
export function assertValidKey(key: string): void {
  if (
    !key ||
    key.startsWith("/") ||
    key.includes("\\") ||
    key.includes("\0") ||
    key.split("/").some((p) => p === ".." || p === "." || p === "")
  ) {
    throw new Error(`Invalid storage key: ${JSON.stringify(key)}`);
  }
}
