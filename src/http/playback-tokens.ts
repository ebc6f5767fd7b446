import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * What a token may do. An opening token (in the URLs the API hands out, PLAYBACK_TOKEN_TTL_SECONDS)
 * opens a playback session; a session token (written into the playlists of that session) only
 * plays it on, until the session's fixed end.
 */
export type PlaybackTokenKind = "open" | "session";

const PREFIX: Record<PlaybackTokenKind, string> = { open: "o", session: "s" };
const TOKEN = /^([os])\.(\d{1,12})\.([\w-]{43})$/;

/**
 * Short-lived playback tokens for videos whose playback policy is SIGNED: `{o|s}.{expires}.{mac}`,
 * an HMAC-SHA256 over the kind, the video id and the expiry, so a token opens one video's
 * playlists, segments and images until it expires, and nothing else, and a session token can
 * never pass as an opening token. The key is derived from the signing secret, so an upload URL's
 * signature can never pass as a playback token or the reverse.
 */
export class PlaybackTokens {
  readonly #key: Buffer;
  readonly ttlSeconds: number;
  /** How long playback that started with a valid opening token may go on, from its start. */
  readonly sessionSeconds: number;

  constructor(signingSecret: string, ttlSeconds: number, sessionSeconds = Math.max(ttlSeconds, 4 * 3600)) {
    this.#key = createHmac("sha256", signingSecret).update("videograph playback tokens v2").digest();
    this.ttlSeconds = ttlSeconds;
    this.sessionSeconds = sessionSeconds;
  }

  #mac(kind: PlaybackTokenKind, videoId: string, expires: number): string {
    return createHmac("sha256", this.#key).update(`${kind}\n${videoId}\n${expires}`).digest("base64url");
  }

  #sign(kind: PlaybackTokenKind, videoId: string, expires: number): string {
    return `${PREFIX[kind]}.${expires}.${this.#mac(kind, videoId, expires)}`;
  }

  /** An opening token, for the URLs the API hands out. */
  issue(videoId: string, ttlSeconds = this.ttlSeconds, now = Date.now()): string {
    return this.#sign("open", videoId, Math.floor(now / 1000) + ttlSeconds);
  }

  /** A session token valid until `endsAt` (Unix seconds): the session's end, carried unchanged. */
  issueSession(videoId: string, endsAt: number): string {
    return this.#sign("session", videoId, endsAt);
  }

  /** The token of a session that starts now and lasts `sessionSeconds`. */
  startSession(videoId: string, now = Date.now()): string {
    return this.issueSession(videoId, Math.floor(now / 1000) + this.sessionSeconds);
  }

  /** The kind of `token` when it opens `videoId` and is one of `accepted`, else why not. */
  check(
    videoId: string,
    token: string | null,
    accepted: readonly PlaybackTokenKind[],
    now = Date.now(),
  ): { kind: PlaybackTokenKind } | { problem: string } {
    if (!token) return { problem: "a playback token is required for this video" };
    const m = TOKEN.exec(token);
    if (!m) return { problem: "malformed playback token" };
    const kind: PlaybackTokenKind = m[1] === "o" ? "open" : "session";
    const expires = Number(m[2]);
    if (!timingSafeEqual(Buffer.from(this.#mac(kind, videoId, expires)), Buffer.from(m[3]!)))
      return { problem: "invalid playback token" };
    if (expires * 1000 <= now) return { problem: "playback token expired" };
    if (!accepted.includes(kind))
      return { problem: "a session token cannot open a playback; use the URL the API hands out" };
    return { kind };
  }
}
