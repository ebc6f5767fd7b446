/**
 * Instant clips: a video's published playlists, served over a time range of it without any encode.
 * A playback URL with `asset_start_time` and/or `asset_end_time` (seconds, as Mux names them) gets a
 * master whose child playlist URIs carry the range on, and rung playlists that list only the
 * segments overlapping the range, so the clip starts and ends on segment boundaries: the video's,
 * which an audio rendition follows.
 */

import {
  appendQueryToChildPlaylists,
  hasUriScheme,
  playlistOfSegments,
  type SegmentedPlaylist,
  segmentedPlaylist,
} from "../storage/playlists.ts";
import { parsePlaylist } from "../shared/hls-playlists.ts";

const CLIP_START_PARAM = "asset_start_time";
const CLIP_END_PARAM = "asset_end_time";

/** A clip's range in seconds of the video; `end` null: to the video's end. */
export interface ClipRange {
  start: number;
  end: number | null;
}

/** Longer than any video this service accepts; a bound so that a number never loses its precision. */
const MAX_SECONDS = 10_000_000;
const SECONDS = /^\d{1,8}(\.\d{1,6})?$/;
/** Segment edges that differ by less than this are the same instant (EXTINF durations are rounded). */
const EDGE_EPSILON = 0.001;

/**
 * The range a media URL asks for: null when it names none, a problem when a value is not a plain
 * non-negative decimal number of seconds (no NaN, Infinity, exponent or sign) or the range is empty.
 */
export function clipRangeOf(url: URL): ClipRange | null | { problem: string } {
  const startText = url.searchParams.get(CLIP_START_PARAM);
  const endText = url.searchParams.get(CLIP_END_PARAM);
  if (startText === null && endText === null) return null;
  const parse = (name: string, text: string | null): number | null | { problem: string } => {
    if (text === null) return null;
    const value = Number(text);
    if (!SECONDS.test(text) || !Number.isFinite(value) || value > MAX_SECONDS) {
      return { problem: `${name} must be a number of seconds from 0 (e.g. 12.5), not ${JSON.stringify(text)}` };
    }
    return value;
  };
  const start = parse(CLIP_START_PARAM, startText);
  if (start !== null && typeof start === "object") return start;
  const end = parse(CLIP_END_PARAM, endText);
  if (end !== null && typeof end === "object") return end;
  if (end !== null && end <= (start ?? 0)) {
    return { problem: `${CLIP_END_PARAM} must be after ${CLIP_START_PARAM}` };
  }
  if (end === 0) return { problem: `${CLIP_END_PARAM} must be after the video's start` };
  return { start: start ?? 0, end };
}

/** The query that carries `range` on to a child playlist. */
function rangeQuery(range: ClipRange): string {
  const params = new URLSearchParams({ [CLIP_START_PARAM]: String(range.start) });
  if (range.end !== null) params.set(CLIP_END_PARAM, String(range.end));
  return params.toString();
}

/** A master playlist whose relative child playlist URIs (lines and `URI="…"`) carry the range on. */
export function clipMasterPlaylist(text: string, range: ClipRange): string {
  return appendQueryToChildPlaylists(text, rangeQuery(range));
}

/**
 * The relative URI of the media playlist that tells a master's video's length and where its
 * clips are cut: its first variant, else its first audio rendition (never a subtitle track, whose
 * playlist is made by the API and not stored); null when it names none.
 */
export function referencePlaylistUri(master: string): string | null {
  const manifest = parsePlaylist(master);
  const audio = Object.values(manifest.mediaGroups?.AUDIO ?? {}).flatMap((group) =>
    Object.values(group).map((rendition) => rendition.uri),
  );
  const uris = [...(manifest.playlists ?? []).map((variant) => variant.uri), ...audio];
  return uris.find((uri): uri is string => typeof uri === "string" && !hasUriScheme(uri)) ?? null;
}

/** The relative URIs of a master's audio renditions (`#EXT-X-MEDIA:TYPE=AUDIO`). */
export function audioRenditionUris(master: string): string[] {
  return Object.values(parsePlaylist(master).mediaGroups?.AUDIO ?? {}).flatMap((group) =>
    Object.values(group).flatMap((rendition) =>
      typeof rendition.uri === "string" && !hasUriScheme(rendition.uri) ? [rendition.uri] : [],
    ),
  );
}

/** How long a finished media playlist lasts (the sum of its EXTINF), or null while it still grows. */
export function finishedPlaylistSeconds(text: string): number | null {
  const manifest = parsePlaylist(text);
  if (!manifest.endList) return null;
  return manifest.segments.reduce((total, segment) => total + (segment.duration ?? 0), 0);
}

