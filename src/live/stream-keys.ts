import { createHash, randomBytes } from "node:crypto";

/** A live stream's key as publishers send it: `lsk_` and 32 random bytes (base64url). */
const KEY_PREFIX = "lsk_";

/** A new stream key: the secret (shown once), its SHA-256 (stored) and its last characters (shown in lists). */
export function newStreamKey(): { key: string; hash: string; hint: string } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  return { key, hash: hashStreamKey(key), hint: key.slice(-4) };
}

/** The stored form of a key; an RTMP stream name is looked up by it (no key is stored). */
export function hashStreamKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Whether a stream name can be a key at all (checked before any lookup). */
export function looksLikeStreamKey(name: string): boolean {
  return name.length === KEY_PREFIX.length + 43 && name.startsWith(KEY_PREFIX);
}
