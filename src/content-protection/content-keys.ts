import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";

/** A new video's content key as its row stores it. */
export interface SealedContentKey {
  keyId: Uint8Array<ArrayBuffer>;
  sealedKey: Uint8Array<ArrayBuffer>;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Content keys at rest: 16 random bytes per protected video, sealed with AES-256-GCM under a key
 * derived from the signing secret (so a database dump alone yields no key, and no other derived
 * key, a playback token's or an upload signature's, is this one). The key's id is the GCM
 * associated data: a sealed key does not open under another id.
 */
export class ContentKeys {
  readonly #key: Buffer;

  constructor(signingSecret: string) {
    this.#key = createHmac("sha256", signingSecret).update("videograph content keys v1").digest();
  }

  /** A fresh key, sealed. */
  create(): SealedContentKey {
    const keyId = randomBytes(16);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, nonce).setAAD(keyId);
    const sealed = Buffer.concat([cipher.update(randomBytes(16)), cipher.final()]);
    return {
      keyId: new Uint8Array(keyId),
      sealedKey: new Uint8Array(Buffer.concat([nonce, cipher.getAuthTag(), sealed])),
    };
  }

  /** The content key; throws when `sealed` was not sealed under `keyId` with this secret. */
  open(key: { keyId: Uint8Array; sealedKey: Uint8Array }): Buffer {
    const bytes = Buffer.from(key.sealedKey);
    const decipher = createDecipheriv("aes-256-gcm", this.#key, bytes.subarray(0, NONCE_BYTES))
      .setAAD(Buffer.from(key.keyId))
      .setAuthTag(bytes.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]);
  }
}
