/**
 * Every HLS playlist either program stores, written here and nowhere else: a rung's media playlist
 * (the worker's publisher while it encodes, a live broadcast's end on a full disk, and the API when
 * it lists a split transcode's chunks after the first chunk's: docs/chunked-transcoding.md), the
 * master (the worker's), and the master restated with measured rates (the API's, for a split
 * transcode and for videos made before workers measured). Whichever program writes a playlist, its
 * header and its `BANDWIDTH` rule are the same. Both read playlists with `parsePlaylist`.
 */

import { type Manifest, Parser } from "m3u8-parser";
import type { ProbeResult, Rung } from "../protocol/media-facts.ts";
import { RUNG_PLAYLIST } from "../protocol/storage-layout.ts";

/** The media type of every playlist either program stores. */
export const PLAYLIST_TYPE = "application/vnd.apple.mpegurl";

/** A playlist as m3u8-parser reads it. */
export function parsePlaylist(text: string): Manifest {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest;
}

/** The playlist's lines without their ends (LF or CRLF). */
export function playlistLines(text: string): string[] {
  return text.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
}

/** A segment as a playlist lists it: its URI beside the playlist and its length (EXTINF). */
export interface PlaylistSegment {
  uri: string;
  duration: number;
  /** `#EXT-X-DISCONTINUITY` before it: another encode starts here (a live broadcast taken over by a new run). */
  discontinuity?: boolean;
}

/**
 * An event playlist from segment 0, with one target duration in every version, ending
 * (`#EXT-X-ENDLIST`) once the rung is complete; with `map` (fMP4) its segments follow that init
 * segment.
 */
export function mediaPlaylist(
  segments: PlaylistSegment[],
  opts: { targetDuration: number; endList: boolean; map?: string },
): string {
  const target = playlistTargetDuration(segments, opts.targetDuration);
  const lines = [
    "#EXTM3U",
    // EXT-X-MAP in a playlist of whole segments needs version 6; fMP4 playlists say 7, as Apple's do.
    `#EXT-X-VERSION:${opts.map ? 7 : 6}`,
    `#EXT-X-TARGETDURATION:${target}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:EVENT",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    ...(opts.map ? [`#EXT-X-MAP:URI="${opts.map}"`] : []),
  ];
  for (const s of segments) {
    if (s.discontinuity) lines.push("#EXT-X-DISCONTINUITY");
    lines.push(`#EXTINF:${s.duration.toFixed(6)},`, s.uri);
  }
  if (opts.endList) lines.push("#EXT-X-ENDLIST");
  return `${lines.join("\n")}\n`;
}

/**
 * The `#EXT-X-TARGETDURATION` a playlist of `segments` declares: the job's, unless a segment rounds
 * to more. A segment must not (RFC 8216 4.3.3.1): only a source with a frame gap longer than half a
 * second makes one, and then the playlist says so.
 */
function playlistTargetDuration(segments: readonly PlaylistSegment[], targetDuration: number): number {
  return Math.max(targetDuration, ...segments.map((s) => Math.round(s.duration)));
}

/** A published segment's length and the bytes a player fetches for it (an fMP4 segment's without its init). */
export interface SizedSegment {
  duration: number;
  bytes: number;
}

/** What a rendition's segments carry, in bits per second (RFC 8216bis, 4.3.4.2), each rounded up. */
export interface SegmentBitRates {
  /** The highest rate of any run of consecutive segments lasting 0.5 to 1.5 target durations. */
  peak: number;
  /** The rendition's bytes over its length. */
  average: number;
}

/**
 * A finished rendition's peak and average segment bit rates, as RFC 8216bis defines them for a
 * variant's `BANDWIDTH` and `AVERAGE-BANDWIDTH`: a run's rate is its segments' bytes over their
 * EXTINF seconds. A rendition too short for any run of half a target duration counts its fastest
 * segment as its peak. One pass per first segment, each stopping past 1.5 target durations.
 */
export function segmentBitRates(segments: readonly SizedSegment[], targetDuration: number): SegmentBitRates {
  let peak = 0;
  let fastest = 0;
  let totalBytes = 0;
  let totalSeconds = 0;
  for (let first = 0; first < segments.length; first++) {
    const { bytes: firstBytes, duration: firstSeconds } = segments[first]!;
    totalBytes += firstBytes;
    totalSeconds += firstSeconds;
    if (firstSeconds > 0) fastest = Math.max(fastest, (firstBytes * 8) / firstSeconds);
    let bytes = 0;
    let seconds = 0;
    for (let i = first; i < segments.length; i++) {
      bytes += segments[i]!.bytes;
      seconds += segments[i]!.duration;
      if (seconds > 1.5 * targetDuration) break;
      if (seconds >= 0.5 * targetDuration) peak = Math.max(peak, (bytes * 8) / seconds);
    }
  }
  const average = totalSeconds > 0 ? (totalBytes * 8) / totalSeconds : 0;
  return { peak: Math.ceil(peak > 0 ? peak : fastest), average: Math.ceil(average) };
}

