/**
 * A rung's media playlist as published, written the same way by both programs: the worker while
 * it encodes, and the API when it lists the chunks of a split transcode (docs/chunked-transcoding.md).
 */

/** A published segment a resumed run keeps: its URI in the rung's playlist and its length. */
export interface KeptSegment {
  uri: string;
  duration: number;
}

/**
 * A rung's playlist as published: an event playlist from segment 0 (a resumed run's kept segments,
 * then its own), with one target duration in every version, ending once the rung is complete;
 * with `map` (fMP4) its segments follow that init segment.
 */
export function mediaPlaylist(
  segments: KeptSegment[],
  opts: { targetDuration: number; endList: boolean; map?: string },
): string {
  // A segment must not round to more than the target (RFC 8216 4.3.3.1): only a source with a
  // frame gap longer than half a second makes one, and then the playlist says so.
  const target = Math.max(opts.targetDuration, ...segments.map((s) => Math.round(s.duration)));
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
  for (const s of segments) lines.push(`#EXTINF:${s.duration.toFixed(6)},`, s.uri);
  if (opts.endList) lines.push("#EXT-X-ENDLIST");
  return `${lines.join("\n")}\n`;
}
