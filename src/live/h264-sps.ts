/**
 * The picture size a publisher's H.264 really has, read from each SPS a decoder would honour: those
 * of an AVC sequence header (an FLV video tag of AVCPacketType 0) and those sent in-band inside
 * frames (length-prefixed NAL units of type 7). Every read is linear in the tag and bounded.
 *
 * node-media-server's SPS parser (sps_info.js) is not used: its pic_order_cnt cycle loop runs on a
 * count read from the stream (14 bytes with a count of 2^31 hold the event loop for minutes), it
 * reads past the end as zeros instead of failing, gives only the cropped size (decoding costs the
 * coded one) and crops 4:2:2 rows by 2 where the unit is 1.
 */

/** A picture's width and height in pixels. */
export interface PictureSize {
  width: number;
  height: number;
}

/** What an SPS declares: the picture shown (cropped) and the one decoded (whole macroblocks). */
export interface SpsPicture extends PictureSize {
  coded: PictureSize;
}

/** Bytes of an SPS that are read: its fields end well before, scaling lists and all. */
const MAX_SPS_BYTES = 4096;
/** SPS NAL units one tag may hold: one per seq_parameter_set_id (0 to 31). */
const MAX_SPS_PER_TAG = 32;
/** Different SPSs one publisher may send; each is parsed once, so this bounds the parsing. */
const MAX_DISTINCT_SPS = 8;
const NAL_SPS = 7;
/** Profiles whose SPS carries chroma format, bit depths and scaling lists (H.264 7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

class SpsUnreadable extends Error {}

/**
 * An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): its SPS NAL units and its frames'
 * NAL length size, or null when it is not one (a decoder reads any other as Annex B).
 */
function configurationRecord(record: Buffer): { sps: Buffer[]; nalLengthSize: number } | null {
  if (record.length < 6 || record[0] !== 1) return null;
  const count = record[5]! & 0x1f;
  const sps: Buffer[] = [];
  let at = 6;
  for (let i = 0; i < count; i++) {
    if (at + 2 > record.length) return null;
    const length = record.readUInt16BE(at);
    if (at + 2 + length > record.length) return null;
    sps.push(record.subarray(at + 2, at + 2 + length));
    at += 2 + length;
  }
  return { sps, nalLengthSize: (record[4]! & 3) + 1 };
}

/** ffmpeg's test (h264dec.c) for a frame that is a configuration record sent again. */
const looksLikeRecord = (payload: Buffer) =>
  payload.length >= 9 && payload[0] === 1 && payload[2] === 0 && (payload[4]! & 0xfc) === 0xfc;

