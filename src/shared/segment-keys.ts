import { createHmac } from "node:crypto";

/**
 * How a protected video's AES-128 segment keys follow from its content key, in both programs: the
 * worker encrypts with them, the API serves them. Segment `n` is in key group `n / rotation`
 * (rounded down; group 0 for every segment without rotation), whose key is the first 16 bytes of
 * HMAC-SHA256(content key, "aes-128 segment key {group}"): a group's key tells nothing of another
 * group's or of the content key. Its IV is `n` as a 128-bit big-endian number, written explicitly
 * in each EXT-X-KEY line so an instant clip's cut cannot change it.
 */
export function segmentKeyGroup(segment: number, rotationSegments: number | null): number {
  return rotationSegments ? Math.floor(segment / rotationSegments) : 0;
}

/** The AES-128 key of key group `group`. */
export function segmentGroupKey(contentKey: Buffer, group: number): Buffer {
  return createHmac("sha256", contentKey).update(`aes-128 segment key ${group}`).digest().subarray(0, 16);
}

/** The IV of segment `segment`: its number, 16 bytes big-endian. */
export function segmentIv(segment: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(segment), 8);
  return iv;
}

/** The most segments a key group may span, and the fewest: a key per segment costs a key request each. */
export const KEY_ROTATION_LIMITS = { min: 1, max: 100_000 } as const;

/**
 * A CENC video's one key and its key id (ISO/IEC 23001-7 `cenc`, no rotation), both following
 * from its content key: the first 16 bytes of HMAC-SHA256(content key, "cenc key") and of
 * HMAC-SHA256(content key, "cenc key id"). The worker writes the id into each init (`tenc`,
 * `pssh`) and encrypts with the key; the API answers a licence request for that id alone.
 */
export function cencKey(contentKey: Buffer): { keyId: Buffer; key: Buffer } {
  const derive = (label: string) => createHmac("sha256", contentKey).update(label).digest().subarray(0, 16);
  return { keyId: derive("cenc key id"), key: derive("cenc key") };
}
