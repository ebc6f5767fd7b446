import { mediaUrl } from "./api-urls.ts";
import type { PublishedObjectAccess } from "./types.ts";

const MAX_CACHED_URLS = 50_000;

/**
 * Signed read URLs issued per time window (a quarter of the TTL) and reused within it, so a
 * playlist does not cost a signature per segment per request and players and CDNs see stable
 * URLs they can cache; at least three quarters of a URL's lifetime is left when it is handed out.
 */
export class SignedUrlCache {
  readonly ttlSeconds: number;
  readonly #sign: (key: string, window: { start: Date; expiresInSeconds: number }) => Promise<string>;
  readonly #urls = new Map<string, { windowStart: number; url: Promise<string> }>();

  constructor(
    ttlSeconds: number,
    sign: (key: string, window: { start: Date; expiresInSeconds: number }) => Promise<string>,
  ) {
    this.ttlSeconds = ttlSeconds;
    this.#sign = sign;
  }

  /**
   * The URL a client is handed for a stored object: a playlist (or a DASH MPD) goes through the API's
   * /media/ under `publicUrl`, which signs the URIs inside it per request; anything else is signed here.
   */
  clientUrlFor(key: string, publicUrl: string): Promise<string> {
    const servedByApi = key.endsWith(".m3u8") || key.endsWith(".vtt") || key.endsWith(".mpd");
    return servedByApi ? Promise.resolve(mediaUrl(publicUrl, key)) : this.urlFor(key);
  }

  /** The bytes of an object, read through its signed URL. */
  async *read(key: string): AsyncIterable<Uint8Array> {
    const response = await fetch(await this.urlFor(key));
    if (!response.ok || !response.body) throw new Error(`Reading ${key} from the bucket: HTTP ${response.status}`);
    const reader = response.body.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) yield chunk.value;
  }

  urlFor(key: string, now = Date.now()): Promise<string> {
    const quarterMs = (this.ttlSeconds * 1000) / 4;
    const windowStart = Math.floor(now / quarterMs) * quarterMs;
    const cached = this.#urls.get(key);
    if (cached && cached.windowStart === windowStart) return cached.url;
    const url = this.#sign(key, { start: new Date(windowStart), expiresInSeconds: this.ttlSeconds });
    if (this.#urls.size >= MAX_CACHED_URLS) this.#urls.clear();
    const entry = { windowStart, url };
    this.#urls.set(key, entry);
    url.catch(() => {
      if (this.#urls.get(key) === entry) this.#urls.delete(key);
    });
    return url;
  }
}

/** How players get a bucket's published objects: by the signed URLs `store` issues. */
export function servedFromBucket(store: {
  signedUrlTtlSeconds: number;
  signedReadUrl(key: string): Promise<string>;
}): PublishedObjectAccess {
  return {
    servedBy: "bucket",
    signedUrlTtlSeconds: store.signedUrlTtlSeconds,
    signedReadUrl: (key) => store.signedReadUrl(key),
  };
}
