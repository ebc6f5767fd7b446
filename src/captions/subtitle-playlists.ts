import type { Db } from "../db/client.ts";
import { isUuid } from "../ids.ts";
import type { SegmentFormat } from "../generated/prisma/enums.ts";
import { MEDIA_TIME_ZERO_90KHZ } from "../protocol/media-timeline.ts";
import { CAPTION_FILE, RUNG_PLAYLIST } from "../protocol/storage-layout.ts";
import { singleSegmentPlaylist, withMediaGroup } from "../storage/playlists.ts";

/** The HLS group every caption track belongs to; every variant of the master refers to it. */
const SUBTITLES_GROUP = "subs";

/** What RFC 8216 and Apple's authoring spec call a track for the deaf and hard of hearing. */
const SDH_CHARACTERISTICS =
  "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

/** A caption track as the master playlist lists it. */
export interface SubtitleTrack {
  id: string;
  language: string;
  name: string;
  isDefault: boolean;
  autoselect: boolean;
  forced: boolean;
  hearingImpaired: boolean;
}

/**
 * The master playlist `master` (as the worker stored it) with `tracks` as SUBTITLES renditions
 * and every variant referring to them. The API adds them at each request rather than storing
 * them, so the worker, which rewrites the master on every encode, retry or resume, never has
 * to know about captions and never loses them.
 */
export function withSubtitles(master: string, tracks: readonly SubtitleTrack[]): string {
  // A group has at most one default (RFC 8216 4.3.4.1.1); should two racing requests both have set
  // one, the newer wins, as it would have had they come one after the other.
  const defaultId = tracks.findLast((track) => track.isDefault)?.id;
  const renditions = tracks.map((track) => {
    const isDefault = track.id === defaultId;
    return [
      `NAME="${track.name}"`,
      `LANGUAGE="${track.language}"`,
      `DEFAULT=${isDefault ? "YES" : "NO"}`,
      // RFC 8216 4.3.4.1: AUTOSELECT must be YES when DEFAULT is.
      `AUTOSELECT=${isDefault || track.autoselect ? "YES" : "NO"}`,
      `FORCED=${track.forced ? "YES" : "NO"}`,
      ...(track.hearingImpaired ? [`CHARACTERISTICS="${SDH_CHARACTERISTICS}"`] : []),
      `URI="../captions/${track.id}/${RUNG_PLAYLIST}"`,
    ];
  });
  return withMediaGroup(master, { type: "SUBTITLES", groupId: SUBTITLES_GROUP, renditions });
}

/**
 * A caption track's subtitle playlist: the whole WebVTT file as one segment as long as the video
 * (or, before the probe said how long it is, as its last cue).
 */
const subtitlePlaylist = (duration: number): string => singleSegmentPlaylist(CAPTION_FILE, duration);

/** The header line that ties cue time 0 to the video's first frame in its segments, which depends on their format. */
export function timestampMapFor(format: SegmentFormat): string {
  return `X-TIMESTAMP-MAP=MPEGTS:${MEDIA_TIME_ZERO_90KHZ[format]},LOCAL:00:00:00.000`;
}

/**
 * A stored caption file (`WEBVTT`, then the `X-TIMESTAMP-MAP` line it was stored with) with the line for
 * `format` instead. Served so rather than as stored, so that a file stored with another line (every file
 * once had the MPEG-TS one) still plays in time.
 */
function withTimestampMap(vtt: string, format: SegmentFormat): string {
  const first = vtt.indexOf("\n");
  const second = first < 0 ? -1 : vtt.indexOf("\n", first + 1);
  if (second < 0 || !vtt.startsWith("X-TIMESTAMP-MAP=", first + 1)) return vtt;
  return `${vtt.slice(0, first + 1)}${timestampMapFor(format)}${vtt.slice(second)}`;
}

/** What the media handlers ask about captions when they serve a master or a subtitle playlist. */
export interface CaptionCatalog {
  /** The READY caption tracks of a video, oldest first (a generated track joins once transcribed). */
  tracksOf(videoId: string): Promise<SubtitleTrack[]>;
  /** The subtitle playlist of one of the video's captions, or null when it has no such caption. */
  subtitlePlaylistOf(videoId: string, captionId: string): Promise<string | null>;
  /**
   * The WebVTT file of one of the video's captions as players get it (read with `readStored`), or null when
   * it has no such caption.
   */
  captionFileOf(
    videoId: string,
    captionId: string,
    readStored: (key: string) => Promise<string | null>,
  ): Promise<string | null>;
}

export function createCaptionCatalog(db: Db): CaptionCatalog {
  return {
    tracksOf: (videoId) =>
      db.caption.findMany({
        where: { videoId, status: "READY" },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        select: {
          id: true,
          language: true,
          name: true,
          isDefault: true,
          autoselect: true,
          forced: true,
          hearingImpaired: true,
        },
      }),
    async subtitlePlaylistOf(videoId, captionId) {
      if (!isUuid(captionId)) return null;
      const caption = await db.caption.findFirst({
        where: { id: captionId, videoId, status: "READY" },
        select: { lastCueEnd: true, video: { select: { duration: true } } },
      });
      return caption ? subtitlePlaylist(caption.video.duration ?? caption.lastCueEnd) : null;
    },
    async captionFileOf(videoId, captionId, readStored) {
      if (!isUuid(captionId)) return null;
      const caption = await db.caption.findFirst({
        where: { id: captionId, videoId, status: "READY" },
        select: { key: true, video: { select: { segmentFormat: true } } },
      });
      const stored = caption && (await readStored(caption.key));
      return stored ? withTimestampMap(stored, caption.video.segmentFormat) : null;
    },
  };
}
