/**
 * A rung's media playlist as published, written by one function for both programs: the worker's
 * publisher while it encodes, and the API when it lists the segments of a split transcode's chunks
 * after the first chunk's (docs/chunked-transcoding.md). Every version of a rung's playlist then
 * has the same header, whichever program wrote it.
 */

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
export function renditionBitRates(
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
export function variantBitRates(video: SegmentBitRates, audio?: SegmentBitRates): SegmentBitRates {
  return { peak: video.peak + (audio?.peak ?? 0), average: video.average + (audio?.average ?? 0) };
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
