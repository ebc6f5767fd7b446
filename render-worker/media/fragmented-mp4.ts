/**
 * The segment muxer writes each fragmented-MP4 segment as a file of its own: `ftyp` and an empty
 * `moov` (the init segment, byte for byte the same in every segment of a rung: one encoder, one
 * codec configuration), then the segment's `moof` + `mdat`, then an `mfra` index. HLS wants the
 * init once per rung (`#EXT-X-MAP`) and the media part alone in each segment: this splits them.
 */
export interface SplitSegment {
  /** `ftyp` + `moov`. */
  init: Buffer;
  /** The `moof` and `mdat` boxes, in their order. */
  media: Buffer;
}

/** Top-level boxes a segment may have besides the init and its fragments; they are left out. */
const DROPPED_BOXES = new Set(["mfra", "free", "skip"]);

/**
 * Splits one segment file; throws when its boxes do not fill it exactly (a file cut short) or it
 * is not `ftyp`, `moov`, then one or more `moof` + `mdat` pairs.
 */
export function splitFragmentedMp4(bytes: Buffer): SplitSegment {
  const boxes: { type: string; start: number; end: number }[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 8) throw new Error(`a box header at byte ${offset} is cut short`);
    let size = bytes.readUInt32BE(offset);
    const type = bytes.toString("latin1", offset + 4, offset + 8);
    if (size === 1) {
      if (bytes.length - offset < 16) throw new Error(`a box header at byte ${offset} is cut short`);
      size = Number(bytes.readBigUInt64BE(offset + 8));
    }
    if (size < 8 || offset + size > bytes.length) {
      throw new Error(`the ${JSON.stringify(type)} box at byte ${offset} runs past the end of the file`);
    }
    boxes.push({ type, start: offset, end: offset + size });
    offset += size;
  }
  const [ftyp, moov, ...rest] = boxes;
  if (ftyp?.type !== "ftyp" || moov?.type !== "moov") throw new Error("the file does not start with ftyp and moov");
  const fragments = rest.filter((box) => !DROPPED_BOXES.has(box.type));
  const pairs = fragments.length > 0 && fragments.length % 2 === 0;
  if (!pairs || fragments.some((box, i) => box.type !== (i % 2 === 0 ? "moof" : "mdat"))) {
    throw new Error(`the file's fragments are not moof + mdat pairs: ${rest.map((b) => b.type).join(", ")}`);
  }
  return {
    init: bytes.subarray(ftyp.start, moov.end),
    media: Buffer.concat(fragments.map((box) => bytes.subarray(box.start, box.end))),
  };
}
