/**
 * A static (VOD) MPEG-DASH MPD (ISO/IEC 23009-1) over segments already published for HLS: each
 * representation a `SegmentList` of the segments' own URLs with a `SegmentTimeline` of their
 * lengths, so nothing is encoded or stored again. Pure: the caller reads the playlists
 * (`dash-manifest.ts`); everything written here is XML-escaped, tenants' caption names included.
 */

/** Ticks a second of every `SegmentTimeline`: MPEG's 90 kHz clock, exact for common frame rates. */
const DASH_TIMESCALE = 90_000;

/** A segment as a representation lists it: its URL as the player fetches it, and its length. */
interface DashSegment {
  uri: string;
  duration: number;
}

/** One rendition's media: its init segment and its segments, URLs relative to `baseUrl`. */
interface DashMedia {
  /** Unique within the MPD, without whitespace. */
  id: string;
  bandwidth: number;
  codecs: string;
  /** Where relative URLs are resolved from, relative to the MPD; "" for the MPD's own folder. */
  baseUrl: string;
  initialization: string;
  segments: DashSegment[];
}

export interface DashVideoRepresentation extends DashMedia {
  width: number;
  height: number;
  frameRate?: number;
}

export type DashAudioRepresentation = DashMedia;

/** One audio adaptation set: a language's (or the ladder's own) audio, in one or more bit rates. */
export interface DashAudioSet {
  name: string;
  language?: string;
  isDefault: boolean;
  representations: DashAudioRepresentation[];
}

/** A WebVTT file beside the media (a sidecar text adaptation set). */
export interface DashTextTrack {
  id: string;
  name: string;
  language: string;
  isDefault: boolean;
  /** For the deaf and hard of hearing: role `caption` rather than `subtitle`. */
  hearingImpaired: boolean;
  /** The file's URL, relative to the MPD or absolute. */
  url: string;
}

export interface DashPresentation {
  /** The media time, in seconds, at which presentation time 0 sits in every segment (`presentationTimeOffset`). */
  timelineStart: number;
  video: DashVideoRepresentation[];
  audio: DashAudioSet[];
  text: DashTextTrack[];
}

const XML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/**
 * `text` safe in XML content and quoted attributes: the five markup characters as entities, and
 * the characters XML 1.0 does not allow (controls, lone surrogates, U+FFFE/U+FFFF) dropped.
 */
export function xmlEscape(text: string): string {
  let out = "";
  for (const c of text) {
    const code = c.codePointAt(0)!;
    const allowed =
      code === 0x9 ||
      code === 0xa ||
      code === 0xd ||
      (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) ||
      code >= 0x10000;
    if (allowed) out += XML_ESCAPES[c] ?? c;
  }
  return out;
}

/** `name="value"` pairs, each value escaped; undefined values left out. */
const attrs = (pairs: Record<string, string | number | undefined>): string =>
  Object.entries(pairs)
    .filter((pair): pair is [string, string | number] => pair[1] !== undefined)
    .map(([name, value]) => ` ${name}="${xmlEscape(String(value))}"`)
    .join("");

/** Seconds as an ISO 8601 duration (`PT12.345S`), as `mediaPresentationDuration` takes it. */
function isoDuration(seconds: number): string {
  return `PT${Math.max(0, Math.round(seconds * 1000) / 1000)}S`;
}

/** A frame rate as DASH writes it: an integer, or a fraction (`30000/1001`) for the NTSC rates. */
export function dashFrameRate(fps: number): string {
  if (Math.abs(fps - Math.round(fps)) < 0.001) return String(Math.round(fps));
  const ntsc = Math.round((fps * 1001) / 1000);
  if (Math.abs((ntsc * 1000) / 1001 - fps) < 0.002) return `${ntsc * 1000}/1001`;
  return `${Math.round(fps * 1000)}/1000`;
}

/**
 * A `SegmentTimeline` of `segments` starting at `start` ticks: each segment's start rounded from
 * the sum of the lengths before it (so rounding never drifts), runs of equal lengths as one `S` with `r`.
 */
function segmentTimeline(segments: readonly DashSegment[], start: number): string {
  const entries: { d: number; r: number }[] = [];
  let seconds = 0;
  for (const segment of segments) {
    const from = Math.round((start + seconds) * DASH_TIMESCALE);
    seconds += segment.duration;
    const d = Math.round((start + seconds) * DASH_TIMESCALE) - from;
    const last = entries.at(-1);
    if (last && last.d === d) last.r++;
    else entries.push({ d, r: 0 });
  }
  const lines = entries.map(
    (e, i) =>
      `<S${attrs({ t: i === 0 ? Math.round(start * DASH_TIMESCALE) : undefined, d: e.d, r: e.r || undefined })}/>`,
  );
  return `<SegmentTimeline>${lines.join("")}</SegmentTimeline>`;
}

