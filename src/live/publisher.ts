import amf from "node-media-server/src/protocol/amf.js";
import type { RtmpAvPacket } from "node-media-server/src/protocol/rtmp.js";
import { log } from "../log.ts";
import { liveBroadcasts, liveIngestBytes, liveIngestClosed } from "../metrics.ts";
import { type LiveInput, MAX_LIVE_INPUT } from "../protocol/live-messages.ts";
import type { BroadcastFeed, FeedPacket } from "./feed.ts";
import { H264TagReader, type PictureSize, type SpsPicture } from "./h264-sps.ts";

/** Limits on one ingest connection, RTMP or SRT (docs/live.md, docs/security.md). */
export interface IngestLimits {
  /** A connection that has not published with a good key by then is closed. */
  handshakeSeconds: number;
  /** Bytes a connection may send before its key is accepted. */
  preAuthBytes: number;
  /** The largest media message (a video frame); each protocol's parser closes a connection that declares a bigger one before allocating it. */
  maxMessageBytes: number;
  /** RTMP chunk streams a connection may open (each holds a message buffer). */
  maxChunkStreams: number;
  /** Bits per second over BITRATE_WINDOW_SECONDS. */
  maxBitrate: number;
  /** Seconds without media (audio or video frames) after which a publisher is closed. */
  stallSeconds: number;
  /**
   * A publisher whose metadata (size, frame rate) and H.264 sequence header have not come by then,
   * once its key is accepted, is closed.
   */
  metadataSeconds: number;
  /** Connections open at once, publishing or not; more are refused at accept. */
  maxConnections: number;
}

export const DEFAULT_INGEST_LIMITS: Omit<IngestLimits, "maxBitrate" | "stallSeconds" | "maxConnections"> = {
  handshakeSeconds: 10,
  preAuthBytes: 64 * 1024,
  maxMessageBytes: 8 * 1024 * 1024,
  maxChunkStreams: 16,
  metadataSeconds: 5,
};

const BITRATE_WINDOW_SECONDS = 5;
/** Why a stream of another codec is refused, whether its metadata or a packet says so. */
const CODEC_REFUSED = {
  video: "the video is not H.264 (set the encoder to x264 or H.264)",
  audio: "the audio is not AAC",
};
/** FLV codec ids the encode accepts: H.264 video, AAC audio. */
const H264 = 7;
const AAC = 10;

/** What the ingest asks of the live streams it serves (live-streams.ts wires it). */
export interface IngestSessions {
  /** Checks a stream key; the stream's id, or why it is refused. */
  authorize(key: string): Promise<{ streamId: string } | { refused: string }>;
  /** The publisher's metadata came: starts its broadcast; the feed to push into, or why it is refused. */
  begin(streamId: string, input: LiveInput): Promise<{ feed: BroadcastFeed } | { refused: string }>;
  /**
   * The publisher is gone: `unpublished`, it ended its stream itself (RTMP deleteStream, an SRT
   * caller's close), and its broadcast ends at once unless its stream says to wait; else its
   * connection ended (`reason` says why when the ingest cut it off) and its broadcast waits the
   * stream's reconnect window for it, then ends.
   */
  end(streamId: string, feed: BroadcastFeed | null, reason: string | null, unpublished: boolean): Promise<void>;
}

/** The connection under a publisher, as its protocol's ingest holds it. */
export interface PublisherConnection {
  /** The ingest's protocol, for metrics: `relay` is a publisher relayed from another API instance (relay.ts). */
  protocol: "rtmp" | "srt" | "relay";
  /** The caller's address, for logs. */
  client: string;
  /** Stop taking the connection's media for now (while its key is checked, while its broadcast starts). */
  hold(): void;
  /** Take it again. */
  release(): void;
  /** Drop the connection. */
  destroy(): void;
}

