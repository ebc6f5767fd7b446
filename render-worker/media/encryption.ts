import { createCipheriv, createDecipheriv } from "node:crypto";
import type { ContentProtection } from "../../src/protocol/transcode-messages.ts";
import { segmentNumberOf } from "../../src/protocol/storage-layout.ts";
import { segmentGroupKey, segmentIv, segmentKeyGroup } from "../../src/shared/segment-keys.ts";

/**
 * A job's content protection as its publisher applies it: each media segment (an MPEG-TS file, or
 * an fMP4 segment's `moof` + `mdat`; the init stays clear, as HLS allows) encrypted whole with
 * AES-128-CBC and PKCS#7 padding, with its key group's key and its number as IV
 * (src/shared/segment-keys.ts), after ffmpeg wrote it and before it is uploaded. ffmpeg's own
 * AES-128 is the hls muxer's, which the worker does not cut with (segment-muxer.ts); the segment
 * muxer's mp4 CENC writes no sample encryption into fragments in FFmpeg 5.1.
 */
export interface SegmentEncryption {
  /** The segment `uri` (`seg_00012.ts`) encrypted. */
  encrypt(uri: string, clear: Buffer): Buffer;
  /** Stored bytes of `uri` decrypted: a kept segment an earlier run uploaded, compared in the clear. */
  decrypt(uri: string, encrypted: Buffer): Buffer;
}

/** The encryption a job's options ask for; null: segments are published as ffmpeg wrote them. */
export function segmentEncryption(protection: ContentProtection | undefined): SegmentEncryption | null {
  if (!protection) return null;
  const contentKey = Buffer.from(protection.key, "hex");
  const keyAndIv = (uri: string) => {
    const n = segmentNumberOf(uri);
    if (n === null) throw new Error(`Not a segment's name: ${uri}`);
    return { key: segmentGroupKey(contentKey, segmentKeyGroup(n, protection.keyRotationSegments)), iv: segmentIv(n) };
  };
  return {
    encrypt(uri, clear) {
      const { key, iv } = keyAndIv(uri);
      const cipher = createCipheriv("aes-128-cbc", key, iv);
      return Buffer.concat([cipher.update(clear), cipher.final()]);
    },
    decrypt(uri, encrypted) {
      const { key, iv } = keyAndIv(uri);
      const decipher = createDecipheriv("aes-128-cbc", key, iv);
      return Buffer.concat([decipher.update(encrypted), decipher.final()]);
    },
  };
}
