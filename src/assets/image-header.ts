/** What a PNG or JPEG file's header says: its format and its size in pixels. */
export interface ImageHeader {
  format: "png" | "jpeg";
  width: number;
  height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Reads the format and dimensions from the file's own bytes (never from the name or declared
 * type): PNG's IHDR chunk, or a JPEG's first start-of-frame segment. Null for anything else.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 24 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    const ihdr = String.fromCharCode(...bytes.subarray(12, 16));
    if (ihdr !== "IHDR") return null;
    return positive({ format: "png", width: view.getUint32(16), height: view.getUint32(20) });
  }
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    // Markers without a length: TEM and the restart markers.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    const length = view.getUint16(i + 2);
    // SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isFrame) {
      if (i + 9 > bytes.length) return null;
      return positive({ format: "jpeg", width: view.getUint16(i + 7), height: view.getUint16(i + 5) });
    }
    if (marker === 0xd9 || marker === 0xda || length < 2) return null;
    i += 2 + length;
  }
  return null;
}

function positive(header: ImageHeader): ImageHeader | null {
  return header.width > 0 && header.height > 0 ? header : null;
}
