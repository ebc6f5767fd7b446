import { createCipheriv, createDecipheriv } from "node:crypto";

/**
 * Common Encryption (ISO/IEC 23001-7), scheme `cenc` (AES-128-CTR), written into a rung's
 * fragmented MP4 by the worker: FFmpeg 5.1's mp4 muxer writes no sample encryption (`senc`,
 * `saiz`, `saio`) into fragments. Pure functions on the bytes ffmpeg wrote (one track per file,
 * as the segment muxer writes each rung): `protectInit` turns the init's sample entry into an
 * encrypted one and says what the media segments need, `encryptFragments` encrypts a segment's
 * `moof` + `mdat` pairs with it.
 */

/** What encrypting a track's samples needs from its init segment. */
export interface CencTrack {
  /** `video`: subsample encryption of slice NAL units; `audio`: whole samples. */
  kind: "video" | "audio";
  /** Video: H.264 or H.265 (which NAL unit header), and its NAL unit length size (avcC/hvcC). */
  codec: "avc" | "hevc" | null;
  nalLengthSize: number;
}

/** The W3C Common PSSH system id (`1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`): EME's `cenc` initData. */
export const COMMON_SYSTEM_ID = Buffer.from("1077efecc0b24d02ace33c1e52e2fb4b", "hex");

/** Bytes of a per-sample IV (`default_Per_Sample_IV_Size`): the rest of the 16-byte counter block is 0. */
const IV_SIZE = 8;

/** A slice NAL unit no longer than this (header included) is left whole in the clear. */
const SMALLEST_ENCRYPTED_NAL = 32;

const VIDEO_ENTRIES: Record<string, "avc" | "hevc"> = { avc1: "avc", avc3: "avc", hvc1: "hevc", hev1: "hevc" };
const AUDIO_ENTRIES = new Set(["mp4a", "ac-3", "ec-3", "Opus", "fLaC"]);

/** Bytes of a sample entry before its child boxes: SampleEntry (8) + VisualSampleEntry (70) or AudioSampleEntry v0 (20). */
const VIDEO_ENTRY_FIELDS = 78;
const AUDIO_ENTRY_FIELDS = 28;

interface Box {
  type: string;
  /** The payload before the children (all of it for a leaf). */
  head: Buffer;
  /** null: a leaf. */
  children: Box[] | null;
}

/** Boxes whose payload is (after `headBytes` fields) a list of boxes this module walks into. */
const CONTAINERS: Record<string, number> = { moov: 0, trak: 0, mdia: 0, minf: 0, stbl: 0, stsd: 8, moof: 0, traf: 0 };

function parseBoxes(bytes: Buffer, where: string): Box[] {
  const boxes: Box[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 8) throw new Error(`${where}: a box header at byte ${offset} is cut short`);
    const size = bytes.readUInt32BE(offset);
    const type = bytes.toString("latin1", offset + 4, offset + 8);
    // ffmpeg writes 32-bit sizes in these files; a 64-bit or to-the-end size is refused, not guessed at.
    if (size < 8 || offset + size > bytes.length) {
      throw new Error(`${where}: the ${JSON.stringify(type)} box at byte ${offset} has a size this cannot read`);
    }
    boxes.push(parseBox(type, bytes.subarray(offset + 8, offset + size), where));
    offset += size;
  }
  return boxes;
}

function parseBox(type: string, payload: Buffer, where: string, childrenAt = CONTAINERS[type]): Box {
  if (childrenAt === undefined) return { type, head: payload, children: null };
  if (payload.length < childrenAt) throw new Error(`${where}: the ${type} box is cut short`);
  return {
    type,
    head: payload.subarray(0, childrenAt),
    children: parseBoxes(payload.subarray(childrenAt), `${where}/${type}`),
  };
}

function boxSize(box: Box): number {
  return 8 + box.head.length + (box.children ?? []).reduce((sum, child) => sum + boxSize(child), 0);
}

function writeBox(box: Box): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(boxSize(box), 0);
  header.write(box.type, 4, "latin1");
  return Buffer.concat([header, box.head, ...(box.children ?? []).map(writeBox)]);
}

