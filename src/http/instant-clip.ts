/**
 * Instant clips: a video's published playlists, served over a time range of it without any encode.
 * A playback URL with `asset_start_time` and/or `asset_end_time` (seconds, as Mux names them) gets a
 * master whose child playlist URIs carry the range on, and rung playlists that list only the
 * segments overlapping the range, so the clip starts and ends on segment boundaries.
 */

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
  const query = rangeQuery(range);
  const withRange = (uri: string) =>
    /^[a-z][a-z0-9+.-]*:/i.test(uri) || !uri.split(/[?#]/)[0]!.endsWith(".m3u8")
      ? uri
      : `${uri}${uri.includes("?") ? "&" : "?"}${query}`;
  return text
    .split("\n")
    .map((line) => {
      if (line.startsWith("#")) return line.replace(/URI="([^"]*)"/g, (_all, uri: string) => `URI="${withRange(uri)}"`);
      return line.trim() ? withRange(line.trim()) : line;
    })
    .join("\n");
}

/**
 * The first relative child playlist URI of a master playlist that holds media (a variant or the
 * audio rendition, never a subtitle track, whose playlist is made by the API and not stored), or null.
 */
export function firstChildPlaylistUri(master: string): string | null {
  for (const line of master.split(/\r?\n/)) {
    if (line.startsWith("#EXT-X-MEDIA:") && line.includes("TYPE=SUBTITLES")) continue;
    const uri = line.startsWith("#") ? /URI="([^"]*)"/.exec(line)?.[1] : line.trim();
    if (!uri || /^[a-z][a-z0-9+.-]*:/i.test(uri)) continue;
    if (uri.split(/[?#]/)[0]!.endsWith(".m3u8")) return uri;
  }
  return null;
}

/** How long a finished media playlist lasts (the sum of its EXTINF), or null while it still grows. */
export function finishedPlaylistSeconds(text: string): number | null {
  if (!/^#EXT-X-ENDLIST/m.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/^#EXTINF:([\d.]+)/gm)) total += Number(m[1]);
  return total;
}

/** A clip shorter than this at the video's end is an empty one (the last segment can end a frame late). */
const MIN_CLIP_SECONDS = 0.1;

/** Why a finished playlist of `seconds` cannot be clipped to `range`, or null when it can. */
export function rangeBeyondEnd(range: ClipRange, seconds: number): string | null {
  if (range.start + MIN_CLIP_SECONDS <= seconds) return null;
  return `${CLIP_START_PARAM} (${range.start}) is not before the video's end (${seconds.toFixed(3)} s)`;
}

/**
 * A rung playlist that lists only the segments overlapping `range`, their tags with them: the
 * header is kept, `#EXT-X-MEDIA-SEQUENCE` becomes the first listed segment's number, and the list
 * ends once a listed segment reaches the range's end (or the video's). A playlist still growing
 * that has not reached the range yet lists no segment and no end: the player asks again.
 */
export function clipMediaPlaylist(text: string, range: ClipRange): { text: string } | { problem: string } {
  const lines = text.split(/\r?\n/);
  const firstTag = lines.findIndex((l) => l.startsWith("#EXTINF:"));
  const header = (firstTag < 0 ? lines : lines.slice(0, firstTag)).filter(
    (l) => l.trim() && !l.startsWith("#EXT-X-ENDLIST"),
  );
  const sequenceLine = header.findIndex((l) => l.startsWith("#EXT-X-MEDIA-SEQUENCE:"));
  const firstSequence = sequenceLine < 0 ? 0 : Number(header[sequenceLine]!.split(":")[1]) || 0;
  const finished = /^#EXT-X-ENDLIST/m.test(text);

  const listed: string[] = [];
  let firstListed: number | null = null;
  let reachedEnd = false;
  let pending: string[] = [];
  let at = 0;
  let index = 0;
  for (const line of firstTag < 0 ? [] : lines.slice(firstTag)) {
    if (!line.trim() || line.startsWith("#EXT-X-ENDLIST")) continue;
    if (line.startsWith("#")) {
      pending.push(line);
      continue;
    }
    const extinf = pending.find((l) => l.startsWith("#EXTINF:"));
    const duration = extinf ? Number(/^#EXTINF:([\d.]+)/.exec(extinf)?.[1]) : Number.NaN;
    if (!(duration >= 0)) return { problem: "the playlist cannot be clipped" };
    const from = at;
    at += duration;
    const overlaps = at - range.start > EDGE_EPSILON && (range.end === null || range.end - from > EDGE_EPSILON);
    if (overlaps && !reachedEnd) {
      firstListed ??= index;
      listed.push(...pending, line);
      if (range.end !== null && at + EDGE_EPSILON >= range.end) reachedEnd = true;
    }
    pending = [];
    index++;
  }
  if (finished) {
    const beyond = rangeBeyondEnd(range, at);
    if (beyond) return { problem: beyond };
  }
  const sequence = `#EXT-X-MEDIA-SEQUENCE:${firstSequence + (firstListed ?? index)}`;
  if (sequenceLine < 0) header.push(sequence);
  else header[sequenceLine] = sequence;
  const ends = reachedEnd || finished;
  return { text: `${[...header, ...listed, ...(ends ? ["#EXT-X-ENDLIST"] : [])].join("\n")}\n` };
}
