/**
 * HLS playlists as the API reads, edits and stores them: m3u8-parser reads them, and every edit works on
 * whole lines and on the attribute lists of tags, scanned once from left to right, never by a
 * pattern over the text (playlists name tenant media, and a scan cannot backtrack). Edits keep
 * every line they do not change as it was written; lines end in LF once edited.
 */

import { Readable } from "node:stream";
import { videoKeyParts, videoPrefix } from "../protocol/storage-layout.ts";
import { attributeItems, PLAYLIST_TYPE, parsePlaylist, playlistLines } from "../shared/hls-playlists.ts";
import type { ApiStorage } from "./types.ts";

/**
 * The largest playlist the API writes (a split video's rung, a master it measures): about 60 bytes
 * a segment, ten hours of 1 s segments.
 */
const MAX_PLAYLIST_BYTES = 4 * 1024 * 1024;

/**
 * Stores a playlist the API wrote (its text from src/shared/hls-playlists.ts, the one writer both
 * programs call): every playlist the API stores goes through here.
 */
export async function storePlaylist(storage: Pick<ApiStorage, "write">, key: string, text: string): Promise<void> {
  await storage.write(key, Readable.from([Buffer.from(text)]), {
    limit: MAX_PLAYLIST_BYTES,
    contentType: PLAYLIST_TYPE,
  });
}

const hasTag = (text: string, tag: string): boolean => playlistLines(text).some((line) => line.startsWith(tag));

/** Whether the playlist is a master (it lists variants). */
export const isMasterPlaylist = (text: string): boolean => hasTag(text, "#EXT-X-STREAM-INF");

/** Whether the playlist will not change: a master, or a media playlist with its `#EXT-X-ENDLIST`. */
export const isFinishedPlaylist = (text: string): boolean => hasTag(text, "#EXT-X-ENDLIST") || isMasterPlaylist(text);

const TARGET_DURATION_TAG = "#EXT-X-TARGETDURATION:";