const leaf = (type: string, ...fields: Buffer[]): Box => ({ type, head: Buffer.concat(fields), children: null });
const container = (type: string, children: Box[]): Box => ({ type, head: Buffer.alloc(0), children });

function u8(value: number): Buffer {
  return Buffer.from([value]);
}
function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}
function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}
/** A full box's version and flags. */
function versionFlags(version: number, flags: number): Buffer {
  return u32(((version << 24) | flags) >>> 0);
}

function only(boxes: Box[] | null, type: string, where: string): Box {
  const found = (boxes ?? []).filter((box) => box.type === type);
  if (found.length !== 1) throw new Error(`${where}: expected one ${type} box, found ${found.length}`);
  return found[0]!;
}

/** `kid` as a 16-byte key id, or a throw. */
function keyId(kid: Buffer): Buffer {
  if (kid.length !== 16) throw new Error(`a CENC key id is 16 bytes, not ${kid.length}`);
  return kid;
}

/**
 * The init segment (`ftyp` + `moov`, one track) with its sample entry encrypted (`avc1` → `encv`,
 * `mp4a` → `enca`, with `sinf`: `frma`, `schm` cenc 1.0, `schi/tenc` protected with 8-byte IVs
 * and key id `kid`) and a version-1 Common PSSH naming `kid` in `moov`; and what encrypting the
 * track's fragments needs.
 */
export function protectInit(init: Buffer, kid: Buffer): { init: Buffer; track: CencTrack } {
  keyId(kid);
  const top = parseBoxes(init, "init");
  const moov = only(top, "moov", "init");
  const trak = only(moov.children, "trak", "moov");
  const stbl = only(only(only(trak.children, "mdia", "trak").children, "minf", "mdia").children, "stbl", "minf");
  const stsd = only(stbl.children, "stsd", "stbl");
  const entries = stsd.children ?? [];
  if (entries.length !== 1) throw new Error(`stsd: expected one sample entry, found ${entries.length}`);
  const entry = entries[0]!;
  const codec = VIDEO_ENTRIES[entry.type] ?? null;
  if (!codec && !AUDIO_ENTRIES.has(entry.type))
    throw new Error(`stsd: no CENC for a ${JSON.stringify(entry.type)} track`);
  const parsed = parseBox(entry.type, entry.head, "stsd", codec ? VIDEO_ENTRY_FIELDS : AUDIO_ENTRY_FIELDS);
  let nalLengthSize = 0;
  if (codec) {
    const config = only(parsed.children, codec === "avc" ? "avcC" : "hvcC", entry.type).head;
    const at = codec === "avc" ? 4 : 21;
    if (config.length <= at) throw new Error(`${entry.type}: its decoder configuration is cut short`);
    nalLengthSize = (config[at]! & 3) + 1;
    if (nalLengthSize === 3) throw new Error(`${entry.type}: a NAL unit length size of 3 bytes`);
  }
  const sinf = container("sinf", [
    leaf("frma", Buffer.from(entry.type, "latin1")),
    leaf("schm", versionFlags(0, 0), Buffer.from("cenc", "latin1"), u32(0x10000)),
    container("schi", [leaf("tenc", versionFlags(0, 0), u8(0), u8(0), u8(1), u8(IV_SIZE), kid)]),
  ]);
  stsd.children = [{ type: codec ? "encv" : "enca", head: parsed.head, children: [...(parsed.children ?? []), sinf] }];
  moov.children = [...(moov.children ?? []), leaf("pssh", versionFlags(1, 0), COMMON_SYSTEM_ID, u32(1), kid, u32(0))];
  return {
    init: Buffer.concat(top.map(writeBox)),
    track: { kind: codec ? "video" : "audio", codec, nalLengthSize },
  };
}

/** A sample's clear and protected byte counts, in order (ISO/IEC 23001-7 subsamples). */
type Subsample = { clear: number; protected: number };