/**
 * What a finished rendition's segments carry (`segmentBitRates`) against the target duration its
 * playlist declares (`playlistTargetDuration`, from the job's), or undefined when a segment's bytes
 * are not known (kept from a published playlist, or reported by an older worker) or it has none.
 */
function renditionBitRates(
  segments: readonly (PlaylistSegment & { bytes?: number })[],
  targetDuration: number,
): SegmentBitRates | undefined {
  const sized: SizedSegment[] = [];
  for (const { duration, bytes } of segments) {
    if (bytes === undefined) return undefined;
    sized.push({ duration, bytes });
  }
  if (sized.length === 0) return undefined;
  return segmentBitRates(sized, playlistTargetDuration(segments, targetDuration));
}

/**
 * Each named rendition's rates (`renditionBitRates`), leaving out those whose segments' bytes are not
 * all known: what the worker's final master and the API's split master state.
 */
export function bitRatesByName(
  renditions: readonly { name: string; segments: readonly (PlaylistSegment & { bytes?: number })[] }[],
  targetDuration: number,
): Map<string, SegmentBitRates> {
  const byName = new Map<string, SegmentBitRates>();
  for (const { name, segments } of renditions) {
    const rates = renditionBitRates(segments, targetDuration);
    if (rates) byName.set(name, rates);
  }
  return byName;
}

/**
 * A published rendition's rates (`renditionBitRates`) from its playlist as m3u8-parser reads it and
 * the bytes storage holds for each segment it names (`bytesOf`; undefined where not known), against
 * its declared target duration (`targetDuration` where it declares none): undefined unless the
 * playlist is ended and every segment's bytes are known.
 */
export function publishedRenditionBitRates(
  playlist: { endList?: boolean; targetDuration?: number; segments: readonly PlaylistSegment[] },
  bytesOf: (uri: string) => number | undefined,
  targetDuration: number,
): SegmentBitRates | undefined {
  if (!playlist.endList) return undefined;
  const segments = playlist.segments.map(({ uri, duration }) => ({ uri, duration, bytes: bytesOf(uri) }));
  return renditionBitRates(segments, playlist.targetDuration ?? targetDuration);
}

/**
 * A variant's measured `BANDWIDTH` (peak) and `AVERAGE-BANDWIDTH`: its video rendition's plus those
 * of the audio it plays with (RFC 8216bis: the largest sums over the renditions that play together).
 */
function variantBitRates(video: SegmentBitRates, audio?: SegmentBitRates): SegmentBitRates {
  return { peak: video.peak + (audio?.peak ?? 0), average: video.average + (audio?.average ?? 0) };
}

/**
 * The master playlist: relative URIs, demuxed audio as one group every video rung refers to. A variant's
 * `BANDWIDTH` is its rungs' bound until `measured` holds its published segments' figures: then the measured
 * peak plus the audio's, with `AVERAGE-BANDWIDTH` once every rendition it plays is measured (hls-publisher.ts
 * writes the master with the bounds first, then with the measures).
 */
