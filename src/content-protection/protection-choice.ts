import { ValidationError } from "../errors.ts";
import type { ContentProtection, SegmentFormat } from "../generated/prisma/client.ts";
import { KEY_ROTATION_LIMITS } from "../shared/segment-keys.ts";

/** What a video's creator chooses: the method, and how often its key changes. */
export interface ContentProtectionChoice {
  method: ContentProtection;
  /** A new key every this many segments; null: one key for the whole video. */
  keyRotationSegments: number | null;
}

/** A chosen protection, checked, or a `ValidationError` naming what is wrong. */
export function validProtection(choice: {
  method: ContentProtection;
  keyRotationSegments?: number | null;
}): ContentProtectionChoice {
  const rotation = choice.keyRotationSegments ?? null;
  const { min, max } = KEY_ROTATION_LIMITS;
  if (rotation !== null && (!Number.isInteger(rotation) || rotation < min || rotation > max)) {
    throw new ValidationError(
      "contentProtection.keyRotationSegments",
      `keyRotationSegments is a whole number from ${min} to ${max}`,
    );
  }
  if (choice.method === "CENC" && rotation !== null) {
    throw new ValidationError("contentProtection.keyRotationSegments", "Key rotation is not supported with CENC yet");
  }
  return { method: choice.method, keyRotationSegments: rotation };
}

/** Throws when CENC is asked of TS segments: Common Encryption is written into fMP4 fragments. */
export function refuseCencForTs(protection: ContentProtection | null, segmentFormat: SegmentFormat): void {
  if (protection !== "CENC" || segmentFormat === "FMP4") return;
  throw new ValidationError(
    "contentProtection.method",
    "CENC encrypts fMP4 segments: choose segmentFormat FMP4, or AES_128 for TS",
  );
}

/** Throws when static renditions are asked of a protected video: an MP4 file is its media unencrypted. */
export function refuseStaticRenditions(protection: ContentProtection | null, asked: number): void {
  if (protection === null || asked === 0) return;
  throw new ValidationError(
    "staticRenditions",
    "A protected video has no static renditions: an MP4 download would be its media without the encryption",
  );
}