/**
 * A video sample's subsamples: each NAL unit's length field and header stay clear, the rest of a
 * slice (types 1 and 5 in H.264, 0–31 in H.265) is protected; other NAL units, and small slices,
 * are clear whole, their bytes counted into the next subsample's clear part.
 */
function videoSubsamples(sample: Buffer, track: CencTrack): Subsample[] {
  const subsamples: Subsample[] = [];
  const lengthSize = track.nalLengthSize;
  const headerSize = track.codec === "hevc" ? 2 : 1;
  let clear = 0;
  let offset = 0;
  while (offset < sample.length) {
    if (sample.length - offset < lengthSize) throw new Error("a sample's NAL unit length is cut short");
    const length = sample.readUIntBE(offset, lengthSize);
    const end = offset + lengthSize + length;
    if (end > sample.length || length < headerSize) throw new Error("a sample's NAL unit runs past its end");
    const header = sample[offset + lengthSize]!;
    const type = track.codec === "hevc" ? (header >> 1) & 0x3f : header & 0x1f;
    const slice = track.codec === "hevc" ? type <= 31 : type === 1 || type === 5;
    if (slice && length > SMALLEST_ENCRYPTED_NAL) {
      clear += lengthSize + headerSize;
      // A subsample's clear count is 16 bits: longer clear runs go in subsamples of their own.
      while (clear > 0xffff) {
        subsamples.push({ clear: 0xffff, protected: 0 });
        clear -= 0xffff;
      }
      subsamples.push({ clear, protected: length - headerSize });
      clear = 0;
    } else {
      clear += lengthSize + length;
    }
    offset = end;
  }
  while (clear > 0) {
    const part = Math.min(clear, 0xffff);
    subsamples.push({ clear: part, protected: 0 });
    clear -= part;
  }
  return subsamples;
}

/** Sample `n` of segment `segment`'s IV: the two numbers as 32-bit big-endian halves, unique in a video. */
export function sampleIv(segment: number, n: number): Buffer {
  return Buffer.concat([u32(segment), u32(n)]);
}

/** The fields of a `tfhd` this needs. */
function readTfhd(tfhd: Box) {
  const flags = tfhd.head.readUInt32BE(0) & 0xffffff;
  if (flags & 0x1) throw new Error("tfhd: an explicit base data offset (only default-base-is-moof is written here)");
  if (!(flags & 0x20000)) throw new Error("tfhd: not default-base-is-moof");
  let at = 8;
  if (flags & 0x2) at += 4;
  if (flags & 0x8) at += 4;
  const defaultSize = flags & 0x10 ? tfhd.head.readUInt32BE(at) : null;
  return { defaultSize };
}

/** A `trun`'s data offset (where it is in the box) and its samples' sizes. */
function readTrun(trun: Box, defaultSize: number | null) {
  const head = trun.head;
  const flags = head.readUInt32BE(0) & 0xffffff;
  const count = head.readUInt32BE(4);
  if (!(flags & 0x1)) throw new Error("trun: no data offset");
  const dataOffsetAt = 8;
  let at = 12;
  if (flags & 0x4) at += 4;
  const perSample = [0x100, 0x200, 0x400, 0x800].filter((bit) => flags & bit).length * 4;
  if (head.length < at + perSample * count) throw new Error("trun: cut short");
  const sizes: number[] = [];
  for (let i = 0; i < count; i++) {
    const sampleAt = at + i * perSample + (flags & 0x100 ? 4 : 0);
    const size = flags & 0x200 ? head.readUInt32BE(sampleAt) : defaultSize;
    if (size === null) throw new Error("trun: a sample without a size");
    sizes.push(size);
  }
  return { dataOffset: head.readInt32BE(dataOffsetAt), dataOffsetAt, sizes };
}

/** One `moof` + `mdat` pair of a media segment, read: its one `traf`, its `trun`s and a copy of its data. */
interface Fragment {
  moof: Box;
  mdat: Box;
  traf: Box;
  /** The `moof`'s size as read: what a `trun`'s data offset counted. */
  oldMoofSize: number;
  /** A copy of the `mdat`'s payload, which the samples are decrypted or encrypted in place in. */
  data: Buffer;
  truns: ({ trun: Box } & ReturnType<typeof readTrun>)[];
}