/** Bits of an RBSP; reading past its end throws (a truncated SPS is unreadable, not zeros). */
class RbspBits {
  #bit = 0;
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }
  bits(n: number): number {
    let value = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.#bytes[this.#bit >> 3];
      if (byte === undefined) throw new SpsUnreadable("the SPS ends early");
      value = value * 2 + ((byte >> (7 - (this.#bit & 7))) & 1);
      this.#bit++;
    }
    return value;
  }
  /** ue(v): exp-Golomb, at most 31 leading zeros (a 32-bit value). */
  ue(max: number): number {
    let zeros = 0;
    while (this.bits(1) === 0) {
      if (++zeros > 31) throw new SpsUnreadable("an exp-Golomb code is too long");
    }
    const value = 2 ** zeros - 1 + this.bits(zeros);
    if (value > max) throw new SpsUnreadable(`a value of ${value} is over ${max}`);
    return value;
  }
  se(): number {
    const code = this.ue(2 ** 32);
    return code % 2 === 0 ? -(code / 2) : (code + 1) / 2;
  }
}

/** A NAL unit's bytes without its emulation prevention bytes (00 00 03 → 00 00), at most MAX_SPS_BYTES. */
function rbspOf(nal: Buffer): Buffer {
  const out = Buffer.alloc(Math.min(nal.length, MAX_SPS_BYTES));
  let length = 0;
  let zeros = 0;
  for (let i = 0; i < nal.length && length < out.length; i++) {
    const byte = nal[i]!;
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    zeros = byte === 0 ? zeros + 1 : 0;
    out[length++] = byte;
  }
  return out.subarray(0, length);
}

function skipScalingList(r: RbspBits, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/**
 * The picture an SPS NAL unit (its header byte first) declares, as H.264 7.3.2.1.1 and 7.4.2.1.1
 * define it, or null when it cannot be read (truncated, a value out of its range).
 */
export function spsPicture(nal: Buffer): SpsPicture | null {
  try {
    const r = new RbspBits(rbspOf(nal));
    if ((r.bits(8) & 0x1f) !== NAL_SPS) return null;
    const profile = r.bits(8);
    r.bits(16); // constraint flags, level_idc
    r.ue(31); // seq_parameter_set_id
    let chromaFormat = 1;
    let separateColourPlanes = false;
    if (HIGH_PROFILES.has(profile)) {
      chromaFormat = r.ue(3);
      if (chromaFormat === 3) separateColourPlanes = r.bits(1) === 1;
      r.ue(6); // bit_depth_luma_minus8
      r.ue(6); // bit_depth_chroma_minus8
      r.bits(1); // qpprime_y_zero_transform_bypass_flag
      if (r.bits(1) === 1) {
        for (let i = 0; i < (chromaFormat === 3 ? 12 : 8); i++) {
          if (r.bits(1) === 1) skipScalingList(r, i < 6 ? 16 : 64);
        }
      }
    }
    r.ue(12); // log2_max_frame_num_minus4
    const pocType = r.ue(2);
    if (pocType === 0) r.ue(12);
    else if (pocType === 1) {
      r.bits(1);
      r.se();
      r.se();
      const cycle = r.ue(255);
      for (let i = 0; i < cycle; i++) r.se();
    }
    r.ue(2 ** 32); // max_num_ref_frames
    r.bits(1); // gaps_in_frame_num_value_allowed_flag
    const widthInMbs = r.ue(2 ** 32) + 1;
    const heightInMapUnits = r.ue(2 ** 32) + 1;
    const frameMbsOnly = r.bits(1);
    if (!frameMbsOnly) r.bits(1); // mb_adaptive_frame_field_flag
    r.bits(1); // direct_8x8_inference_flag
    const crop = r.bits(1) === 1 ? [r.ue(2 ** 32), r.ue(2 ** 32), r.ue(2 ** 32), r.ue(2 ** 32)] : [0, 0, 0, 0];
    const coded = { width: widthInMbs * 16, height: (2 - frameMbsOnly) * heightInMapUnits * 16 };
    // CropUnitX and CropUnitY (7-19 to 7-22): in chroma samples, unless ChromaArrayType is 0.
    const chromaArrayType = separateColourPlanes ? 0 : chromaFormat;
    const subWidth = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
    const subHeight = chromaArrayType === 1 ? 2 : 1;
    const width = coded.width - subWidth * (crop[0]! + crop[1]!);
    const height = coded.height - subHeight * (2 - frameMbsOnly) * (crop[2]! + crop[3]!);
    if (width <= 0 || height <= 0) return null;
    return { width, height, coded };
  } catch (err) {
    if (err instanceof SpsUnreadable) return null;
    throw err;
  }
}

/** What one FLV video tag says of the publisher's pictures. */
export type VideoTagRead =
  | {
      /** Whether it carries a picture (a slice, NAL unit types 1 to 5): media, not only parameters. */
      picture: boolean;
      /** The pictures each SPS it holds declares, those of SPSs not read before. */
      sps: SpsPicture[];
    }
  | { refused: string };

/**
 * One publisher's H.264, tag by tag (FLV video tag bodies, codec id 7): the SPSs it sends, read
 * once each, and whether each tag carries a picture. Linear in each tag: NAL units are skipped by
 * their length prefix, bounded by the tag.
 */
export class H264TagReader {
  /** The bytes of a NAL unit's length in frames, as the sequence header says (AVCC). */
  #nalLengthSize = 4;
  readonly #seen: Buffer[] = [];

  read(body: Buffer): VideoTagRead {
    // FLV's AVC video tag: frame type and codec, AVCPacketType, composition time (3 bytes).
    if (body.length < 5) return { picture: false, sps: [] };
    const payload = body.subarray(5);
    if (body[1] === 0) {
      const record = configurationRecord(payload);
      if (!record)
        return { refused: "the stream's H.264 sequence header is not a well-formed AVC configuration record" };
      this.#nalLengthSize = record.nalLengthSize;
      return this.#withNew(false, record.sps);
    }
    if (body[1] !== 1) return { picture: false, sps: [] };
    // ffmpeg's decoder takes a frame that looks like an AVCDecoderConfigurationRecord as one; its
    // NAL units are read too, with the length size before it (stricter than either reading alone).
    const record = looksLikeRecord(payload) ? configurationRecord(payload) : null;
    const units = this.#nalUnits(payload);
    if ("refused" in units) return units;
    if (record) this.#nalLengthSize = record.nalLengthSize;
    return this.#withNew(units.picture, [...(record?.sps ?? []), ...units.sps]);
  }

  /** Length-prefixed NAL units (AVCC): the SPSs among them, and whether a slice is. */
  #nalUnits(payload: Buffer): { picture: boolean; sps: Buffer[] } | { refused: string } {
    const size = this.#nalLengthSize;
    const sps: Buffer[] = [];
    let picture = false;
    // A length that runs past the tag ends the walk: a decoder drops the rest too.
    for (let at = 0; at + size <= payload.length; ) {
      const length = payload.readUIntBE(at, size);
      at += size;
      if (length === 0) continue;
      if (at + length > payload.length) break;
      const header = payload[at]!;
      const type = header & 0x1f;
      // A NAL unit with its forbidden bit set is skipped by decoders.
      if (header < 0x80) {
        if (type >= 1 && type <= 5) picture = true;
        else if (type === NAL_SPS) {
          if (sps.length === MAX_SPS_PER_TAG)
            return { refused: `a video frame holds more than ${MAX_SPS_PER_TAG} H.264 SPSs` };
          sps.push(payload.subarray(at, at + length));
        }
      }
      at += length;
    }
    return { picture, sps };
  }

  #withNew(picture: boolean, units: Buffer[]): VideoTagRead {
    const sps = this.#readNew(units);
    return "refused" in sps ? sps : { picture, sps };
  }

  /** The pictures of the SPSs not read before; each new one is kept (its first MAX_SPS_BYTES). */
  #readNew(units: Buffer[]): SpsPicture[] | { refused: string } {
    const pictures: SpsPicture[] = [];
    for (const unit of units) {
      const kept = unit.subarray(0, MAX_SPS_BYTES);
      if (this.#seen.some((seen) => seen.equals(kept))) continue;
      if (this.#seen.length === MAX_DISTINCT_SPS)
        return { refused: `the stream sent more than ${MAX_DISTINCT_SPS} different H.264 SPSs` };
      this.#seen.push(Buffer.from(kept));
      const picture = spsPicture(unit);
      if (!picture) return { refused: "the stream's H.264 SPS cannot be read" };
      pictures.push(picture);
    }
    return pictures;
  }
}
