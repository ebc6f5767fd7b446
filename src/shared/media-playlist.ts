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

/**
 * The `Cache-Control` of a media playlist that still grows (a live broadcast's, or a transcode's
 * before it ends), for the API's responses and the stored objects alike. A browser must not keep
 * one: a player that polls every target duration and is answered from its own cache sees each new
 * segment up to `max-age` late, and that lateness is added to a live viewer's latency. A shared
 * cache (a CDN) may keep it for half a target duration, so a crowd of viewers costs the origin about
 * two requests per segment; with one-second segments it keeps nothing.
 */
export function growingPlaylistCacheControl(targetDuration: number, visibility: "public" | "private"): string {
  const shared = Math.floor(targetDuration / 2);
  return visibility === "public" && shared > 0 ? `public, max-age=0, s-maxage=${shared}` : `${visibility}, max-age=0`;
}