/** A media segment's fragments, each checked: moof + mdat pairs, one traf, its truns. */
function fragmentsOf(media: Buffer): Fragment[] {
  const top = parseBoxes(media, "segment");
  const fragments: Fragment[] = [];
  for (let i = 0; i < top.length; i += 2) {
    const moof = top[i]!;
    const mdat = top[i + 1];
    if (moof.type !== "moof" || mdat?.type !== "mdat") throw new Error("segment: not moof + mdat pairs");
    const trafs = (moof.children ?? []).filter((box) => box.type === "traf");
    if (trafs.length !== 1) throw new Error(`moof: expected one traf, found ${trafs.length}`);
    const traf = trafs[0]!;
    const { defaultSize } = readTfhd(only(traf.children, "tfhd", "traf"));
    const truns = (traf.children ?? [])
      .filter((box) => box.type === "trun")
      .map((trun) => ({ trun, ...readTrun(trun, defaultSize) }));
    fragments.push({ moof, mdat, traf, oldMoofSize: boxSize(moof), data: Buffer.from(mdat.head), truns });
  }
  return fragments;
}

/** Each sample of `fragment`, in order, as a view into its data (changed in place). */
function* samplesOf(fragment: Fragment): Generator<Buffer> {
  const mdatStart = fragment.oldMoofSize + 8;
  for (const { dataOffset, sizes } of fragment.truns) {
    let at = dataOffset - mdatStart;
    for (const size of sizes) {
      if (at < 0 || at + size > fragment.data.length) throw new Error("trun: a sample outside the mdat");
      yield fragment.data.subarray(at, at + size);
      at += size;
    }
  }
}

/**
 * A media segment's `moof` + `mdat` pairs with every sample encrypted (AES-128-CTR with `key`,
 * the counter block the sample's IV then 8 zero bytes, one counter stream across a sample's
 * protected bytes), and `senc` (with subsamples for video), `saiz` and `saio` in each `traf`; the
 * `trun` data offsets moved by the bytes the `moof` gained. `segment` numbers the IVs.
 */
export function encryptFragments(media: Buffer, track: CencTrack, key: Buffer, segment: number): Buffer {
  if (key.length !== 16) throw new Error(`an AES-128 key is 16 bytes, not ${key.length}`);
  if (!Number.isInteger(segment) || segment < 0 || segment > 0xffffffff) throw new Error(`segment ${segment}`);
  const out: Buffer[] = [];
  let sampleNumber = 0;
  for (const fragment of fragmentsOf(media)) {
    const { moof, mdat, traf, oldMoofSize, data, truns } = fragment;
    if (truns.length === 0) throw new Error("traf: no trun");
    if ((traf.children ?? []).some((box) => ["senc", "saiz", "saio"].includes(box.type))) {
      throw new Error("traf: its samples are already encrypted");
    }
    const auxInfo: Buffer[] = [];
    for (const sample of samplesOf(fragment)) {
      const iv = sampleIv(segment, sampleNumber++);
      const cipher = createCipheriv("aes-128-ctr", key, Buffer.concat([iv, Buffer.alloc(8)]));
      if (track.kind === "video") {
        const subsamples = videoSubsamples(sample, track);
        let offset = 0;
        for (const part of subsamples) {
          offset += part.clear;
          cipher.update(sample.subarray(offset, offset + part.protected)).copy(sample, offset);
          offset += part.protected;
        }
        const entries = subsamples.map((part) => Buffer.concat([u16(part.clear), u32(part.protected)]));
        auxInfo.push(Buffer.concat([iv, u16(subsamples.length), ...entries]));
      } else {
        cipher.update(sample).copy(sample, 0);
        auxInfo.push(iv);
      }
    }
    const subsampleFlag = track.kind === "video" ? 0x2 : 0;
    const senc = leaf("senc", versionFlags(0, subsampleFlag), u32(auxInfo.length), ...auxInfo);
    const sizes = auxInfo.map((info) => info.length);
    const sameSize = sizes.every((size) => size === sizes[0]);
    if (sizes.some((size) => size > 0xff)) throw new Error("a sample has too many subsamples for saiz");
    const saiz = leaf(
      "saiz",
      versionFlags(0, 0),
      u8(sameSize ? sizes[0]! : 0),
      u32(sizes.length),
      sameSize ? Buffer.alloc(0) : Buffer.from(sizes),
    );
    const saio = leaf("saio", versionFlags(0, 0), u32(1), u32(0));
    traf.children = [...(traf.children ?? []), saiz, saio, senc];
    const grown = boxSize(moof) - oldMoofSize;
    for (const { trun, dataOffset, dataOffsetAt } of truns) {
      trun.head = Buffer.from(trun.head);
      trun.head.writeInt32BE(dataOffset + grown, dataOffsetAt);
    }
    // saio: where the first IV is, from the moof's start (default-base-is-moof): the senc's
    // payload after its version, flags and sample count.
    let sencAt = 8;
    for (const child of moof.children ?? []) {
      if (child === traf) break;
      sencAt += boxSize(child);
    }
    sencAt += 8 + traf.head.length;
    for (const child of traf.children) {
      if (child === senc) break;
      sencAt += boxSize(child);
    }
    saio.head.writeUInt32BE(sencAt + 8 + 8, 8);
    out.push(writeBox(moof), writeBox({ ...mdat, head: data }));
  }
  return Buffer.concat(out);
}

