/**
 * What the MPD is made from, read off HLS playlists: a master's variants and renditions, a media
 * playlist's init segment and segments. Each reader is one pass over the lines, with each tag's
 * attribute list split by `attributeItems` (no pattern over the text, so nothing can backtrack) and
 * bounded: the playlists were stored by our worker or made by the API, but are read as untrusted.
 * Not `parsePlaylist` (m3u8-parser), which the other readers use: its attribute pattern backtracks
 * (test/dash-mpd.test.ts's hostile lists took 10 s through it, 2026-11-29).
 */

import { attributeItems, playlistLines } from "../shared/hls-playlists.ts";

/** The most characters a playlist read for an MPD may have: the API's own limit on a stored playlist. */
export const MAX_DASH_PLAYLIST_CHARS = 4 * 1024 * 1024;

/** The longest segment an MPD lists: an EXTINF above this is not one of our segments. */
const MAX_SEGMENT_SECONDS = 600;

/** A tag's attributes by name, values unquoted; an item without `=` is left out. */
function tagAttributes(line: string): Map<string, string> {
  const colon = line.indexOf(":");
  const attributes = new Map<string, string>();
  if (colon < 0) return attributes;
  for (const item of attributeItems(line.slice(colon + 1))) {
    const eq = item.indexOf("=");
    if (eq <= 0) continue;
    const value = item.slice(eq + 1);
    const quoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"');
    attributes.set(item.slice(0, eq).trim(), quoted ? value.slice(1, -1) : value.trim());
  }
  return attributes;
}

/** A variant of a master (`#EXT-X-STREAM-INF` and its URI line). */
export interface MasterVariant {
  uri: string;
  bandwidth: number;
  width?: number;
  height?: number;
  frameRate?: number;
  /** Its `CODECS`, one item each: the video's and the audio's. */
  codecs: string[];
  /** The group of `AUDIO` renditions it plays with. */
  audioGroup?: string;
}

/** A rendition of a master (`#EXT-X-MEDIA`). */
export interface MasterRendition {
  type: string;
  groupId: string;
  name: string;
  language?: string;
  isDefault: boolean;
  uri?: string;
  characteristics?: string;
}

/** A master's variants and renditions, in the order it lists them. */
export interface MasterForDash {
  variants: MasterVariant[];
  renditions: MasterRendition[];
}

const positiveNumber = (value: string | undefined): number | undefined => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isFinite(n) && n > 0 ? n : undefined;
};

/** `RESOLUTION=640x360` as width and height; nothing when it is not two positive integers. */
function resolutionOf(value: string | undefined): { width?: number; height?: number } {
  const x = value?.indexOf("x") ?? -1;
  if (value === undefined || x < 0) return {};
  const width = positiveNumber(value.slice(0, x));
  const height = positiveNumber(value.slice(x + 1));
  return width && height && Number.isInteger(width) && Number.isInteger(height) ? { width, height } : {};
}

function variantOf(line: string, uri: string): MasterVariant | null {
  const attributes = tagAttributes(line);
  const bandwidth = positiveNumber(attributes.get("BANDWIDTH"));
  if (bandwidth === undefined) return null;
  const frameRate = positiveNumber(attributes.get("FRAME-RATE"));
  const audioGroup = attributes.get("AUDIO");
  return {
    uri,
    bandwidth: Math.round(bandwidth),
    ...resolutionOf(attributes.get("RESOLUTION")),
    ...(frameRate === undefined ? {} : { frameRate }),
    codecs: (attributes.get("CODECS") ?? "")
      .split(",")
      .map((c) => c.trim())
      .filter(Boolean),
    ...(audioGroup === undefined ? {} : { audioGroup }),
  };
}

