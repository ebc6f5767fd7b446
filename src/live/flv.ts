import Flv from "node-media-server/src/protocol/flv.js";
import type { RtmpAvPacket } from "node-media-server/src/protocol/rtmp.js";

/**
 * FLV, the one container a broadcast's media travel in between processes: the feed a worker reads
 * (feed.ts), the SRT remux's output (srt-ingest.ts), and a publisher relayed from another API
 * instance (relay.ts). Written here, read with node-media-server's parser, bounded.
 */

/** The FLV file header: audio and video present. */
export const FLV_HEADER = Buffer.from([0x46, 0x4c, 0x56, 0x01, 0x05, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00]);

/** One FLV tag: its 11-byte header, the body, and the size of both after it. */
export function flvTag(type: number, dts: number, data: Buffer): Buffer {
  const tag = Buffer.alloc(11 + data.length + 4);
  tag[0] = type;
  tag.writeUIntBE(data.length, 1, 3);
  tag.writeUIntBE(dts & 0xffffff, 4, 3);
  tag[7] = (dts >>> 24) & 0xff;
  data.copy(tag, 11);
  tag.writeUInt32BE(11 + data.length, 11 + data.length);
  return tag;
}

/** node-media-server's FLV parser, bounded like the RTMP parser: a tag may not be larger than a message. */
class GuardedFlv extends Flv {
  readonly maxTagBytes: number;
  constructor(maxTagBytes: number) {
    super();
    this.maxTagBytes = maxTagBytes;
  }
  override parserTagAlloc(size: number): void {
    if (size > this.maxTagBytes) throw new Error(`a media message of ${size} bytes is over the limit`);
    super.parserTagAlloc(size);
  }
}

/**
 * Reads an FLV byte stream (its header first) chunk by chunk, handing each tag to `onPacket` as
 * the RTMP parser hands a message. A chunk's result is why the stream is refused, or null: a tag
 * over `maxTagBytes` (refused before it is allocated), or bytes that are not FLV, said by
 * `malformed` in the caller's words.
 */
export function flvReader(
  maxTagBytes: number,
  onPacket: (packet: RtmpAvPacket) => void,
  malformed: (parserError: string) => string,
) {
  const flv = new GuardedFlv(maxTagBytes);
  flv.onPacketCallback = onPacket;
  return (chunk: Buffer): string | null => {
    try {
      const error = flv.parserData(chunk);
      return error ? malformed(error) : null;
    } catch (err) {
      return (err as Error).message;
    }
  };
}
