// Types of the parts of node-media-server the live ingest uses (its RTMP and FLV parsers, AMF decoder);
// the package ships JavaScript with JSDoc only.

declare module "node-media-server/src/protocol/rtmp.js" {
  export interface RtmpAvPacket {
    /** FLV codec id: 7 H.264, 10 AAC, 2 MP3; an enhanced-RTMP FourCC for HEVC, AV1, VP9. */
    codec_id: number;
    /** 8 audio, 9 video, 18 script data. */
    codec_type: number;
    /** 0 audio header, 1 audio, 2 video header, 3 keyframe, 4 frame, 5 metadata. */
    flags: number;
    pts: number;
    dts: number;
    size: number;
    data: Buffer;
  }
  export default class Rtmp {
    onConnectCallback: (req: { app: string; name: string; host: string; query: unknown }) => void;
    onPlayCallback: () => void;
    onPushCallback: () => void;
    onPacketCallback: (packet: RtmpAvPacket) => void;
    onOutputCallback: (buffer: Buffer) => void;
    /** Feeds bytes from the socket; a string is a protocol error. */
    parserData(buffer: Buffer): string | null;
    /** Makes room for the message whose header was just read. */
    packetAlloc(): void;
    /** The publisher's `deleteStream` command: it ended its stream (the parser does nothing with it). */
    onDeleteStream(invokeMessage: unknown): void;
    parserPacket: { header: { length: number } };
    inPackets: Map<number, unknown>;
    streamApp: string;
  }
}

declare module "node-media-server/src/protocol/amf.js" {
  const amf: {
    decodeAmf0Data(data: Buffer): { cmd?: unknown; dataObj?: Record<string, unknown> | null };
    /** Script data (`{ cmd: "onMetaData", dataObj }`) as AMF0: the tests write metadata with it. */
    encodeAmf0Data(data: { cmd: string; dataObj: Record<string, unknown> }): Buffer;
  };
  export default amf;
}

declare module "node-media-server/src/core/logger.js" {
  const logger: { level: string };
  export default logger;
}

declare module "node-media-server/src/protocol/flv.js" {
  import type { RtmpAvPacket } from "node-media-server/src/protocol/rtmp.js";
  /** node-media-server's FLV parser (the SRT ingest reads its remux's FLV with it). */
  export default class Flv {
    onPacketCallback: (packet: RtmpAvPacket) => void;
    /** Feeds FLV bytes; a string is a format error. */
    parserData(buffer: Buffer): string | null;
    /** Makes room for the tag whose header was just read. */
    parserTagAlloc(size: number): void;
  }
}
