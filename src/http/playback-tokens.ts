import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Short-lived playback tokens for videos whose playback policy is SIGNED: `{expires}.{mac}`,
 * an HMAC-SHA256 over the video id and the expiry, so a token opens one video's playlists,
 * segments and images until it expires, and nothing else. The key is derived from the signing
 * secret, so an upload URL's signature can never pass as a playback token or the reverse.
 */
export class PlaybackTokens {
  readonly #key: Buffer;
  readonly ttlSeconds: number;
  /** How long playback that started with a valid token may go on (tokens inside playlists). */
  readonly sessionSeconds: number;

  constructor(signingSecret: string, ttlSeconds: number, sessionSeconds = Math.max(ttlSeconds, 4 * 3600)) {
    this.#key = createHmac("sha256", signingSecret).update("videograph playback tokens v1").digest();
    this.ttlSeconds = ttlSeconds;
    this.sessionSeconds = sessionSeconds;
  }

  #mac(videoId: string, expires: number): string {
    return createHmac("sha256", this.#key).update(`${videoId}\n${expires}`).digest("base64url");
  }

  issue(videoId: string, ttlSeconds = this.ttlSeconds, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + ttlSeconds;
    return `${expires}.${this.#mac(videoId, expires)}`;
  }

  /** Why `token` does not open `videoId`, or null when it does. */
  check(videoId: string, token: string | null, now = Date.now()): string | null {
    if (!token) return "a playback token is required for this video";
    const m = /^(\d{1,12})\.([\w-]{43})$/.exec(token);
    if (!m) return "malformed playback token";
    const expires = Number(m[1]);
    const expected = Buffer.from(this.#mac(videoId, expires));
    if (!timingSafeEqual(expected, Buffer.from(m[2]!))) return "invalid playback token";
    if (expires * 1000 <= now) return "playback token expired";
    return null;
  }
}

/**
 * Appends `token` to every URI of a playlist (segment lines, child playlists and `URI="…"`
 * attributes) that stays on this server (relative), so a player carries the token along.
 */
export function appendTokenToPlaylist(text: string, token: string): string {
  const withToken = (uri: string) => (/^[a-z][a-z0-9+.-]*:/i.test(uri) ? uri : `${uri}${uri.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`);
  return text
    .split("\n")
    .map((line) => {
      if (line.startsWith("#")) return line.replace(/URI="([^"]*)"/g, (_all, uri: string) => `URI="${withToken(uri)}"`);
      return line.trim() ? withToken(line.trim()) : line;
    })
    .join("\n");
}