/** The whole seconds of a `#EXT-X-TARGETDURATION` line; 0 when it cannot be read. */
function targetDurationOfLine(line: string): number {
  const value = Number(line.slice(TARGET_DURATION_TAG.length));
  return Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

/** A media playlist's `#EXT-X-TARGETDURATION` in whole seconds; 0 when it has none it can read. */
export function targetDurationOf(text: string): number {
  const line = playlistLines(text).find((l) => l.startsWith(TARGET_DURATION_TAG));
  return line === undefined ? 0 : targetDurationOfLine(line);
}

/**
 * Where a media playlist ends, read in one pass over its lines (no parser: it is read each time a
 * live playlist grows): the last segment's media sequence number (-1 before the first), its target
 * duration (`targetDurationOf`) and whether it has its `#EXT-X-ENDLIST`.
 */
export function mediaPlaylistEnd(text: string): { lastSequence: number; targetDuration: number; finished: boolean } {
  const sequenceTag = "#EXT-X-MEDIA-SEQUENCE:";
  let first = 0;
  let segments = 0;
  let targetLine: string | null = null;
  let finished = false;
  for (const line of playlistLines(text)) {
    if (line.startsWith("#EXTINF:")) segments++;
    else if (targetLine === null && line.startsWith(TARGET_DURATION_TAG)) targetLine = line;
    else if (line.startsWith(sequenceTag)) {
      const value = Number(line.slice(sequenceTag.length));
      if (Number.isSafeInteger(value) && value >= 0) first = value;
    } else if (line.startsWith("#EXT-X-ENDLIST")) finished = true;
  }
  const targetDuration = targetLine === null ? 0 : targetDurationOfLine(targetLine);
  return { lastSequence: first + segments - 1, targetDuration, finished };
}

/** Whether `uri` starts with a scheme (`https:`, `data:`): an absolute URI, which no edit touches. */
export function hasUriScheme(uri: string): boolean {
  for (const [i, c] of [...uri].entries()) {
    const letter = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
    if (i === 0 && !letter) return false;
    if (c === ":") return i > 0;
    if (!letter && !(c >= "0" && c <= "9") && c !== "+" && c !== "." && c !== "-") return false;
  }
  return false;
}

/** `uri` with `query` (already encoded) added to its query string. */
const withQuery = (uri: string, query: string): string => `${uri}${uri.includes("?") ? "&" : "?"}${query}`;

/** The path of `uri`, without its query or fragment. */
const uriPath = (uri: string): string => {
  const end = [uri.indexOf("?"), uri.indexOf("#")].filter((i) => i >= 0);
  return end.length ? uri.slice(0, Math.min(...end)) : uri;
};

/**
 * A tag line with the value of each quoted `URI` attribute replaced by `map(value)`: the attribute
 * list after the tag's first colon is read as `attributeItems` reads it, and every other item
 * (another attribute, or what a tag like `#EXTINF:4.0,title` holds that is no attribute) stays as
 * it is, as does an item whose quote is not closed.
 */
function mapTagUris(line: string, map: (uri: string) => string): string {
  const colon = line.indexOf(":");
  if (colon < 0) return line;
  const items = attributeItems(line.slice(colon + 1)).map((item) =>
    item.length >= 6 && item.startsWith('URI="') && item.endsWith('"') ? `URI="${map(item.slice(5, -1))}"` : item,
  );
  return `${line.slice(0, colon + 1)}${items.join(",")}`;
}

/**
 * Every URI of a playlist mapped by `map`: URI lines (written trimmed) and the quoted `URI`
 * attributes of its tags (`EXT-X-MAP`, `EXT-X-MEDIA`, `EXT-X-KEY`, …). Everything else stays.
 */
function mapPlaylistUris(text: string, map: (uri: string) => string): string {
  return playlistLines(text)
    .map((line) => {
      if (line.startsWith("#")) return mapTagUris(line, map);
      return line.trim() ? map(line.trim()) : line;
    })
    .join("\n");
}

/** Every URI of a playlist, in order, as `mapPlaylistUris` sees them. */
function playlistUris(text: string): string[] {
  const uris: string[] = [];
  mapPlaylistUris(text, (uri) => {
    uris.push(uri);
    return uri;
  });
  return uris;
}

/**
 * `token` added to every URI that stays on this server (relative), so a player carries its playback
 * token along to child playlists, segments and caption files.
 */
export function appendTokenToPlaylist(text: string, token: string): string {
  return mapPlaylistUris(text, (uri) => appendToken(uri, token));
}

/** A relative `uri` with the playback `token`; an absolute one as it is. */
export const appendToken = (uri: string, token: string): string =>
  hasUriScheme(uri) ? uri : withQuery(uri, `token=${encodeURIComponent(token)}`);

/** A master whose relative child playlist URIs (lines and `URI="…"`) carry `query` on. */
export function appendQueryToChildPlaylists(master: string, query: string): string {
  return mapPlaylistUris(master, (uri) =>
    hasUriScheme(uri) || !uriPath(uri).endsWith(".m3u8") ? uri : withQuery(uri, query),
  );
}

/** The storage key a relative URI in the playlist stored at `playlistKey` points to. */
export function resolvePlaylistUri(playlistKey: string, uri: string): string | null {
  if (hasUriScheme(uri) || uri.startsWith("/")) return null;
  const resolved = new URL(uri, `http://storage.invalid/${playlistKey}`);
  if (resolved.search || resolved.hash) return null;
  return decodeURIComponent(resolved.pathname.slice(1));
}

const SIGN_CONCURRENCY = 32;

/**
 * Rewrites a stored HLS playlist for players that cannot reach the bucket by relative URL: each media URI of the
 * same video (segments, `URI="…"` of `EXT-X-MAP` and the like) becomes `urlFor(key)`, called once per key.
 * Playlists, WebVTT files and content keys stay relative, so players keep asking the API; absolute URIs and
 * ones leaving the video's prefix are left alone.
 */
export async function rewritePlaylistUris(
  text: string,
  playlistKey: string,
  urlFor: (key: string) => Promise<string>,
): Promise<string> {
  const videoId = videoKeyParts(playlistKey)?.videoId;
  if (!videoId) throw new Error(`Not a video's playlist: ${playlistKey}`);
  const ownPrefix = `${videoPrefix(videoId)}/`;
  const keyFor = (uri: string): string | null => {
    const path = uriPath(uri);
    // A protected video's keys and ClearKey licences are the API's own (src/content-protection/), never in the bucket.
    if (path.endsWith(".m3u8") || path.endsWith(".vtt") || path.endsWith(".key") || path.endsWith("/keys/clearkey")) {
      return null;
    }
    const key = resolvePlaylistUri(playlistKey, uri);
    return key?.startsWith(ownPrefix) ? key : null;
  };
  const keys = [...new Set(playlistUris(text).flatMap((uri) => keyFor(uri) ?? []))];
  const urls = new Map<string, string>();
  // Bounded, because without a local key every signature is a call to the IAM signBlob API.
  for (let i = 0; i < keys.length; i += SIGN_CONCURRENCY) {
    const batch = keys.slice(i, i + SIGN_CONCURRENCY);
    const signed = await Promise.all(batch.map(urlFor));
    for (const [j, key] of batch.entries()) urls.set(key, signed[j]!);
  }
  return mapPlaylistUris(text, (uri) => {
    const key = keyFor(uri);
    return key ? urls.get(key)! : uri;
  });
}

/** A media playlist cut into its header and its segments, each with the lines that list it. */
export interface SegmentedPlaylist {
  /** The lines before the first segment, without blank lines and `#EXT-X-ENDLIST`. */
  header: string[];
  /** Each segment's tags and URI line, as written, and its EXTINF duration. */
  segments: { lines: string[]; duration: number }[];
  /** `#EXT-X-MEDIA-SEQUENCE`: the first segment's number. */
  firstSequence: number;
  /** Whether the playlist has its `#EXT-X-ENDLIST`. */
  finished: boolean;
}

/** The media playlist `text` cut into segments; null when its lines and m3u8-parser disagree on them. */
export function segmentedPlaylist(text: string): SegmentedPlaylist | null {
  const manifest = parsePlaylist(text);
  const lines = playlistLines(text);
  const firstTag = lines.findIndex((l) => l.startsWith("#EXTINF:"));
  const kept = (l: string) => l.trim() !== "" && !l.startsWith("#EXT-X-ENDLIST");
  const header = (firstTag < 0 ? lines : lines.slice(0, firstTag)).filter(kept);
  const segments: SegmentedPlaylist["segments"] = [];
  let pending: string[] = [];
  for (const line of firstTag < 0 ? [] : lines.slice(firstTag).filter(kept)) {
    if (line.startsWith("#")) {
      pending.push(line);
      continue;
    }
    const duration = manifest.segments[segments.length]?.duration;
    if (duration === undefined || !(duration >= 0)) return null;
    segments.push({ lines: [...pending, line], duration });
    pending = [];
  }
  if (segments.length !== manifest.segments.length) return null;
  return { header, segments, firstSequence: manifest.mediaSequence ?? 0, finished: manifest.endList === true };
}

/**
 * A media playlist of `playlist`'s header and the segments at `listed` (indices, in order), its
 * `#EXT-X-MEDIA-SEQUENCE` the first listed segment's number (or the next one's when none is listed),
 * ended when `finished`.
 */
export function playlistOfSegments(playlist: SegmentedPlaylist, listed: readonly number[], finished: boolean): string {
  const header = [...playlist.header];
  const sequence = `#EXT-X-MEDIA-SEQUENCE:${playlist.firstSequence + (listed[0] ?? playlist.segments.length)}`;
  const sequenceLine = header.findIndex((l) => l.startsWith("#EXT-X-MEDIA-SEQUENCE:"));
  if (sequenceLine < 0) header.push(sequence);
  else header[sequenceLine] = sequence;
  const segments = listed.flatMap((i) => playlist.segments[i]!.lines);
  return `${[...header, ...segments, ...(finished ? ["#EXT-X-ENDLIST"] : [])].join("\n")}\n`;
}

/**
 * A growing (live) media playlist as its viewers get it, a sliding window: its last segments that
 * last `seconds` or more, and three target durations at least (all of them when they last less), `#EXT-X-MEDIA-SEQUENCE` the first one's
 * number and `#EXT-X-DISCONTINUITY-SEQUENCE` counting the discontinuities left out, without
 * `#EXT-X-PLAYLIST-TYPE` (an EVENT playlist never loses segments). Null for a finished playlist or
 * one this module cannot split into segments: it is served as stored.
 */
export function slidingWindowPlaylist(text: string, seconds: number): string | null {
  const playlist = segmentedPlaylist(text);
  if (!playlist || playlist.finished) return null;
  // RFC 8216 6.2.2: a live playlist lasts at least three target durations.
  const keep = Math.max(seconds, 3 * targetDurationOf(playlist.header.join("\n")));
  let first = playlist.segments.length;
  for (let covered = 0; first > 0 && covered < keep; ) covered += playlist.segments[--first]!.duration;
  const dropped = playlist.segments
    .slice(0, first)
    .reduce((n, s) => n + s.lines.filter((l) => l === "#EXT-X-DISCONTINUITY").length, 0);
  const header = playlist.header.filter(
    (l) => !l.startsWith("#EXT-X-PLAYLIST-TYPE:") && !l.startsWith("#EXT-X-DISCONTINUITY-SEQUENCE:"),
  );
  const stated = playlist.header.find((l) => l.startsWith("#EXT-X-DISCONTINUITY-SEQUENCE:"));
  const discontinuities = Number(stated?.slice("#EXT-X-DISCONTINUITY-SEQUENCE:".length) ?? 0) + dropped;
  if (discontinuities > 0) header.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${discontinuities}`);
  const listed = Array.from({ length: playlist.segments.length - first }, (_, i) => first + i);
  return playlistOfSegments({ ...playlist, header }, listed, false);
}

/** Renditions a master lists as one `#EXT-X-MEDIA` group. */
export interface MediaGroup {
  /** `SUBTITLES`, `CLOSED-CAPTIONS`, `AUDIO` or `VIDEO`; also the attribute by which a variant names the group. */
  type: string;
  groupId: string;
  /** Each rendition's attributes after TYPE and GROUP-ID, as written: `NAME="English"`, `DEFAULT=YES`, … */
  renditions: string[][];
}

/**
 * `master` with `group`'s renditions before its first variant and every variant referring to the
 * group; as it is without renditions, or when it lists no variant. A group the master has already
 * (an earlier edit's: captions, then another WebVTT track) gains the renditions, and a variant
 * that refers to it already keeps its one reference.
 */
export function withMediaGroup(master: string, group: MediaGroup): string {
  if (group.renditions.length === 0) return master;
  const lines = playlistLines(master);
  const firstVariant = lines.findIndex((l) => l.startsWith("#EXT-X-STREAM-INF:"));
  if (firstVariant < 0) return master;
  const media = group.renditions.map(
    (attributes) => `#EXT-X-MEDIA:${[`TYPE=${group.type}`, `GROUP-ID="${group.groupId}"`, ...attributes].join(",")}`,
  );
  const reference = `${group.type}="${group.groupId}"`;
  const refersToGroup = (variant: string) => variant.includes(`,${reference}`) || variant.includes(`:${reference}`);
  const out: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (i === firstVariant) out.push(...media);
    const isVariant = line.startsWith("#EXT-X-STREAM-INF:");
    out.push(isVariant && !refersToGroup(line) ? `${line},${reference}` : line);
  }
  return out.join("\n");
}

/**
 * `master` with `DEFAULT=NO` on every rendition of the `type` group `groupId` it lists (the ladder's own
 * audio, which the worker wrote `DEFAULT=YES`): done before a rendition chosen as the default joins the
 * group, which has at most one default (RFC 8216 4.3.4.1.1).
 */
export function withoutGroupDefault(master: string, type: string, groupId: string): string {
  const inGroup = (items: string[]) => items.includes(`TYPE=${type}`) && items.includes(`GROUP-ID="${groupId}"`);
  return playlistLines(master)
    .map((line) => {
      if (!line.startsWith("#EXT-X-MEDIA:")) return line;
      const items = attributeItems(line.slice("#EXT-X-MEDIA:".length));
      if (!inGroup(items) || !items.includes("DEFAULT=YES")) return line;
      return `#EXT-X-MEDIA:${items.map((item) => (item === "DEFAULT=YES" ? "DEFAULT=NO" : item)).join(",")}`;
    })
    .join("\n");
}

/** A VOD media playlist of one segment, `uri`, lasting `seconds` (at least 1). */
export function singleSegmentPlaylist(uri: string, seconds: number): string {
  const duration = Math.max(seconds, 1);
  return [
    "#EXTM3U",
    "#EXT-X-VERSION:3",
    `#EXT-X-TARGETDURATION:${Math.ceil(duration)}`,
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    `#EXTINF:${duration.toFixed(3)},`,
    uri,
    "#EXT-X-ENDLIST",
    "",
  ].join("\n");
}
