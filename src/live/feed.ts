import type { ServerResponse } from "node:http";

/** The FLV file header: audio and video present. */
const FLV_HEADER = Buffer.from([0x46, 0x4c, 0x56, 0x01, 0x05, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00]);

/** A reader this far behind (bytes it has not taken) is cut off: the encode could not keep up. */
const MAX_READER_BACKLOG_BYTES = 32 * 1024 * 1024;
/** The group of pictures kept for a reader that joins late is bounded (a publisher that sends no keyframe). */
const MAX_GOP_BYTES = 16 * 1024 * 1024;

/** One media message of the publisher's stream, as the RTMP parser hands it over (an FLV tag's parts). */
export interface FeedPacket {
  /** 8 audio, 9 video, 18 script data (metadata). */
  type: number;
  /** Decode timestamp, milliseconds. */
  dts: number;
  /** The tag's body. */
  data: Buffer;
  /** What it is: codec headers, a keyframe, metadata (see `kind`). */
  kind: "audio header" | "video header" | "keyframe" | "frame" | "audio" | "metadata";
}

/**
 * A broadcast's stream as FLV, for the worker that encodes it (GET /live/v1/feeds/{videoId}.flv):
 * a reader gets the header, the metadata and codec headers, the group of pictures in progress (so
 * its decoder starts on a keyframe) and then every tag as it arrives, timestamps counted from its
 * first tag. Readers that fall far behind are cut off; `end` ends every reader.
 */
export class LiveFeed {
  #metadata: FeedPacket | null = null;
  #audioHeader: FeedPacket | null = null;
  #videoHeader: FeedPacket | null = null;
  #gop: FeedPacket[] = [];
  #gopBytes = 0;
  readonly #readers = new Map<ServerResponse, { base: number }>();
  #ended = false;
  /** Bytes received, for the bit rate limit and the stream's health. */
  bytesIn = 0;

  get ended(): boolean {
    return this.#ended;
  }

  push(packet: FeedPacket): void {
    if (this.#ended) return;
    this.bytesIn += packet.data.length;
    switch (packet.kind) {
      case "metadata":
        this.#metadata = packet;
        break;
      case "audio header":
        this.#audioHeader = packet;
        break;
      case "video header":
        this.#videoHeader = packet;
        break;
      case "keyframe":
        this.#gop = [packet];
        this.#gopBytes = packet.data.length;
        break;
      default:
        if (this.#gop.length > 0 && this.#gopBytes + packet.data.length <= MAX_GOP_BYTES) {
          this.#gop.push(packet);
          this.#gopBytes += packet.data.length;
        }
    }
    for (const [res, reader] of this.#readers) this.#write(res, reader, packet);
  }

  /** Adds a reader: what a decoder needs to start, then the live tags. */
  attach(res: ServerResponse): void {
    if (this.#ended) {
      res.writeHead(410, { "content-type": "text/plain" }).end("The broadcast has ended\n");
      return;
    }
    res.writeHead(200, { "content-type": "video/x-flv", "cache-control": "no-store" });
    res.write(FLV_HEADER);
    const start = this.#gop[0] ?? null;
    const reader = { base: start?.dts ?? -1 };
    this.#readers.set(res, reader);
    res.on("close", () => this.#readers.delete(res));
    for (const packet of [this.#metadata, this.#videoHeader, this.#audioHeader, ...this.#gop]) {
      if (packet) this.#write(res, reader, packet);
    }
  }

  /** Ends every reader (the publisher left); later readers get 410. */
  end(): void {
    this.#ended = true;
    for (const res of this.#readers.keys()) res.end();
    this.#readers.clear();
  }

  #write(res: ServerResponse, reader: { base: number }, packet: FeedPacket): void {
    if (res.writableLength > MAX_READER_BACKLOG_BYTES) {
      res.destroy(new Error("the feed's reader fell too far behind"));
      this.#readers.delete(res);
      return;
    }
    // Headers and metadata go at time 0; media counts from the reader's first tag.
    if (reader.base < 0 && (packet.kind === "keyframe" || packet.kind === "frame" || packet.kind === "audio")) {
      reader.base = packet.dts;
    }
    const headerLike = packet.kind === "metadata" || packet.kind === "audio header" || packet.kind === "video header";
    const dts = headerLike ? 0 : Math.max(0, packet.dts - reader.base);
    res.write(flvTag(packet.type, dts, packet.data));
  }
}

/** One FLV tag: its 11-byte header, the body, and the size of both after it. */
function flvTag(type: number, dts: number, data: Buffer): Buffer {
  const tag = Buffer.alloc(11 + data.length + 4);
  tag[0] = type;
  tag.writeUIntBE(data.length, 1, 3);
  tag.writeUIntBE(dts & 0xffffff, 4, 3);
  tag[7] = (dts >>> 24) & 0xff;
  data.copy(tag, 11);
  tag.writeUInt32BE(11 + data.length, 11 + data.length);
  return tag;
}