function renditionOf(line: string): MasterRendition | null {
  const attributes = tagAttributes(line);
  const type = attributes.get("TYPE");
  const groupId = attributes.get("GROUP-ID");
  const name = attributes.get("NAME");
  if (!type || groupId === undefined || name === undefined) return null;
  const optional = (key: string, as: keyof MasterRendition) => {
    const value = attributes.get(key);
    return value === undefined ? {} : { [as]: value };
  };
  return {
    type,
    groupId,
    name,
    isDefault: attributes.get("DEFAULT") === "YES",
    ...optional("LANGUAGE", "language"),
    ...optional("URI", "uri"),
    ...optional("CHARACTERISTICS", "characteristics"),
  };
}

/** A master's variants and renditions; null when it is too long to be one of ours. */
export function readMaster(text: string): MasterForDash | null {
  if (text.length > MAX_DASH_PLAYLIST_CHARS) return null;
  const variants: MasterVariant[] = [];
  const renditions: MasterRendition[] = [];
  let pendingVariant: string | null = null;
  for (const line of playlistLines(text)) {
    if (line.startsWith("#EXT-X-STREAM-INF:")) pendingVariant = line;
    else if (line.startsWith("#EXT-X-MEDIA:")) {
      const rendition = renditionOf(line);
      if (rendition) renditions.push(rendition);
    } else if (pendingVariant !== null && line.trim() !== "" && !line.startsWith("#")) {
      const variant = variantOf(pendingVariant, line.trim());
      if (variant) variants.push(variant);
      pendingVariant = null;
    }
  }
  return { variants, renditions };
}

/** A media playlist as an MPD lists it: one init segment, then whole segments with their lengths. */
export interface MediaPlaylistForDash {
  /** The URI of its `#EXT-X-MAP` (fMP4); null for segments that carry their own headers (MPEG-TS). */
  initUri: string | null;
  segments: { uri: string; duration: number }[];
  /** Whether it has its `#EXT-X-ENDLIST`. */
  ended: boolean;
}

/** Why a media playlist cannot be listed in an MPD. */
export type UnlistablePlaylist = { problem: string };

/**
 * A media playlist's init segment and segments, or why an MPD cannot list it: too long, more than
 * `maxSegments`, a second `#EXT-X-MAP` or one after the first segment (a representation has one
 * init), byte ranges, encryption, a discontinuity, or a segment without a sane `#EXTINF`.
 */
export function readMediaPlaylist(text: string, maxSegments: number): MediaPlaylistForDash | UnlistablePlaylist {
  if (text.length > MAX_DASH_PLAYLIST_CHARS) return { problem: "a playlist is too long" };
  let initUri: string | null = null;
  const segments: MediaPlaylistForDash["segments"] = [];
  let duration: number | null = null;
  let ended = false;
  for (const line of playlistLines(text)) {
    if (line.startsWith("#EXTINF:")) {
      const comma = line.indexOf(",");
      const seconds = Number(line.slice("#EXTINF:".length, comma < 0 ? undefined : comma));
      if (!(Number.isFinite(seconds) && seconds > 0 && seconds <= MAX_SEGMENT_SECONDS)) {
        return { problem: "a segment has no usable length" };
      }
      duration = seconds;
    } else if (line.startsWith("#EXT-X-MAP:")) {
      const uri = tagAttributes(line).get("URI");
      if (initUri !== null || segments.length > 0 || !uri) return { problem: "a rung changes its init segment" };
      initUri = uri;
    } else if (line.startsWith("#EXT-X-BYTERANGE") || line.startsWith("#EXT-X-KEY")) {
      return { problem: "byte ranges and encryption are not listed in an MPD" };
    } else if (line.startsWith("#EXT-X-DISCONTINUITY") && !line.startsWith("#EXT-X-DISCONTINUITY-SEQUENCE")) {
      // The media's timestamps jump there (a live broadcast taken over): one period's timeline cannot follow.
      return { problem: "a rung has a discontinuity" };
    } else if (line.startsWith("#EXT-X-ENDLIST")) ended = true;
    else if (line.trim() !== "" && !line.startsWith("#")) {
      if (duration === null) return { problem: "a segment has no usable length" };
      if (segments.length >= maxSegments) return { problem: "too many segments for one MPD" };
      segments.push({ uri: line.trim(), duration });
      duration = null;
    }
  }
  return { initUri, segments, ended };
}