/** One publisher's connection as the live streams see it, whatever protocol carries it. */
export interface Publisher {
  readonly closed: boolean;
  /** The publisher asked to publish with this key (an RTMP stream name, an SRT stream id's key). */
  publish(key: string): void;
  /** Bytes came off the connection (before any parsing): the bit rate and pre-key limits; false once closed. */
  received(bytes: number): boolean;
  /** A media message, as FLV tags carry it (an RTMP message or a tag of the SRT remux). */
  packet(packet: RtmpAvPacket): void;
  /** Ends the connection (`reason` null: no refusal to tell, e.g. its connection dropped or its broadcast ended). */
  close(reason: string | null): void;
  /** The publisher ended its stream itself (RTMP deleteStream, an SRT caller's close): closes it as such. */
  unpublish(): void;
  /** Settles once the connection is closed and its stream has been told (an ingest that stops waits for it). */
  readonly settled: Promise<void>;
}

/**
 * A publisher's way from key to broadcast, the same for RTMP and SRT: the key is checked before
 * any media is taken; media waits (bounded) until the stream's metadata says what it is and its
 * H.264 sequence header has come; then the broadcast starts, and each message goes to its feed.
 * Every SPS the stream sends (in its sequence headers or its frames) must decode to the size its
 * metadata declared, within the largest input. Limits (time to publish, time to metadata, bit rate,
 * stalls, codecs, sizes) close the connection with a reason the stream keeps.
 */
