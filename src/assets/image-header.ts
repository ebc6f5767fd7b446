/** What a PNG or JPEG file's header says: its format and its size in pixels. */
export interface ImageHeader {
  format: "png" | "jpeg";
  width: number;
  height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The format and dimensions from the file's own bytes, only when the whole file is one still image (a PNG from
 * IHDR to a final IEND with no animation chunks, a JPEG with one frame header up to a final end-of-image): ffmpeg
 * would decode images appended after the first, so a small header in front of large ones must not pass. Null
 * otherwise. One pass, no backtracking.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader | null {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return wholePng(bytes);
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) return wholeJpeg(bytes);
  return null;
}

function wholePng(bytes: Uint8Array): ImageHeader | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: ImageHeader | null = null;
  let i = 8;
  while (i + 12 <= bytes.length) {
    const length = view.getUint32(i);
    const type = String.fromCharCode(bytes[i + 4]!, bytes[i + 5]!, bytes[i + 6]!, bytes[i + 7]!);
    const end = i + 12 + length;
    if (end > bytes.length) return null;
    if (header === null) {
      if (type !== "IHDR" || length !== 13) return null;
      header = positive({ format: "png", width: view.getUint32(i + 8), height: view.getUint32(i + 12) });
      if (header === null) return null;
    } else if (type === "IHDR" || type === "acTL" || type === "fcTL" || type === "fdAT") {
      // A second header, or an animated PNG's frames.
      return null;
    }
    if (type === "IEND") return end === bytes.length ? header : null;
    i = end;
  }
  return null;
}

function wholeJpeg(bytes: Uint8Array): ImageHeader | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: ImageHeader | null = null;
  let i = 2;
  while (i + 2 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    if (marker === 0xd9) return header !== null && i + 2 === bytes.length ? header : null;
    // A second start of image, or a marker without a length where a segment must be.
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) return null;
    if (i + 4 > bytes.length) return null;
    const length = view.getUint16(i + 2);
    if (length < 2 || i + 2 + length > bytes.length) return null;
    // SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC): one frame, one image.
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      if (header !== null || length < 8) return null;
      header = positive({ format: "jpeg", width: view.getUint16(i + 7), height: view.getUint16(i + 5) });
      if (header === null) return null;
    }
    i += 2 + length;
    if (marker === 0xda) {
      if (header === null) return null;
      // Entropy-coded data runs to the next marker that is neither a stuffed 0xFF00 nor a restart.
      while (i + 1 < bytes.length) {
        if (bytes[i] === 0xff) {
          const next = bytes[i + 1]!;
          if (next !== 0x00 && !(next >= 0xd0 && next <= 0xd7) && next !== 0xff) break;
        }
        i += 1;
      }
      if (i + 1 >= bytes.length) return null;
    }
  }
  return null;
}

function positive(header: ImageHeader): ImageHeader | null {
  return header.width > 0 && header.height > 0 ? header : null;
}
