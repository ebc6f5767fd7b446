import type { ServerResponse } from "node:http";
import { FLV_HEADER, flvTag } from "./flv.ts";

/** A reader this far behind (bytes it has not taken) is cut off: the encode could not keep up. */
const MAX_READER_BACKLOG_BYTES = 32 * 1024 * 1024;
/**
 * A simulcast target's reader this far behind is cut off (its forwarding reconnects from the live
 * edge): a slow target costs the API this much memory, never the broadcast's encode.
 */
const MAX_FORWARDER_BACKLOG_BYTES = 4 * 1024 * 1024;
/** An FLV AVC video tag's second byte (AVCPacketType) when the tag ends the sequence. */
const AVC_END_OF_SEQUENCE = 2;
/**
 * The media kept for a reader that joins (the encode's first run, or a run taking the broadcast
 * over): what its encode has not published yet, bounded by bytes and by media time. Beyond either,
 * the oldest group of pictures goes (that media is lost to a run that joins later).
 */
const MAX_REPLAY_BYTES = 32 * 1024 * 1024;
const MAX_REPLAY_MS = 30_000;

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
 * What a publisher pushes its media into: its broadcast's feed on this instance (LiveFeed), or a
 * relay to the API instance that holds its broadcast (relay.ts).
 */
export interface BroadcastFeed {
  push(packet: FeedPacket): void;
  /** Called once when it ends (the broadcast ended first): its publisher is cut off. */
  onEnd(listener: () => void): void;
}

/**
 * Where a feed also writes what it keeps for a joining reader, each packet at its time on the
 * encode's media time (ms), once that is known: a spool on the instance's disk (feed-spool.ts).
 */
export interface FeedSink {
  keep(packet: FeedPacket, mediaMs: number): void;
  /** The encode has published up to `mediaMs`: what only a reader joining before that needs may go. */
  published(mediaMs: number): void;
  /** What it was given goes (the feed's media time moved): the feed gives it again. */
  clear(): void;
  close(): void;
}

/** A step in the publisher's timestamps beyond these is a jump, not time passing (milliseconds). */
const MAX_FORWARD_STEP_MS = 5000;
const MAX_BACKWARD_STEP_MS = 1000;
/** Where media resumes after a jump or a reconnect: one frame's time after the last tag. */
const RESUME_STEP_MS = 40;

/**
 * A broadcast's stream as FLV, for the worker that encodes it (GET /live/v1/feeds/{videoId}.flv):
 * a reader gets the header, the metadata and codec headers, the media its encode has not published
 * yet from a keyframe (all of it from the broadcast's first keyframe until the encode reports what
 * it published; bounded), then every tag as it arrives, timestamped on the encode's media time (0
 * at the broadcast's first keyframe). So a run that takes the broadcast over (its worker died)
 * decodes from that keyframe and drops what comes before the point where the published media ends.
 * Readers that fall far behind are cut off; `end` ends every reader.
 *
 * Its timeline only moves forward at the pace of the media: a publisher's timestamps that jump
 * (forward by more than 5 s, back by more than 1 s) continue one frame after the last tag, and a
 * publisher that reconnects (`resume`) continues where the one before left off. The encode behind
 * it sees one stream, and the recording has no gap.
 */
export class LiveFeed implements BroadcastFeed {
  #metadata: FeedPacket | null = null;
  #audioHeader: FeedPacket | null = null;
  #videoHeader: FeedPacket | null = null;
  /**
   * What a reader that joins now gets after the headers: the media from the keyframe at or before
   * what its encode has published (`published`), or from the broadcast's first keyframe before
   * anything is; a keyframe first.
   */
  #replay: FeedPacket[] = [];
  #replayBytes = 0;
  /** The broadcast's first keyframe on the feed's timeline (ms): where the encode's media time 0 is. */
  #zero: number | null = null;
  /**
   * The encode's media time (ms) at `#zero`: 0 for the feed a broadcast started with; for one that
   * continues a broadcast another feed carried until then (`continuesBroadcast`), where its
   * published media ends, which the first run asking for a point (`attach`'s `fromSeconds`) says.
   */
  #origin: number | null;
  readonly #readers = new Map<ServerResponse, { base: number | null }>();
  /** Simulcast targets' readers (`attachForwarder`): not the encode's, so never counted as its reader. */
  readonly #forwarders = new Map<ServerResponse, { base: number | null; started: boolean }>();
  /** Runs holding the feed (`holdPresence`), by the id each gave: how a run's death is seen after the feed's end. */
  readonly #presences = new Map<string, ServerResponse>();
  /** Where the encode's published media ends on the feed's timeline (ms), once it reported it. */
  #publishedMs: number | null = null;
  #ended = false;
  readonly #endListeners: (() => void)[] = [];
  readonly #keyframeListeners: (() => void)[] = [];
  #missedFrom: number | null = null;
  #sink: FeedSink | null = null;
  /** Restored from a spool (`restore`): its media time is the spool's, before any run asked. */
  #restored = false;
  /** The bounds of what a joining reader gets: a restored feed's add what it was given (it is still to publish). */
  #maxReplayBytes = MAX_REPLAY_BYTES;
  #maxReplayMs = MAX_REPLAY_MS;
  readonly #readerGoneListeners: (() => void)[] = [];
  /** Added to the publisher's timestamps; the last timestamp received, and the last sent (ms). */
  #offset = 0;
  #lastIn: number | null = null;
  #lastOut = 0;
  /** Bytes received, for the bit rate limit and the stream's health. */
  bytesIn = 0;
  /** Timestamp jumps smoothed over, and publishers that resumed the feed. */
  jumps = 0;
  resumes = 0;
  /**
   * What the publisher sends, measured at each keyframe on the feed's timeline: the seconds since
   * the keyframe before, and the video frames per second between them. Null until two keyframes came.
   */
  input: { keyframeInterval: number; fps: number } | null = null;
  #lastKeyframeMs: number | null = null;
  #framesSinceKeyframe = 0;

