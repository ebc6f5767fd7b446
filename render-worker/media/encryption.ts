import { createCipheriv, createDecipheriv } from "node:crypto";
import type { ContentProtection } from "../../src/protocol/transcode-messages.ts";
import { segmentNumberOf } from "../../src/protocol/storage-layout.ts";
import { cencKey, segmentGroupKey, segmentIv, segmentKeyGroup } from "../../src/shared/segment-keys.ts";
import { type CencTrack, decryptFragments, encryptFragments, protectInit } from "./cenc.ts";

/**
 * A job's content protection as its publisher applies it, after ffmpeg wrote a segment and before
 * it is uploaded. AES-128: each media segment (an MPEG-TS file, or an fMP4 segment's `moof` +
 * `mdat`; the init stays clear, as HLS allows) encrypted whole with AES-128-CBC and PKCS#7
 * padding, with its key group's key and its number as IV (src/shared/segment-keys.ts). ffmpeg's
 * own AES-128 is the hls muxer's, which the worker does not cut with (segment-muxer.ts). CENC
 * (fMP4 only): the init's sample entry marked encrypted with the video's key id, each fragment's
 * samples encrypted in place (cenc.ts): FFmpeg 5.1's mp4 muxer writes no sample encryption into
 * fragments.
 */
export interface SegmentEncryption {
  /** The rung's init segment as published, from ffmpeg's (`ftyp` + `moov`). */
  init(clear: Buffer): Buffer;
  /** The segment `uri` (`seg_00012.ts`) encrypted; `init`: an fMP4 rung's init as ffmpeg wrote it. */
  encrypt(uri: string, clear: Buffer, init?: Buffer): Buffer;
  /** Stored bytes of `uri` decrypted: a kept segment an earlier run uploaded, compared in the clear. */
  decrypt(uri: string, encrypted: Buffer): Buffer;
}

function segmentNumber(uri: string): number {
  const n = segmentNumberOf(uri);
  if (n === null) throw new Error(`Not a segment's name: ${uri}`);
  return n;
}

/** The encryption a job's options ask for; null: segments are published as ffmpeg wrote them. */
export function segmentEncryption(protection: ContentProtection | undefined): SegmentEncryption | null {
  if (!protection) return null;
  const contentKey = Buffer.from(protection.key, "hex");
  if (protection.method === "CENC") return cencEncryption(contentKey);
  const keyAndIv = (uri: string) => {
    const n = segmentNumber(uri);
    return { key: segmentGroupKey(contentKey, segmentKeyGroup(n, protection.keyRotationSegments)), iv: segmentIv(n) };
  };
  return {
    init: (clear) => clear,
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

function cencEncryption(contentKey: Buffer): SegmentEncryption {
  const { keyId, key } = cencKey(contentKey);
  // Each rung's init is the same bytes in each of its segments: its track is read once.
  const tracks = new Map<string, CencTrack>();
  const trackOf = (init: Buffer) => {
    const id = init.toString("base64");
    let track = tracks.get(id);
    if (!track) {
      track = protectInit(init, keyId).track;
      tracks.set(id, track);
    }
    return track;
  };
  return {
    init: (clear) => protectInit(clear, keyId).init,
    encrypt(uri, clear, init) {
      if (!init) throw new Error(`CENC encrypts fMP4 segments, not ${uri}`);
      return encryptFragments(clear, trackOf(init), key, segmentNumber(uri));
    },
    decrypt: (_uri, encrypted) => decryptFragments(encrypted, key),
  };
}
