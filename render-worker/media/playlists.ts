/**
 * HLS playlists as the worker reads and writes them: m3u8-parser reads them; the master playlist
 * it publishes is written here, the rungs' by src/shared/media-playlist.ts (the API writes them too).
 */

import { type Manifest, Parser } from "m3u8-parser";
import type { ProbeResult, Rung } from "../../src/protocol/media-facts.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { type PlaylistSegment, type SegmentBitRates, variantBitRates } from "../../src/shared/media-playlist.ts";

/** A published segment a resumed run keeps: its URI in the rung's playlist and its length. */
export type KeptSegment = PlaylistSegment;

/** A playlist as m3u8-parser reads it. */
export function parsePlaylist(text: string): Manifest {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest;
}

/**
 * The master playlist: relative URIs, demuxed audio as one group every video rung refers to.
 *
 * Each variant's `BANDWIDTH` is its rungs' bound (`Rung.bandwidth`, the ladder's model of what they
 * may carry) until `measured` holds what a rung's published segments carry: then its measured peak,
 * plus the audio's (measured, else its bound), and `AVERAGE-BANDWIDTH` when every rendition it plays
 * is measured. The worker publishes the master with the bounds as soon as every rung has a segment,
 * and once more with the measured rates when the encode has published them all (hls-publisher.ts).
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
