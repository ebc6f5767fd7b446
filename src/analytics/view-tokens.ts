import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";

/**
 * What a view token binds: one view of one video of one tenant, until `expires` (Unix seconds), with
 * the facts the ingest bounds its watch time by (batch-buffer.ts, `watchBoundMs`): when the server
 * started the view (`startedAt`, Unix ms) and the video's duration then (`durationMs`; null: not
 * known, or a live broadcast still growing).
 */
export interface ViewClaims {
  viewId: string;
  videoId: string;
  tenantId: string;
  startedAt: number;
  durationMs: number | null;
  expires: number;
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
// Fixed-width parts, no nested quantifier: checked in one linear pass.
const TOKEN = new RegExp(
  `^va2\\.(${UUID})\\.(${UUID})\\.(${UUID})\\.(\\d{1,15})\\.(\\d{1,12}|-)\\.(\\d{1,12})\\.([\\w-]{43})$`,
);
/** A token of the release before (`va1.{viewId}.{videoId}.{tenantId}.{expires}.{mac}`), taken until it expires. */
const TOKEN_V1 = new RegExp(`^va1\\.(${UUID})\\.(${UUID})\\.(${UUID})\\.(\\d{1,12})\\.([\\w-]{43})$`);

/**
 * HMAC view tokens, `va2.{viewId}.{videoId}.{tenantId}.{startedAt}.{durationMs or -}.{expires}.{mac}`:
 * handed out when a view starts, carried by every beacon batch of that view. They are checked
 * without a database read; the key is derived from the signing secret with its own label, so no
 * other token of the API (playback, upload) can pass as one.
 */
export class ViewTokens {
  // A KeyObject, made once: createHmac with raw key bytes imports them again on every call, which
  // cost several times the MAC itself on every beacon batch.
  readonly #key: KeyObject;
  readonly ttlSeconds: number;

  constructor(signingSecret: string, ttlSeconds: number) {
    this.#key = createSecretKey(
      createHmac("sha256", signingSecret).update("videograph analytics view tokens v1").digest(),
    );
    this.ttlSeconds = ttlSeconds;
  }

  #mac(c: ViewClaims): string {
    return createHmac("sha256", this.#key)
      .update(`va2\n${c.viewId}\n${c.videoId}\n${c.tenantId}\n${c.startedAt}\n${c.durationMs ?? "-"}\n${c.expires}`)
      .digest("base64url");
  }

  issue(view: Omit<ViewClaims, "expires">, now = Date.now()): { token: string; expires: number } {
    const expires = Math.floor(now / 1000) + this.ttlSeconds;
    const claims = { ...view, durationMs: view.durationMs === null ? null : Math.round(view.durationMs), expires };
    const { viewId, videoId, tenantId, startedAt, durationMs } = claims;
    return {
      token: `va2.${viewId}.${videoId}.${tenantId}.${startedAt}.${durationMs ?? "-"}.${expires}.${this.#mac(claims)}`,
      expires,
    };
  }

  /**
   * The claims of a genuine, unexpired token for `videoId`, else why not. A `va1` token, handed out
   * before the release that signs a view's start, is still taken until it expires, so players
   * watching across an upgrade go on reporting: it signs its expiry, which is its issue plus the
   * TTL, so its view started no earlier than the expiry less the TTL (its duration is not known).
   */
  check(token: string, videoId: string, now = Date.now()): { claims: ViewClaims } | { problem: string } {
    if (token.startsWith("va1.")) return this.#checkV1(token, videoId, now);
    const m = TOKEN.exec(token);
    if (!m) return { problem: "malformed view token" };
    const claims: ViewClaims = {
      viewId: m[1]!,
      videoId: m[2]!,
      tenantId: m[3]!,
      startedAt: Number(m[4]),
      durationMs: m[5] === "-" ? null : Number(m[5]),
      expires: Number(m[6]),
    };
    if (!timingSafeEqual(Buffer.from(this.#mac(claims)), Buffer.from(m[7]!))) return { problem: "invalid view token" };
    if (claims.expires * 1000 <= now) return { problem: "view token expired; start a new view" };
    if (claims.videoId !== videoId) return { problem: "view token is for another video" };
    return { claims };
  }

  #checkV1(token: string, videoId: string, now: number): { claims: ViewClaims } | { problem: string } {
    const m = TOKEN_V1.exec(token);
    if (!m) return { problem: "malformed view token" };
    const [viewId, tokenVideoId, tenantId] = [m[1]!, m[2]!, m[3]!];
    const expires = Number(m[4]);
    const mac = createHmac("sha256", this.#key)
      .update(`${viewId}\n${tokenVideoId}\n${tenantId}\n${expires}`)
      .digest("base64url");
    if (!timingSafeEqual(Buffer.from(mac), Buffer.from(m[5]!))) return { problem: "invalid view token" };
    if (expires * 1000 <= now) return { problem: "view token expired; start a new view" };
    if (tokenVideoId !== videoId) return { problem: "view token is for another video" };
    const startedAt = (expires - this.ttlSeconds) * 1000;
    return { claims: { viewId, videoId: tokenVideoId, tenantId, startedAt, durationMs: null, expires } };
  }
}
