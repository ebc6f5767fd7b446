import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { type FeedPacket, LiveFeed } from "../src/live/feed.ts";

/** A reader's response that keeps what the feed writes: the FLV tags' timestamps, after the header. */
function reader() {
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
  return { res: res as unknown as ServerResponse, mediaTags };
}

const packet = (kind: FeedPacket["kind"], dts: number): FeedPacket => {
  const type = kind === "metadata" ? 18 : kind.startsWith("audio") ? 8 : 9;
  // Byte 1: AVCPacketType (0 header, 1 NAL units) or AACPacketType (0 header, 1 raw).
  const data = Buffer.from([kind === "keyframe" ? 0x17 : 0x27, kind.endsWith("header") ? 0 : 1, 0, 0, 0, 0xaa]);
  return { type, dts, data, kind };
};

/** A publisher's stream: headers, then `seconds` of 10 fps video with a keyframe every second. */
function publish(feed: LiveFeed, fromMs: number, toMs: number): void {
  for (let ms = fromMs; ms < toMs; ms += 100) feed.push(packet(ms % 1000 === 0 ? "keyframe" : "frame", ms));
}

describe("a live feed's readers", () => {
  it("get everything from the broadcast's first keyframe while it is in its opening seconds, then only the group of pictures in progress", () => {
    const feed = new LiveFeed();
    feed.push(packet("metadata", 0));
    feed.push(packet("video header", 0));
    publish(feed, 0, 3000);
    // A worker that first sampled the opening joins 3 s in: its encode still starts at 0.
    const early = reader();
    feed.attach(early.res);
    const first = early.mediaTags();
    expect(first).toHaveLength(30);
    expect(first[0]).toEqual([9, 0]);
    // Past the opening (10 s of media), a reader joins at the group of pictures in progress.
    publish(feed, 3000, 12_500);
    const late = reader();
    feed.attach(late.res);
    const tags = late.mediaTags();
    expect(tags).toHaveLength(5);
    // Its timestamps count from its own first tag, the keyframe at 12 s.
    expect(tags.map(([, dts]) => dts)).toEqual([0, 100, 200, 300, 400]);
    // The early reader got every tag as it came.
    expect(early.mediaTags()).toHaveLength(125);
  });
});