export function startPublisher(
  connection: PublisherConnection,
  sessions: IngestSessions,
  limits: IngestLimits,
): Publisher {
  const { client, protocol } = connection;
  let state: "handshake" | "authorizing" | "waiting for metadata" | "starting" | "live" | "closed" = "handshake";
  /** The broadcast being started: a connection that closes meanwhile ends it once it exists. */
  let starting: Promise<unknown> | null = null;
  let streamId: string | null = null;
  let feed: BroadcastFeed | null = null;
  let bytes = 0;
  /** Packets that came before the broadcast started (codec headers, first frames), and their bytes. */
  let pending: FeedPacket[] = [];
  let pendingBytes = 0;
  let window = { start: Date.now(), bytes: 0 };
  let lastMedia = Date.now();
  const h264 = new H264TagReader();
  /** The metadata and what it declares, once it came; the broadcast starts with a sequence header too. */
  let declared: { packet: FeedPacket; input: LiveInput } | null = null;
  let sequenceHeader = false;
  /** Pictures the stream's SPSs declared before its metadata came, checked against it then. */
  let undeclared: SpsPicture[] = [];
  const startedAt = Date.now();
  let authorizedAt = 0;
  let unpublished = false;
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });

  const close = (reason: string | null) => {
    if (state === "closed") return;
    if (state === "live") liveBroadcasts.dec({ protocol });
    liveIngestClosed.inc({ protocol, outcome: reason !== null ? "refused" : unpublished ? "ended" : "dropped" });
    const wasStream = streamId;
    state = "closed";
    clearInterval(watch);
    connection.destroy();
    if (reason) log.info("live ingest: connection closed", { client, streamId: wasStream, reason });
    // The feed stays open for a publisher that reconnects in time (broadcast-reconnects.ts ends it).
    if (!wasStream) return settle();
    void (starting ?? Promise.resolve())
      .catch(() => {})
      .then(() => sessions.end(wasStream, feed, reason, unpublished))
      .catch((err) => log.error("live ingest: end failed", { err }))
      .finally(settle);
  };

  const watch = setInterval(() => {
    const now = Date.now();
    if ((state === "handshake" || state === "authorizing") && now - startedAt > limits.handshakeSeconds * 1000)
      close("no publish with a stream key in time");
    else if (state === "waiting for metadata" && now - authorizedAt > limits.metadataSeconds * 1000)
      close(
        declared
          ? "the stream sent no H.264 sequence header in time"
          : "the stream sent no metadata (size and frame rate) in time",
      );
    else if (state === "live" && now - lastMedia > limits.stallSeconds * 1000)
      close(`the publisher sent no audio or video for ${limits.stallSeconds} s`);
  }, 1000);
  watch.unref();

  /** Why a picture an SPS declares is refused (over the bound, or not what the metadata said), or null. */
  const pictureRefusal = (picture: SpsPicture, input: LiveInput): string | null => {
    const size = `${picture.width}x${picture.height}`;
    if (overMaxInput(picture) || overMaxInput(picture.coded, CODED_SLACK))
      return `the stream's video is ${size} (${picture.coded.width}x${picture.coded.height} coded), over the largest input (${MAX_LIVE_INPUT.width}x${MAX_LIVE_INPUT.height})`;
    if (even(picture.width) !== input.width || even(picture.height) !== input.height)
      return `the stream's video is ${size}, where its metadata says ${input.width}x${input.height}`;
    return null;
  };

  /** The stream's metadata came: checked, then the broadcast starts once a sequence header has come too. */
  const declare = (metadata: FeedPacket) => {
    const input = liveInputOf(metadata.data);
    if ("refused" in input) return close(input.refused);
    declared = { packet: metadata, input };
    const refused = undeclared.map((p) => pictureRefusal(p, input)).find((r) => r !== null);
    undeclared = [];
    if (refused) return close(refused);
    if (sequenceHeader) startBroadcast(metadata, input);
  };

  const startBroadcast = (metadata: FeedPacket, input: LiveInput) => {
    connection.hold();
    state = "starting";
    starting = sessions
      .begin(streamId!, input)
      .then((result) => {
        // Set even when the connection closed meanwhile: its end ends the broadcast it started.
        if ("feed" in result) feed = result.feed;
        if (state === "closed") return;
        if ("refused" in result) return close(result.refused);
        state = "live";
        lastMedia = Date.now();
        liveBroadcasts.inc({ protocol });
        // A broadcast that ends first (its encode failed or reached LIVE_MAX_DURATION_SECONDS, the
        // video was canceled) cuts its publisher off.
        result.feed.onEnd(() => {
          if (state === "closed") return;
          log.info("live ingest: publisher cut off: its broadcast ended", { client, streamId });
          // No reason for the stream: its broadcast's end already said why.
          close(null);
        });
        result.feed.push(metadata);
        for (const p of pending) result.feed.push(p);
        pending = [];
        connection.release();
      })
      .catch((err) => {
        log.error("live ingest: starting the broadcast failed", { err });
        close("starting the broadcast failed");
      });
  };

  return {
    get closed() {
      return state === "closed";
    },
    publish(key) {
      if (state !== "handshake") return close("a second publish on one connection");
      state = "authorizing";
      connection.hold();
      sessions
        .authorize(key)
        .then((result) => {
          if (state === "closed") return;
          if ("refused" in result) return close(result.refused);
          streamId = result.streamId;
          state = "waiting for metadata";
          authorizedAt = Date.now();
          connection.release();
        })
        .catch((err) => {
          log.error("live ingest: authorization failed", { err });
          close("authorization failed");
        });
    },
    received(count) {
      if (state === "closed") return false;
      const now = Date.now();
      bytes += count;
      liveIngestBytes.inc({ protocol }, count);
      if (state === "handshake" && bytes > limits.preAuthBytes) {
        close("too many bytes before a publish");
        return false;
      }
      if (now - window.start > BITRATE_WINDOW_SECONDS * 1000) window = { start: now, bytes: 0 };
      window.bytes += count;
      if ((window.bytes * 8) / BITRATE_WINDOW_SECONDS > limits.maxBitrate) {
        close(`the input is over ${Math.round(limits.maxBitrate / 1000)} kbit/s`);
        return false;
      }
      return true;
    },
    packet(packet) {
      if (state === "closed") return;
      if (state !== "waiting for metadata" && state !== "starting" && state !== "live")
        return close("media before an accepted publish");
      const refused = codecRefusal(packet);
      if (refused) return close(refused);
      const item = feedPacketOf(packet);
      if (item === null) return;
      const { kind } = item;
      if (packet.codec_type === 9) {
        const read = h264.read(item.data);
        if ("refused" in read) return close(read.refused);
        for (const picture of read.sps) {
          const refused = declared ? pictureRefusal(picture, declared.input) : null;
          if (refused) return close(refused);
          if (!declared) undeclared.push(picture);
        }
        if (read.picture) lastMedia = Date.now();
        if (kind === "video header") sequenceHeader = true;
      } else if (kind === "audio") lastMedia = Date.now();
      if (state === "live") return feed!.push(item);
      if (kind === "metadata" && state === "waiting for metadata" && !declared) return declare(item);
      pending.push(item);
      pendingBytes += item.data.length;
      if (pendingBytes > limits.maxMessageBytes) return close("too much media before the broadcast started");
      if (kind === "video header" && state === "waiting for metadata" && declared && sequenceHeader)
        startBroadcast(declared.packet, declared.input);
    },
    close,
    unpublish() {
      if (state === "closed") return;
      unpublished = true;
      close(null);
    },
    settled,
  };
}

