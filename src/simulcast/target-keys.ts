import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";

/** The sealed form's version prefix: a key made another way later gets another. */
const SEALED_PREFIX = "v1.";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The key simulcast targets' stream keys are sealed with (AES-256-GCM): derived from the signing
 * secret with its own label, so every API instance has it and it is stored nowhere.
 */
export function simulcastKeyCipher(signingSecret: string): Buffer {
  return createHmac("sha256", signingSecret).update("videograph simulcast stream keys v1").digest();
}

/**
 * A target's stream key as stored: encrypted and authenticated, bound to its live stream (`streamId`
 * as the additional data), so a sealed key copied onto another stream's row does not open.
 */
export function sealStreamKey(cipherKey: Buffer, streamId: string, streamKey: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", cipherKey, iv);
  cipher.setAAD(Buffer.from(streamId));
  const sealed = Buffer.concat([cipher.update(streamKey, "utf8"), cipher.final()]);
  return `${SEALED_PREFIX}${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString("base64url")}`;
}

/** The stream key `sealStreamKey` sealed; throws when it was sealed for another stream or another secret. */
export function openStreamKey(cipherKey: Buffer, streamId: string, stored: string): string {
  if (!stored.startsWith(SEALED_PREFIX)) throw new Error("not a sealed stream key");
  const bytes = Buffer.from(stored.slice(SEALED_PREFIX.length), "base64url");
  const decipher = createDecipheriv("aes-256-gcm", cipherKey, bytes.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(streamId));
  decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
}

/** What the API shows of a stream key once it is stored: its last four characters, masked before. */
export function maskedStreamKey(hint: string): string {
  return `••••${hint}`;
}