/** A clip shorter than this at the video's end is an empty one (the last segment can end a frame late). */
const MIN_CLIP_SECONDS = 0.1;

/** Why a finished playlist of `seconds` cannot be clipped to `range`, or null when it can. */
export function rangeBeyondEnd(range: ClipRange, seconds: number): string | null {
  if (range.start + MIN_CLIP_SECONDS <= seconds) return null;
  return `${CLIP_START_PARAM} (${range.start}) is not before the video's end (${seconds.toFixed(3)} s)`;
}

/** A media playlist's segments on its timeline. */
interface RungPlaylist {
  playlist: SegmentedPlaylist;
  segments: { from: number; to: number }[];
  finished: boolean;
}

function readRungPlaylist(text: string): RungPlaylist | { problem: string } {
  const playlist = segmentedPlaylist(text);
  if (playlist === null) return { problem: "the playlist cannot be clipped" };
  let at = 0;
  const segments = playlist.segments.map(({ duration }) => {
    const span = { from: at, to: at + duration };
    at += duration;
    return span;
  });
  return { playlist, segments, finished: playlist.finished };
}

/** Which of a rung's segments a clip lists (their indices, in order), and whether its list has ended. */
interface Picked {
  listed: number[];
  ended: boolean;
}

/** The segments overlapping `range`, up to the first that reaches its end. */
function pickByRange(rung: RungPlaylist, range: ClipRange): Picked | { problem: string } {
  const listed: number[] = [];
  let reachedEnd = false;
  for (const [i, { from, to }] of rung.segments.entries()) {
    if (reachedEnd) break;
    const overlaps = to - range.start > EDGE_EPSILON && (range.end === null || range.end - from > EDGE_EPSILON);
    if (!overlaps) continue;
    listed.push(i);
    if (range.end !== null && to + EDGE_EPSILON >= range.end) reachedEnd = true;
  }
  if (rung.finished) {
    const beyond = rangeBeyondEnd(range, rung.segments.at(-1)?.to ?? 0);
    if (beyond) return { problem: beyond };
  }
  return { listed, ended: reachedEnd || rung.finished };
}

/**
 * Where a video rung's clip lies on its timeline: from its first listed segment's start to its last
 * one's end, and whether the list has ended (else more may follow); null while it lists none.
 */
interface ClipSpan {
  from: number;
  to: number;
  ended: boolean;
}

/**
 * An audio segment belongs to a clip when most of it lies in the video's segments: audio cuts sit up to the
 * AAC priming (21.3 ms at 48 kHz) before the video's, so picking by the video's range keeps a range ending just
 * past an audio cut from adding an audio segment the video does not have.
 */
function pickBySpan(rung: RungPlaylist, span: ClipSpan | null): Picked {
  if (span === null) return { listed: [], ended: false };
  const listed: number[] = [];
  for (const [i, { from, to }] of rung.segments.entries()) {
    const middle = (from + to) / 2;
    if (middle >= span.from && middle < span.to) listed.push(i);
  }
  const published = rung.segments.at(-1)?.to ?? 0;
  const reachedEnd = span.ended && published >= span.to - ALIGN_EPSILON;
  return { listed, ended: reachedEnd || rung.finished };
}

/** How far an audio rung's published end may fall short of the video's and still have all of a clip. */
const ALIGN_EPSILON = 0.05;

function clipSpanOf(rung: RungPlaylist, picked: Picked): ClipSpan | null {
  const first = picked.listed[0];
  const last = picked.listed.at(-1);
  if (first === undefined || last === undefined) return null;
  return { from: rung.segments[first]!.from, to: rung.segments[last]!.to, ended: picked.ended };
}

/**
 * A rung playlist listing only the clip `range`'s segments: the header kept, `#EXT-X-MEDIA-SEQUENCE` the first
 * listed, the end once a segment reaches the range's end; a growing playlist not there yet lists nothing and
 * no end. With `videoPlaylist`, audio segments are the video clip's, so both last as long as each other.
 */
export function clipMediaPlaylist(
  text: string,
  range: ClipRange,
  videoPlaylist?: string,
): { text: string } | { problem: string } {
  const rung = readRungPlaylist(text);
  if ("problem" in rung) return rung;
  let picked: Picked | { problem: string };
  if (videoPlaylist === undefined) {
    picked = pickByRange(rung, range);
  } else {
    const video = readRungPlaylist(videoPlaylist);
    if ("problem" in video) return video;
    const videoPicked = pickByRange(video, range);
    if ("problem" in videoPicked) return videoPicked;
    picked = pickBySpan(rung, clipSpanOf(video, videoPicked));
  }
  if ("problem" in picked) return picked;
  return { text: playlistOfSegments(rung.playlist, picked.listed, picked.ended) };
}
