import type { ServerResponse } from "node:http";
import type { FeedPacket, LiveFeed } from "../../src/live/feed.ts";

// Synthetic media for a broadcast's feed (feed.ts), and a reader that keeps what it is sent.

/** A reader's response that keeps what the feed writes: the FLV tags' timestamps, after the header. */
export function reader() {
  const chunks: Buffer[] = [];
  const res = {
    writableLength: 0,
    writeHead: () => res,
    write: (chunk: Buffer) => chunks.push(chunk),
    on: () => res,
    end: () => {},
  };
  /** Each media tag (audio or video, not metadata or codec headers) as [type, timestamp in ms]. */
  const mediaTags = () =>
    chunks.slice(1).flatMap((tag) => {
      const dts = tag.readUIntBE(4, 3) | (tag[7]! << 24);
      const avcPacketType = tag[12];
      const isHeader = tag[0] === 18 || (tag[0] === 9 && avcPacketType === 0) || (tag[0] === 8 && tag[12] === 0);
      return isHeader ? [] : [[tag[0], dts] as const];
    });
  /** Each video picture's timestamp (ms) and the publisher's frame number it carries (`packet`'s `frame`). */
  const pictures: (readonly [number, number])[] = [];
  let parsed = 1;
  const frames = () => {
    for (; parsed < chunks.length; parsed++) {
      const tag = chunks[parsed]!;
      if (tag[0] === 9 && tag[12] === 1) pictures.push([tag.readUIntBE(4, 3) | (tag[7]! << 24), tag.readUInt16BE(14)]);
    }
    return pictures;
  };
  return { res: res as unknown as ServerResponse, mediaTags, frames };
}

/** A tag of the publisher's stream; a picture's body carries `frame`, its number, which readers' `frames` give back. */
export const packet = (kind: FeedPacket["kind"], dts: number, frame = 0xaa): FeedPacket => {
  const type = kind === "metadata" ? 18 : kind.startsWith("audio") ? 8 : 9;
  // Byte 1: AVCPacketType (0 header, 1 NAL units) or AACPacketType (0 header, 1 raw).
  const data = Buffer.from([
    kind === "keyframe" ? 0x17 : 0x27,
    kind.endsWith("header") ? 0 : 1,
    0,
    frame >> 8,
    frame & 0xff,
    0,
  ]);
  return { type, dts, data, kind };
};

/** A publisher's stream from `fromMs` to `toMs`: 10 fps video, a keyframe every second, each picture numbered by its time (ms / 100). */
export function publish(feed: LiveFeed, fromMs: number, toMs: number): void {
  for (let ms = fromMs; ms < toMs; ms += 100) feed.push(packet(ms % 1000 === 0 ? "keyframe" : "frame", ms, ms / 100));
}
