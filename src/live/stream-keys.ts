import { createHash, createHmac, randomBytes } from "node:crypto";

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

/** Why a key that names no stream is refused; the ingests count these against the key's source. */
export const UNKNOWN_STREAM_KEY = "unknown stream key";

/** Whether a stream name can be a key at all (checked before any lookup). */
export function looksLikeStreamKey(name: string): boolean {
  return name.length === KEY_PREFIX.length + 43 && name.startsWith(KEY_PREFIX);
}

/** SRT passphrases are this long: 192 bits in base64url (SRT takes 10 to 79 characters). */
const SRT_PASSPHRASE_LENGTH = 32;

/**
 * The key SRT passphrases are made with: derived from the signing secret, so every API instance
 * has the same and no passphrase is stored. The SRT gateway gets it on its stdin.
 */
export function srtPassphraseKey(signingSecret: string): Buffer {
  return createHmac("sha256", signingSecret).update("videograph srt passphrases v1").digest();
}

/**
 * The passphrase a stream key's SRT caller must encrypt with (shown with the key; it changes with
 * the key). src/live/srt-gateway.c makes the same at each handshake: keep the two in step.
 */
export function srtPassphrase(passphraseKey: Buffer, key: string): string {
  return createHmac("sha256", passphraseKey).update(key).digest("base64url").slice(0, SRT_PASSPHRASE_LENGTH);
}
