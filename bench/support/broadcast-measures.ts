import { segmentedPlaylist } from "../../src/storage/playlists.ts";

/**
 * What a recording may lack of what its publisher sent without counting as missing: the recording's
 * length is its segments' (cut at keyframes) and ffmpeg's count is of frames encoded, so they differ by
 * up to a group of pictures (1 s for `publish`'s).
 */
export const RECORDING_ALLOWANCE_SECONDS = 1;
/**
 * And per connection cut off: what it had in flight, and what an API instance that died (SIGKILL) had
 * received and not yet published, which docs/live.md counts as lost: up to a segment (2 s) and a
 * progress interval.
 */
export const DROP_ALLOWANCE_SECONDS = 3;

/**
 * Seconds the publisher sent while connected that the recording lacks beyond the allowances
 * (0 when it holds them all), to a tenth of a second.
 */
export function missingSentSeconds({
  sentSeconds,
  recordedSeconds,
  drops,
}: {
  sentSeconds: number;
  recordedSeconds: number | null;
  drops: number;
}): number {
  const allowed = RECORDING_ALLOWANCE_SECONDS + drops * DROP_ALLOWANCE_SECONDS;
  return Math.max(0, Math.round((sentSeconds - allowed - (recordedSeconds ?? 0)) * 10) / 10);
}

/** The `#EXT-X-DISCONTINUITY` tags of a media playlist (an encode taking the broadcast over starts after one); null when it does not parse. */
export function playlistDiscontinuities(text: string): number | null {
  const playlist = segmentedPlaylist(text);
  if (!playlist) return null;
  return playlist.segments.filter((s) => s.lines.includes("#EXT-X-DISCONTINUITY")).length;
}
