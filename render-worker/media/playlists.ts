/**
 * HLS playlists as the worker reads and writes them: m3u8-parser reads them; the master playlist
 * it publishes is written here, the rungs' by src/shared/media-playlist.ts (the API writes them too).
 */

import { type Manifest, Parser } from "m3u8-parser";
import type { ProbeResult, Rung } from "../../src/protocol/messages.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import type { PlaylistSegment } from "../../src/shared/media-playlist.ts";

/** A published segment a resumed run keeps: its URI in the rung's playlist and its length. */
export type KeptSegment = PlaylistSegment;

/** A playlist as m3u8-parser reads it. */
export function parsePlaylist(text: string): Manifest {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest;
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