  /**
   * `continuesBroadcast`: the broadcast's encode published media from another feed (an instance
   * that adopted it after its holder died or was stopped): this feed's media follows that.
   */
  constructor({ continuesBroadcast = false }: { continuesBroadcast?: boolean } = {}) {
    this.#origin = continuesBroadcast ? null : 0;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** A publisher reconnected: its media continues this feed's timeline. */
  resume(): void {
    this.#lastIn = null;
    this.resumes++;
  }

  push(received: FeedPacket): void {
    if (this.#ended) return;
    this.bytesIn += received.data.length;
    const packet = { ...received, dts: this.#timeline(received) };
    switch (packet.kind) {
      case "metadata":
        this.#metadata = packet;
        this.#toSink(packet);
        break;
      case "audio header":
        this.#audioHeader = packet;
        this.#toSink(packet);
        break;
      case "video header":
        this.#videoHeader = packet;
        this.#toSink(packet);
        break;
      case "keyframe":
        // An encoder ending its stream sends an AVC end of sequence flagged as a keyframe: no picture.
        if (packet.data[1] !== AVC_END_OF_SEQUENCE) this.#measureGop(packet.dts);
        if (this.#zero === null) {
          this.#zero = packet.dts;
          // The headers that came before it go to the spool now that media time is known.
          this.#refillSink();
        }
        this.#keep(packet);
        for (const listener of this.#keyframeListeners) listener();
        break;
      default:
        if (packet.kind === "frame") this.#framesSinceKeyframe++;
        // Before the first keyframe nothing can be decoded: a reader starts at one.
        if (this.#replay.length > 0) this.#keep(packet);
    }
    for (const [res, reader] of this.#readers) this.#write(res, reader, packet);
    for (const [res, forwarder] of this.#forwarders) this.#forward(res, forwarder, packet);
  }

  /**
   * Adds a simulcast target's reader (docs/live.md, "Simulcast"): the metadata and codec headers,
   * then the media from the newest keyframe on, timestamped from 0 there. It is cut off when it falls
   * more than 4 MiB behind (a slow target), and ended with the feed; it is not the encode's reader,
   * so it never holds back or stands in for the encode's takeover (`readerCount`, `onReaderGone`).
   */
  attachForwarder(res: ServerResponse): void {
    res.writeHead(200, { "content-type": "video/x-flv", "cache-control": "no-store" });
    res.write(FLV_HEADER);
    if (this.#ended) {
      res.end();
      return;
    }
    const forwarder = { base: null, started: false };
    this.#forwarders.set(res, forwarder);
    res.on("close", () => this.#forwarders.delete(res));
    const newest = this.#replay.findLastIndex((p) => p.kind === "keyframe");
    const media = newest >= 0 ? this.#replay.slice(newest) : [];
    for (const packet of [this.#metadata, this.#videoHeader, this.#audioHeader, ...media]) {
      if (packet) this.#forward(res, forwarder, packet);
    }
  }

  /** Simulcast targets' readers attached now. */
  get forwarderCount(): number {
    return this.#forwarders.size;
  }

  #forward(res: ServerResponse, forwarder: { base: number | null; started: boolean }, packet: FeedPacket): void {
    if (res.writableLength > MAX_FORWARDER_BACKLOG_BYTES) {
      res.destroy(new Error("the simulcast target fell too far behind"));
      this.#forwarders.delete(res);
      return;
    }
    // Media starts at a keyframe (the target's decoder needs one), at time 0.
    if (isMedia(packet) && !forwarder.started) {
      if (packet.kind !== "keyframe") return;
      forwarder.started = true;
      forwarder.base = packet.dts;
    }
    const dts = forwarder.base === null ? 0 : Math.max(0, packet.dts - forwarder.base);
    res.write(flvTag(packet.type, dts, packet.data));
  }

  /** Adds a packet to what a joining reader gets; the oldest groups of pictures go beyond the bounds. */
  #keep(packet: FeedPacket): void {
    this.#toSink(packet);
    this.#replay.push(packet);
    this.#replayBytes += packet.data.length;
    while (
      this.#replayBytes > this.#maxReplayBytes ||
      (packet.kind === "keyframe" && packet.dts - this.#replay[0]!.dts > this.#maxReplayMs)
    ) {
      const next = this.#replay.findIndex((p, i) => i > 0 && p.kind === "keyframe");
      this.#dropReplayBefore(next > 0 ? next : this.#replay.length);
      if (this.#replay.length === 0) break;
    }
  }

  #dropReplayBefore(index: number): void {
    for (const p of this.#replay.slice(0, index)) this.#replayBytes -= p.data.length;
    this.#replay = this.#replay.slice(index);
  }

  /**
   * The encode has published `seconds` of the broadcast (its media time, from the first keyframe):
   * a reader that joins from now on (a run taking it over) starts at the keyframe at or before
   * that point, and what comes before it is let go.
   */
  published(seconds: number): void {
    if (this.#zero === null || this.#origin === null) return;
    this.#publishedMs = Math.max(this.#publishedMs ?? 0, this.#zero + seconds * 1000 - this.#origin);
    this.#sink?.published(seconds * 1000);
    const start = this.#keyframeAtOrBefore(seconds);
    if (start > 0) this.#dropReplayBefore(start);
  }

  /**
   * The index in what a joining reader gets of the keyframe at or before `seconds` of the encode's
   * media time (a millisecond's slack: the point is summed from playlist lengths), or 0.
   */
  #keyframeAtOrBefore(seconds: number): number {
    if (this.#zero === null) return 0;
    const point = this.#zero + seconds * 1000 - (this.#origin ?? 0) + 1;
    let start = 0;
    for (let i = 0; i < this.#replay.length && this.#replay[i]!.dts <= point; i++)
      if (this.#replay[i]!.kind === "keyframe") start = i;
    return start;
  }

  /** Bytes held for a reader that joins (what the encode has not published): the broadcast's memory at risk. */
  get replayBytes(): number {
    return this.#replayBytes;
  }

  /**
   * Whether `receivedSeconds` is on the encode's media time yet: a feed continuing a broadcast
   * (`continuesBroadcast`) is once the first run asking for a point has said where it is (`attach`).
   */
  get mediaTimeKnown(): boolean {
    return this.#zero !== null && this.#origin !== null;
  }

  /**
   * Where the media the last reader to miss some (`attach`'s result) began missing, on the feed's
   * timeline (ms), or null: the readers of one takeover (its sample, its encode) miss the same media.
   */
  get missedFrom(): number | null {
    return this.#missedFrom;
  }

  /** Called at each keyframe the publisher sends (about once a group of pictures): what was received grew. */
  onKeyframe(listener: () => void): void {
    this.#keyframeListeners.push(listener);
  }

  /** Seconds of media the feed has received, on the encode's media time (from the first keyframe). */
  get receivedSeconds(): number {
    return this.#zero === null ? 0 : (Math.max(0, this.#lastOut - this.#zero) + (this.#origin ?? 0)) / 1000;
  }

  #measureGop(keyframeMs: number): void {
    const last = this.#lastKeyframeMs;
    if (last !== null && keyframeMs > last) {
      const keyframeInterval = (keyframeMs - last) / 1000;
      this.input = { keyframeInterval, fps: (this.#framesSinceKeyframe + 1) / keyframeInterval };
    }
    this.#lastKeyframeMs = keyframeMs;
    this.#framesSinceKeyframe = 0;
  }

  /** The feed's timestamp of a packet: media continues its timeline; headers sit at its current end. */
  #timeline(packet: FeedPacket): number {
    if (!isMedia(packet)) return this.#lastOut;
    if (this.#lastIn === null) {
      // The first packet, or the first of a publisher that resumed: right after what was sent.
      this.#offset = this.#lastOut === 0 ? -packet.dts : this.#lastOut + RESUME_STEP_MS - packet.dts;
    } else {
      const step = packet.dts - this.#lastIn;
      if (step > MAX_FORWARD_STEP_MS || step < -MAX_BACKWARD_STEP_MS) {
        this.#offset = this.#lastOut + RESUME_STEP_MS - packet.dts;
        this.jumps++;
      }
    }
    this.#lastIn = packet.dts;
    const out = Math.max(0, packet.dts + this.#offset);
    this.#lastOut = Math.max(this.#lastOut, out);
    return out;
  }

  /**
   * Adds a reader: what a decoder needs to start, then the live tags; on an ended feed (kept until
   * its encode ends), what it held, then its end: a run taking the broadcast over after its
   * publisher stopped publishes the tail the dead run had not. `fromSeconds` (a run taking the
   * broadcast over: where its published media ends, on the encode's media time): what it holds from
   * the keyframe at or before that point, not from the one before what the encode reported. Returns
   * the seconds of unpublished media the reader misses: let go beyond the bounds (30 s, 32 MiB)
   * before it joined, counted from that point where it is past what the encode reported (a reader
   * naming none, once something is published, is told of none: docs/live.md, "Nothing recorded twice").
   */
  attach(res: ServerResponse, fromSeconds: number | null = null): number {
    res.writeHead(200, { "content-type": "video/x-flv", "cache-control": "no-store" });
    res.write(FLV_HEADER);
    // A continuing feed's media starts where the first run asking for a point says its published media ends.
    if (this.#origin === null && fromSeconds !== null) {
      this.#origin = Math.round(fromSeconds * 1000);
      this.#refillSink();
    }
    const skipped = fromSeconds === null ? 0 : this.#keyframeAtOrBefore(fromSeconds);
    const start = this.#replay[0] ?? null;
    // Where its media must begin on the feed's timeline: where the encode's published media ends, as
    // it reported it or, further on, as the point the reader names says (a run reads it from storage's
    // playlists, which the encode's reports may lag). A reader naming none misses only what a first
    // run does (nothing published or restored yet): after that it is a run's sample, and the run's
    // encode, which names its point, says what is missed.
    const named =
      fromSeconds !== null && this.#zero !== null ? this.#zero - (this.#origin ?? 0) + fromSeconds * 1000 : null;
    const from =
      named !== null
        ? Math.max(named, this.#publishedMs ?? named)
        : this.#publishedMs === null && !this.#restored
          ? this.#zero
          : null;
    const missed = start && from !== null && start.dts - from > 1 ? (start.dts - from) / 1000 : 0;
    if (missed > 0) this.#missedFrom = from;
    // What it holds begins after the run's point because the feed let go of media the encode had not
    // published (`missed`): the encode's media time closes over what is lost, so the run's first
    // picture lands where its published media ends, and what it reports from then on maps back here.
    if (missed > 0 && named !== null && skipped === 0) {
      this.#origin = (this.#origin ?? 0) - missed * 1000;
      this.#refillSink();
    }
    // Its timestamps are the encode's media time (from the broadcast's first keyframe): a run taking
    // the broadcast over finds where its published media ends on them (docs/live.md, "When the
    // encode's process dies"). Before the first keyframe, from the reader's first media tag.
    const reader = { base: this.#zero === null ? null : this.#zero - (this.#origin ?? 0) };
    this.#readers.set(res, reader);
    res.on("close", () => {
      this.#readers.delete(res);
      if (!this.#ended) for (const listener of this.#readerGoneListeners) listener();
    });
    for (const packet of [this.#metadata, this.#videoHeader, this.#audioHeader, ...this.#replay.slice(skipped)]) {
      if (packet) this.#write(res, reader, packet);
    }
    if (this.#ended) {
      this.#readers.delete(res);
      res.end();
    }
    return missed;
  }

  /**
   * A run holds the feed while it lives (`id`: its own): an answer with no body, open until the run
   * says it is done (`presenceDone`) or the feed is let go (`release`). Its connection closing
   * otherwise is the run's death (or stop), which `onReaderGone` hears: once the feed has ended,
   * when its encode's reader has gone, the only sign of it; while it goes on, the sign of a run that
   * stopped reading (its ffmpeg restarting, its end being written) and then died.
   */
  holdPresence(id: string, res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" });
    res.flushHeaders();
    this.#presences.get(id)?.end();
    this.#presences.set(id, res);
    res.on("close", () => {
      if (this.#presences.get(id) !== res) return;
      this.#presences.delete(id);
      for (const listener of this.#readerGoneListeners) listener();
    });
  }

  /** The run `id` ended as it reports (its end event is on its way): its presence goes without a takeover. */
  presenceDone(id: string): void {
    const res = this.#presences.get(id);
    this.#presences.delete(id);
    res?.end();
  }

  /** Runs holding the feed now. */
  get presenceCount(): number {
    return this.#presences.size;
  }

  /** Lets go of an ended feed (its encode is over): what it held, and the runs holding it. */
  release(): void {
    this.end();
    for (const res of this.#presences.values()) res.end();
    this.#presences.clear();
    this.#replay = [];
    this.#replayBytes = 0;
    this.#sink?.close();
    this.#sink = null;
  }

  /** Ends every reader (the broadcast is over; a later one gets what it held, then its end), and `onEnd` hears it. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const res of this.#readers.keys()) res.end();
    this.#readers.clear();
    for (const res of this.#forwarders.keys()) res.end();
    this.#forwarders.clear();
    for (const listener of this.#endListeners) listener();
  }

  /**
   * Writes what the feed keeps to `sink` as well (a spool), from now on and what it holds now once
   * its media time is known; `release` closes it.
   */
  spoolTo(sink: FeedSink | null): void {
    this.#sink = sink;
    this.#refillSink();
  }

  /**
   * Starts a feed that continues a broadcast (`continuesBroadcast`) with what a crashed instance's
   * spool held (`media` from a keyframe, timestamped on the encode's media time): a run taking the
   * broadcast over gets it from the keyframe at or before its point, and the publisher coming back
   * continues after it. Returns the media time (seconds) it spans, or null (nothing to restore).
   */
  restore(headers: FeedPacket[], media: FeedPacket[]): { fromSeconds: number; toSeconds: number } | null {
    const first = media[0];
    if (first?.kind !== "keyframe" || this.#zero !== null || this.#origin !== null) return null;
    for (const header of headers) {
      if (header.kind === "metadata") this.#metadata = header;
      if (header.kind === "audio header") this.#audioHeader = header;
      if (header.kind === "video header") this.#videoHeader = header;
    }
    // Its timeline is the encode's media time.
    this.#zero = first.dts;
    this.#origin = first.dts;
    this.#restored = true;
    this.#lastOut = Math.max(...media.map((p) => p.dts));
    // All of it is kept until its encode publishes it, beside the usual bounds for what comes after.
    this.#maxReplayMs = MAX_REPLAY_MS + (this.#lastOut - first.dts);
    this.#maxReplayBytes = MAX_REPLAY_BYTES + media.reduce((sum, p) => sum + p.data.length, 0);
    for (const packet of media) this.#keep(packet);
    return { fromSeconds: first.dts / 1000, toSeconds: this.#lastOut / 1000 };
  }

  /** Gives the sink the headers and what a joining reader gets now, afresh, once the media time is known. */
  #refillSink(): void {
    if (!this.#sink || !this.mediaTimeKnown) return;
    this.#sink.clear();
    for (const packet of [this.#metadata, this.#videoHeader, this.#audioHeader, ...this.#replay])
      if (packet) this.#toSink(packet);
  }

  #toSink(packet: FeedPacket): void {
    if (!this.#sink || this.#zero === null || this.#origin === null) return;
    // Whole milliseconds: an FLV timestamp, and a spool file's name (the origin moves by a fraction).
    this.#sink.keep(packet, Math.max(0, Math.round(packet.dts - this.#zero + this.#origin)));
  }

  /** Readers attached now. */
  get readerCount(): number {
    return this.#readers.size;
  }

  /** Called each time a reader goes while the feed goes on (its encode's process died, or it fell too far behind). */
  onReaderGone(listener: () => void): void {
    this.#readerGoneListeners.push(listener);
  }

  /** Called once when the feed ends (its publisher is cut off when its broadcast ends first). */
  onEnd(listener: () => void): void {
    this.#endListeners.push(listener);
  }

  #write(res: ServerResponse, reader: { base: number | null }, packet: FeedPacket): void {
    if (res.writableLength > MAX_READER_BACKLOG_BYTES) {
      res.destroy(new Error("the feed's reader fell too far behind"));
      this.#readers.delete(res);
      return;
    }
    // Media counts from the broadcast's first keyframe (or the reader's first media tag, when it
    // joined before it); what comes before it goes at 0.
    if (reader.base === null && isMedia(packet)) reader.base = packet.dts - (this.#origin ?? 0);
    const dts = reader.base === null ? 0 : Math.max(0, packet.dts - reader.base);
    res.write(flvTag(packet.type, dts, packet.data));
  }
}

function isMedia(packet: FeedPacket): boolean {
  return packet.kind === "keyframe" || packet.kind === "frame" || packet.kind === "audio";
}