export function masterPlaylist(
  ladder: Rung[],
  probe: ProbeResult,
  measured: ReadonlyMap<string, SegmentBitRates> = new Map(),
): string {
  if (!ladder.some((r) => r.kind === "VIDEO")) return audioOnlyMasterPlaylist(ladder, measured);
  const audio = ladder.find((r) => r.kind === "AUDIO");
  const lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"];
  if (audio) {
    lines.push(
      `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",` +
        `URI="${audio.name}/${RUNG_PLAYLIST}"`,
    );
  }
  const audioRates = audio ? measured.get(audio.name) : undefined;
  for (const rung of ladder) {
    if (rung.kind !== "VIDEO") continue;
    const attributes = [
      ...bandwidthAttributes(rung, measured.get(rung.name), audio && { rung: audio, rates: audioRates }),
      `RESOLUTION=${rung.width}x${rung.height}`,
      ...(probe.fps > 0 ? [`FRAME-RATE=${probe.fps.toFixed(3)}`] : []),
      `CODECS="${audio ? `${rung.codecs},${audio.codecs}` : rung.codecs}"`,
      ...(audio ? [`AUDIO="audio"`] : []),
    ];
    lines.push(`#EXT-X-STREAM-INF:${attributes.join(",")}`, `${rung.name}/${RUNG_PLAYLIST}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * A variant's `BANDWIDTH` (and `AVERAGE-BANDWIDTH`): `rung`'s bound, which counts the audio it plays
 * with (planLadder), until the rung is measured; then the rung's measured peak plus the audio's.
 */
function bandwidthAttributes(
  rung: Rung,
  rates: SegmentBitRates | undefined,
  audio: { rung: Rung; rates: SegmentBitRates | undefined } | undefined,
): string[] {
  if (!rates) return [`BANDWIDTH=${rung.bandwidth}`];
  // Audio whose segments were not all measured: its bound with the video's peak, and no average.
  if (audio && !audio.rates) return [`BANDWIDTH=${rates.peak + audio.rung.bandwidth}`];
  const variant = variantBitRates(rates, audio?.rates);
  return [`BANDWIDTH=${variant.peak}`, `AVERAGE-BANDWIDTH=${variant.average}`];
}

/** An audio-only source's master playlist: each audio rung is a variant of its own, without RESOLUTION. */
function audioOnlyMasterPlaylist(ladder: Rung[], measured: ReadonlyMap<string, SegmentBitRates>): string {
  const lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"];
  for (const rung of ladder) {
    const bandwidth = bandwidthAttributes(rung, measured.get(rung.name), undefined);
    lines.push(
      `#EXT-X-STREAM-INF:${[...bandwidth, `CODECS="${rung.codecs}"`].join(",")}`,
      `${rung.name}/${RUNG_PLAYLIST}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * A tag's attribute list (RFC 8216 4.2) split into its `NAME=value` items, a comma inside a quoted
 * string kept in its item: one pass from left to right.
 */
export function attributeItems(list: string): string[] {
  const items: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '"') quoted = !quoted;
    else if (list[i] === "," && !quoted) {
      items.push(list.slice(start, i));
      start = i + 1;
    }
  }
  items.push(list.slice(start));
  return items;
}

const STREAM_INF = "#EXT-X-STREAM-INF:";

/**
 * A stored `master` (the worker's) with each variant's `BANDWIDTH` and `AVERAGE-BANDWIDTH` what its
 * renditions measured (`variantBitRates`): the rates of the video rendition its URI line names
 * (`videoRates`), plus `audio`'s when it plays with an audio group. A variant whose video is not in
 * `videoRates`, or that plays audio when `audio` is absent, keeps what it declares. The other
 * attributes stay in order, and every other line as written: the API restates a master whose ladder
 * and probe it does not hold, so it edits rather than writes it anew with `masterPlaylist`.
 */
export function withVariantBitRates(
  master: string,
  videoRates: ReadonlyMap<string, SegmentBitRates>,
  audio: SegmentBitRates | undefined,
): string {
  const lines = playlistLines(master);
  // The URI line after each line (a variant's), found in one pass from the end.
  const nextUri: (string | undefined)[] = [];
  for (let i = lines.length - 1, uri: string | undefined; i >= 0; i--) {
    nextUri[i] = uri;
    if (lines[i]!.trim() !== "" && !lines[i]!.startsWith("#")) uri = lines[i]!.trim();
  }
  return lines
    .map((line, i) => {
      if (!line.startsWith(STREAM_INF)) return line;
      const uri = nextUri[i];
      const video = uri === undefined ? undefined : videoRates.get(uri);
      const items = attributeItems(line.slice(STREAM_INF.length));
      const playsAudio = items.some((item) => item.startsWith("AUDIO="));
      if (!video || (playsAudio && !audio)) return line;
      const rates = variantBitRates(video, playsAudio ? audio : undefined);
      const others = items.filter((item) => !item.startsWith("BANDWIDTH=") && !item.startsWith("AVERAGE-BANDWIDTH="));
      return `${STREAM_INF}${[`BANDWIDTH=${rates.peak}`, `AVERAGE-BANDWIDTH=${rates.average}`, ...others].join(",")}`;
    })
    .join("\n");
}

/**
 * The `Cache-Control` of a media playlist that still grows, for responses and stored objects alike: a browser
 * must not keep it (a poll answered from its cache adds up to `max-age` to a live viewer's latency); a shared
 * cache may keep it half a target duration, about two origin requests per segment for a crowd.
 */
export function growingPlaylistCacheControl(targetDuration: number, visibility: "public" | "private"): string {
  const shared = Math.floor(targetDuration / 2);
  return visibility === "public" && shared > 0 ? `public, max-age=0, s-maxage=${shared}` : `${visibility}, max-age=0`;
}
