/** Headers a stored object is served with. */
export interface UploadOptions {
  contentType: string;
  cacheControl: string;
}

/** An object `list` found: its key, and how many bytes storage holds for it. */
export interface StoredObject {
  key: string;
  bytes: number;
}

/**
 * The worker's view of media storage. Keys are relative, slash-separated paths such as
 * `videos/{videoId}/hls/720p/index.m3u8`. An upload replaces the object atomically: readers see
 * the old object or the new one, never part of one.
 */
export interface WorkerStorage {
  /** A local path or URL ffmpeg can read the object from. */
  inputFor(key: string): Promise<string>;
  upload(key: string, file: string, opts: UploadOptions): Promise<void>;
  /**
   * Stores an object that is never replaced (an HLS segment, served `immutable`): when `key`
   * exists with the same bytes nothing is written; with other bytes it throws ObjectExistsError
   * (write-once.ts) and the stored object stays as it is. The check and the write are one step
   * of the store (a create-only write), so two runs racing for a key cannot both win.
   */
  uploadOnce(key: string, file: string, opts: UploadOptions): Promise<void>;
  /** The objects under `prefix` (a key prefix ending in `/`), in no particular order. */
  list(prefix: string): Promise<StoredObject[]>;
  /** Copies an object to a local file. */
  download(key: string, file: string): Promise<void>;
  /** A small object's text (a playlist), or null when there is no such object. */
  readText(key: string): Promise<string | null>;
}