/**
 * `encryptFragments` undone: each sample decrypted with the IV and subsamples its `senc` gives
 * (which needs no init), `senc`, `saiz` and `saio` taken out of each `traf` and the `trun` data
 * offsets moved back. What a segment an earlier run uploaded is compared in the clear with.
 */
export function decryptFragments(media: Buffer, key: Buffer): Buffer {
  if (key.length !== 16) throw new Error(`an AES-128 key is 16 bytes, not ${key.length}`);
  const out: Buffer[] = [];
  for (const fragment of fragmentsOf(media)) {
    const { moof, mdat, traf, oldMoofSize, data, truns } = fragment;
    const senc = only(traf.children, "senc", "traf").head;
    const subsampled = (senc.readUInt32BE(0) & 0x2) !== 0;
    const count = senc.readUInt32BE(4);
    let at = 8;
    if (truns.reduce((sum, { sizes }) => sum + sizes.length, 0) !== count) {
      throw new Error("senc: not one entry per sample");
    }
    for (const sample of samplesOf(fragment)) {
      if (senc.length < at + IV_SIZE) throw new Error("senc: cut short");
      const iv = senc.subarray(at, at + IV_SIZE);
      at += IV_SIZE;
      const decipher = createDecipheriv("aes-128-ctr", key, Buffer.concat([iv, Buffer.alloc(8)]));
      if (subsampled) {
        const n = senc.readUInt16BE(at);
        at += 2;
        let offset = 0;
        for (let s = 0; s < n; s++) {
          offset += senc.readUInt16BE(at);
          const length = senc.readUInt32BE(at + 2);
          at += 6;
          if (offset + length > sample.length) throw new Error("senc: a subsample runs past its sample");
          decipher.update(sample.subarray(offset, offset + length)).copy(sample, offset);
          offset += length;
        }
      } else {
        decipher.update(sample).copy(sample, 0);
      }
    }
    traf.children = (traf.children ?? []).filter((box) => !["senc", "saiz", "saio"].includes(box.type));
    const shrunk = oldMoofSize - boxSize(moof);
    for (const { trun, dataOffset, dataOffsetAt } of truns) {
      trun.head = Buffer.from(trun.head);
      trun.head.writeInt32BE(dataOffset - shrunk, dataOffsetAt);
    }
    out.push(writeBox(moof), writeBox({ ...mdat, head: data }));
  }
  return Buffer.concat(out);
}