/** Rounds a dimension down to even, as the ladder takes it. */
const even = (n: number) => n - (n % 2);

/** What a coded picture may have beyond the largest input: a macroblock's columns, an interlaced pair's rows. */
const CODED_SLACK: PictureSize = { width: 15, height: 31 };

/** Whether a picture is over the largest input (MAX_LIVE_INPUT: its width, its height or its area), plus `slack`. */
function overMaxInput({ width, height }: PictureSize, slack: PictureSize = { width: 0, height: 0 }): boolean {
  const maxWidth = MAX_LIVE_INPUT.width + slack.width;
  const maxHeight = MAX_LIVE_INPUT.height + slack.height;
  return width > maxWidth || height > maxHeight || width * height > maxWidth * maxHeight;
}

/** Why a packet's codec is not accepted, or null. */
function codecRefusal(packet: RtmpAvPacket): string | null {
  if (packet.codec_type === 9 && packet.codec_id !== H264) return CODEC_REFUSED.video;
  if (packet.codec_type === 8 && packet.codec_id !== AAC) return CODEC_REFUSED.audio;
  return null;
}

/** A media message of the RTMP (or FLV) parser as a broadcast's feed takes it, or null for one it does not. */
export function feedPacketOf(packet: RtmpAvPacket): FeedPacket | null {
  const kind = packetKind(packet);
  if (kind === null) return null;
  return { type: packet.codec_type, dts: packet.dts, data: Buffer.from(packet.data.subarray(0, packet.size)), kind };
}

function packetKind(packet: RtmpAvPacket): FeedPacket["kind"] | null {
  switch (packet.flags) {
    case 0:
      return "audio header";
    case 1:
      return "audio";
    case 2:
      return "video header";
    case 3:
      return "keyframe";
    case 4:
      return "frame";
    case 5:
      return "metadata";
    default:
      return null;
  }
}

/**
 * The stream's metadata (`onMetaData {…}`, behind `@setDataFrame` over RTMP) as a LiveInput, or
 * why it is refused.
 */
function liveInputOf(data: Buffer): LiveInput | { refused: string } {
  let meta: Record<string, unknown> | null | undefined;
  try {
    meta = amf.decodeAmf0Data(data).dataObj;
  } catch {
    return { refused: "unreadable stream metadata" };
  }
  if (!meta) return { refused: "the stream's metadata has no properties" };
  const width = Number(meta.width);
  const height = Number(meta.height);
  const fps = Number(meta.framerate ?? meta.fps ?? 30);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16)
    return { refused: "the stream's metadata has no video size (width, height)" };
  if (overMaxInput({ width, height }))
    return {
      refused: `${width}x${height} is over the largest input (${MAX_LIVE_INPUT.width}x${MAX_LIVE_INPUT.height})`,
    };
  if (!Number.isFinite(fps) || fps <= 0 || fps > 120) return { refused: `a frame rate of ${fps} is not accepted` };
  // Codecs as the metadata names them (an FLV id, or an enhanced-RTMP FourCC); each packet is checked again.
  if (meta.videocodecid !== undefined && meta.videocodecid !== H264 && meta.videocodecid !== "avc1")
    return { refused: CODEC_REFUSED.video };
  if (meta.audiocodecid !== undefined && ![0, "", AAC, "mp4a"].includes(meta.audiocodecid as never))
    return { refused: CODEC_REFUSED.audio };
  const audioCodec = meta.audiocodecid;
  return {
    width: even(width),
    height: even(height),
    fps,
    hasAudio: audioCodec !== undefined && audioCodec !== 0 && audioCodec !== "",
  };
}
