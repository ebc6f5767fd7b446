import type { Db } from "../db/client.ts";
import { AUDIO_TRACK_RUNG, RUNG_PLAYLIST } from "../protocol/storage-layout.ts";
import { withMediaGroup, withoutGroupDefault } from "../storage/playlists.ts";

/** The ladder's audio group (`masterPlaylist`): every variant of a video with sound refers to it. */
const AUDIO_GROUP = "audio";

/** A READY audio track as the master playlist lists it. */
export interface AudioRendition {
  id: string;
  language: string;
  name: string;
  isDefault: boolean;
}

/**
 * The master playlist `master` (as the worker stored it) with `tracks` as renditions of its AUDIO group,
 * beside the ladder's own audio (`NAME="default"`). A track chosen as the default takes DEFAULT=YES from
 * the ladder's audio. Added at each request, as captions are, so the worker never has to know about them.
 */
export function withAudioTracks(master: string, tracks: readonly AudioRendition[]): string {
  if (tracks.length === 0) return master;
  // Should two racing updates both have set one, the newer wins, as for captions.
  const defaultId = tracks.findLast((track) => track.isDefault)?.id;
  const renditions = tracks.map((track) => [
    `NAME="${track.name}"`,
    `LANGUAGE="${track.language}"`,
    `DEFAULT=${track.id === defaultId ? "YES" : "NO"}`,
    "AUTOSELECT=YES",
    'CHANNELS="2"',
    `URI="../audio/${track.id}/hls/${AUDIO_TRACK_RUNG}/${RUNG_PLAYLIST}"`,
  ]);
  const base = defaultId === undefined ? master : withoutGroupDefault(master, "AUDIO", AUDIO_GROUP);
  return withMediaGroup(base, { type: "AUDIO", groupId: AUDIO_GROUP, renditions });
}

/** What the media handler asks about audio tracks when it serves a master. */
export interface AudioTrackCatalog {
  /** The READY audio tracks of a video, oldest first. */
  readyTracksOf(videoId: string): Promise<AudioRendition[]>;
}

export function createAudioTrackCatalog(db: Db): AudioTrackCatalog {
  return {
    readyTracksOf: (videoId) =>
      db.audioTrack.findMany({
        where: { videoId, status: "READY" },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        select: { id: true, language: true, name: true, isDefault: true },
      }),
  };
}