function segmentList(media: DashMedia, timelineStart: number): string[] {
  const offset = Math.round(timelineStart * DASH_TIMESCALE);
  return [
    `<SegmentList${attrs({ timescale: DASH_TIMESCALE, presentationTimeOffset: offset })}>`,
    `<Initialization${attrs({ sourceURL: media.initialization })}/>`,
    segmentTimeline(media.segments, timelineStart),
    ...media.segments.map((s) => `<SegmentURL${attrs({ media: s.uri })}/>`),
    "</SegmentList>",
  ];
}

const baseUrl = (url: string): string[] => (url === "" ? [] : [`<BaseURL>${xmlEscape(url)}</BaseURL>`]);

function videoSet(representations: readonly DashVideoRepresentation[], timelineStart: number): string[] {
  if (representations.length === 0) return [];
  const lines = [
    `<AdaptationSet${attrs({
      id: "video",
      contentType: "video",
      mimeType: "video/mp4",
      segmentAlignment: "true",
      startWithSAP: 1,
      maxWidth: Math.max(...representations.map((r) => r.width)),
      maxHeight: Math.max(...representations.map((r) => r.height)),
    })}>`,
  ];
  for (const r of representations) {
    lines.push(
      `<Representation${attrs({
        id: r.id,
        bandwidth: r.bandwidth,
        codecs: r.codecs,
        width: r.width,
        height: r.height,
        frameRate: r.frameRate === undefined ? undefined : dashFrameRate(r.frameRate),
      })}>`,
      ...baseUrl(r.baseUrl),
      ...segmentList(r, timelineStart),
      "</Representation>",
    );
  }
  lines.push("</AdaptationSet>");
  return lines;
}

const ROLE_SCHEME = "urn:mpeg:dash:role:2011";

function audioSet(set: DashAudioSet, index: number, timelineStart: number): string[] {
  const lines = [
    `<AdaptationSet${attrs({
      id: `audio-${index}`,
      contentType: "audio",
      mimeType: "audio/mp4",
      lang: set.language,
      segmentAlignment: "true",
      startWithSAP: 1,
    })}>`,
    `<Label>${xmlEscape(set.name)}</Label>`,
    `<Role${attrs({ schemeIdUri: ROLE_SCHEME, value: set.isDefault ? "main" : "alternate" })}/>`,
  ];
  for (const r of set.representations) {
    lines.push(
      `<Representation${attrs({ id: r.id, bandwidth: r.bandwidth, codecs: r.codecs })}>`,
      ...baseUrl(r.baseUrl),
      ...segmentList(r, timelineStart),
      "</Representation>",
    );
  }
  lines.push("</AdaptationSet>");
  return lines;
}

/** A text track's adaptation set: one WebVTT file, no segments. */
function textSet(track: DashTextTrack, index: number): string[] {
  return [
    `<AdaptationSet${attrs({ id: `text-${index}`, contentType: "text", mimeType: "text/vtt", lang: track.language })}>`,
    `<Label>${xmlEscape(track.name)}</Label>`,
    `<Role${attrs({ schemeIdUri: ROLE_SCHEME, value: track.hearingImpaired ? "caption" : "subtitle" })}/>`,
    ...(track.isDefault ? [`<Role${attrs({ schemeIdUri: ROLE_SCHEME, value: "main" })}/>`] : []),
    `<Representation${attrs({ id: track.id, bandwidth: 256 })}>`,
    `<BaseURL>${xmlEscape(track.url)}</BaseURL>`,
    "</Representation>",
    "</AdaptationSet>",
  ];
}

/** The presentation's length: its longest representation's segments. */
function presentationSeconds(p: DashPresentation): number {
  const media: DashMedia[] = [...p.video, ...p.audio.flatMap((set) => set.representations)];
  return Math.max(0, ...media.map((m) => m.segments.reduce((sum, s) => sum + s.duration, 0)));
}

/** The MPD of `p`: one period, a video adaptation set, one per audio set and one per text track. */
export function mpdDocument(p: DashPresentation): string {
  const seconds = presentationSeconds(p);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD${attrs({
      xmlns: "urn:mpeg:dash:schema:mpd:2011",
      profiles: "urn:mpeg:dash:profile:isoff-main:2011",
      type: "static",
      mediaPresentationDuration: isoDuration(seconds),
      minBufferTime: "PT2S",
    })}>`,
    `<Period${attrs({ id: "0", start: "PT0S" })}>`,
    ...videoSet(p.video, p.timelineStart),
    ...p.audio.flatMap((set, i) => audioSet(set, i, p.timelineStart)),
    ...p.text.flatMap((track, i) => textSet(track, i)),
    "</Period>",
    "</MPD>",
  ];
  return `${lines.join("\n")}\n`;
}
