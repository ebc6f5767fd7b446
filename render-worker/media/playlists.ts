/**
 * HLS playlists as the worker reads and writes them: m3u8-parser reads them; the rung and master
 * playlists it publishes are written here.
 */

import { type Manifest, Parser } from "m3u8-parser";
import type { ProbeResult, Rung } from "../../src/protocol/messages.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";

/** A published segment a resumed run keeps: its URI in the rung's playlist and its length. */
export interface KeptSegment {
  uri: string;
  duration: number;
}

/** A playlist as m3u8-parser reads it. */
export function parsePlaylist(text: string): Manifest {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest;
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

/** The master playlist: relative URIs, demuxed audio as one group every video rung refers to. */
export function masterPlaylist(ladder: Rung[], probe: ProbeResult): string {
  if (!ladder.some((r) => r.kind === "VIDEO")) return audioOnlyMasterPlaylist(ladder);
  const audio = ladder.find((r) => r.kind === "AUDIO");
  const lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"];
  if (audio) {
    lines.push(
      `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",` +
        `URI="${audio.name}/${RUNG_PLAYLIST}"`,
    );
  }
  for (const rung of ladder) {
    if (rung.kind !== "VIDEO") continue;
    const attributes = [
      `BANDWIDTH=${rung.bandwidth}`,
      `RESOLUTION=${rung.width}x${rung.height}`,
      ...(probe.fps > 0 ? [`FRAME-RATE=${probe.fps.toFixed(3)}`] : []),
      `CODECS="${audio ? `${rung.codecs},${audio.codecs}` : rung.codecs}"`,
      ...(audio ? [`AUDIO="audio"`] : []),
    ];
    lines.push(`#EXT-X-STREAM-INF:${attributes.join(",")}`, `${rung.name}/${RUNG_PLAYLIST}`);
  }
  return `${lines.join("\n")}\n`;
}

/** An audio-only source's master playlist: each audio rung is a variant of its own, without RESOLUTION. */
function audioOnlyMasterPlaylist(ladder: Rung[]): string {
  const lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"];
  for (const rung of ladder) {
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${rung.bandwidth},CODECS="${rung.codecs}"`,
      `${rung.name}/${RUNG_PLAYLIST}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
