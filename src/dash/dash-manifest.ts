/**
 * A video's MPEG-DASH MPD, made per request from its HLS playlists as the HLS route serves them
 * (`DashReads`): the master with its per-request renditions (caption tracks, and any audio track
 * the master lists in its audio group), each rung's media playlist with its URIs linked for this
 * request (signed for a bucket's objects, the playback token on the API's). Nothing is encoded or
 * stored for DASH: the MPD names the fMP4 (CMAF) segments HLS plays. MPEG-TS segments cannot be
 * named (DASH needs ISO-BMFF), nor a rung still growing (the MPD is static).
 */

import { AUDIO_BITRATE } from "../protocol/ladder-profiles.ts";
import { timelineZeroSeconds } from "../protocol/media-timeline.ts";
import { hasUriScheme, resolvePlaylistUri } from "../storage/playlists.ts";
import { type MasterRendition, type MasterVariant, readMaster, readMediaPlaylist } from "./hls-reading.ts";
import {
  type DashAudioRepresentation,
  type DashAudioSet,
  type DashTextTrack,
  type DashVideoRepresentation,
  mpdDocument,
} from "./mpd.ts";

/**
 * The most segments one MPD lists, every representation's together: about 4 MB of MPD, a
 * two-hour video's 6-rung ladder with its audio at 2 s segments. A longer ladder plays as HLS.
 */
export const MAX_DASH_SEGMENTS = 50_000;

/** How the MPD reads what the HLS route would serve. */
export interface DashReads {
  /** A playlist's text as the HLS route makes it, before its URIs are linked; null when there is none. */
  playlistText(key: string): Promise<string | null>;
  /** `text`, the playlist at `key`, with its URIs as this request must name them (signed, or with the token). */
  linked(text: string, key: string): Promise<string>;
}

/**
 * Why a video has no MPD: no such media, MPEG-TS segments, a rung still growing, or a playlist an MPD
 * cannot list (too many segments, byte ranges, encryption, a segment without a length).
 */
export type DashRefusal = {
  refused: "not found" | "not fragmented" | "not finished" | "unlistable";
  problem: string;
};

const refusal = (refused: DashRefusal["refused"], problem: string): DashRefusal => ({ refused, problem });

const VIDEO_CODEC_PREFIXES = ["avc1.", "avc3.", "hvc1.", "hev1.", "av01.", "vp09.", "dvh1.", "dvhe."];
const isVideoCodec = (codec: string): boolean => VIDEO_CODEC_PREFIXES.some((p) => codec.startsWith(p));

/** The folder of a URI, with its `/`, as a `BaseURL` (its query left out); "" for a bare name. */
function folderOf(uri: string): string {
  const end = [uri.indexOf("?"), uri.indexOf("#")].filter((i) => i >= 0);
  const path = end.length ? uri.slice(0, Math.min(...end)) : uri;
  return path.slice(0, path.lastIndexOf("/") + 1);
}

/** A representation id from the rendition's folder (`360p`): no whitespace, unique within the MPD. */
function representationId(uri: string, taken: Set<string>): string {
  const folder = folderOf(uri).slice(0, -1);
  const base = (folder.slice(folder.lastIndexOf("/") + 1) || "rendition").replace(/[^A-Za-z0-9._-]/g, "_");
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  taken.add(id);
  return id;
}

/** What a request's MPD is made from, and how many segments it may still list. */
interface DashBuild {
  masterKey: string;
  reads: DashReads;
  segmentsLeft: number;
  ids: Set<string>;
}

/** A rendition's init and segments, relative to its playlist's folder (its `BaseURL`). */
interface RenditionMedia {
  baseUrl: string;
  initialization: string;
  segments: { uri: string; duration: number }[];
}

/** The media playlist the master names at `uri`, as an MPD lists it, or why it cannot be. */
async function renditionMedia(build: DashBuild, uri: string): Promise<RenditionMedia | DashRefusal> {
  const key = resolvePlaylistUri(build.masterKey, uri);
  const stored = key === null ? null : await build.reads.playlistText(key);
  if (key === null || stored === null) return refusal("not found", "a rendition's playlist is missing");
  const plain = readMediaPlaylist(stored, build.segmentsLeft);
  if ("problem" in plain) return refusal("unlistable", plain.problem);
  if (plain.initUri === null) {
    return refusal("not fragmented", "DASH needs fMP4 (CMAF) segments; this video has MPEG-TS segments");
  }
  if (!plain.ended) return refusal("not finished", "the video is still being encoded: its MPD comes once it is READY");
  const linked = readMediaPlaylist(await build.reads.linked(stored, key), build.segmentsLeft);
  if ("problem" in linked || linked.initUri === null) return refusal("not found", "a rendition's playlist changed");
  build.segmentsLeft -= linked.segments.length;
  return { baseUrl: folderOf(uri), initialization: linked.initUri, segments: linked.segments };
}

async function videoRepresentations(
  build: DashBuild,
  variants: readonly MasterVariant[],
): Promise<DashVideoRepresentation[] | DashRefusal> {
  const representations: DashVideoRepresentation[] = [];
  for (const variant of variants) {
    const media = await renditionMedia(build, variant.uri);
    if ("refused" in media) return media;
    if (variant.width === undefined || variant.height === undefined) return refusal("not found", "a rung has no size");
    const audio = variant.audioGroup === undefined ? 0 : AUDIO_BITRATE;
    representations.push({
      ...media,
      id: representationId(variant.uri, build.ids),
      // A variant's BANDWIDTH counts the audio it plays with; DASH counts each representation alone.
      bandwidth: Math.max(1, variant.bandwidth - audio),
      codecs: variant.codecs.filter(isVideoCodec).join(","),
      width: variant.width,
      height: variant.height,
      ...(variant.frameRate === undefined ? {} : { frameRate: variant.frameRate }),
    });
  }
  return representations;
}

/**
 * An audio set per rendition of the group the variants play with: the ladder's own audio (`NAME="default"`)
 * and any audio track the master lists beside it. A rendition that cannot be listed (a track still
 * encoding, say) is left out, unless none can: then the first one's refusal is the MPD's.
 */
async function audioSets(
  build: DashBuild,
  variants: readonly MasterVariant[],
  renditions: readonly MasterRendition[],
): Promise<DashAudioSet[] | DashRefusal> {
  const group = variants.find((v) => v.audioGroup !== undefined);
  if (group === undefined) return [];
  const codecs = group.codecs.filter((c) => !isVideoCodec(c)).join(",") || "mp4a.40.2";
  const sets: DashAudioSet[] = [];
  let firstRefusal: DashRefusal | null = null;
  for (const rendition of renditions) {
    if (rendition.type !== "AUDIO" || rendition.groupId !== group.audioGroup || rendition.uri === undefined) continue;
    const media = await renditionMedia(build, rendition.uri);
    if ("refused" in media) {
      firstRefusal ??= media;
      continue;
    }
    const representation: DashAudioRepresentation = {
      ...media,
      id: representationId(rendition.uri, build.ids),
      bandwidth: AUDIO_BITRATE,
      codecs,
    };
    sets.push({
      name: rendition.name,
      ...(rendition.language === undefined ? {} : { language: rendition.language }),
      isDefault: rendition.isDefault,
      representations: [representation],
    });
  }
  return sets.length === 0 && firstRefusal ? firstRefusal : sets;
}

/** An audio-only video's variants, each an AAC rung, as one audio set. */
async function audioOnlySet(build: DashBuild, variants: readonly MasterVariant[]): Promise<DashAudioSet | DashRefusal> {
  const representations: DashAudioRepresentation[] = [];
  for (const variant of variants) {
    const media = await renditionMedia(build, variant.uri);
    if ("refused" in media) return media;
    const id = representationId(variant.uri, build.ids);
    representations.push({ ...media, id, bandwidth: variant.bandwidth, codecs: variant.codecs.join(",") });
  }
  return { name: "default", isDefault: true, representations };
}

const HEARING_IMPAIRED = "public.accessibility.transcribes-spoken-dialog";

/** The master's subtitle renditions as WebVTT sidecars: each playlist's one file; one that cannot be read is left out. */
async function textTracks(build: DashBuild, renditions: readonly MasterRendition[]): Promise<DashTextTrack[]> {
  const tracks: DashTextTrack[] = [];
  for (const rendition of renditions) {
    if (rendition.type !== "SUBTITLES" || rendition.uri === undefined) continue;
    const key = resolvePlaylistUri(build.masterKey, rendition.uri);
    const stored = key === null ? null : await build.reads.playlistText(key);
    if (key === null || stored === null) continue;
    const playlist = readMediaPlaylist(await build.reads.linked(stored, key), 1);
    const file = "problem" in playlist ? undefined : playlist.segments[0]?.uri;
    if (file === undefined) continue;
    tracks.push({
      id: `text-${tracks.length}`,
      name: rendition.name,
      language: rendition.language ?? "und",
      isDefault: rendition.isDefault,
      hearingImpaired: rendition.characteristics?.includes(HEARING_IMPAIRED) ?? false,
      url: hasUriScheme(file) || file.startsWith("/") ? file : `${folderOf(rendition.uri)}${file}`,
    });
  }
  return tracks;
}

/**
 * The MPD of the video whose master is at `masterKey`, its URLs relative to that master's folder
 * (the MPD is served beside it), or why there is none.
 */
export async function dashManifest(masterKey: string, reads: DashReads): Promise<{ mpd: string } | DashRefusal> {
  const masterText = await reads.playlistText(masterKey);
  const master = masterText === null ? null : readMaster(masterText);
  if (master === null || master.variants.length === 0) return refusal("not found", "the video has no playlists");
  const build: DashBuild = { masterKey, reads, segmentsLeft: MAX_DASH_SEGMENTS, ids: new Set() };
  const videoVariants = master.variants.filter((v) => v.codecs.some(isVideoCodec));
  const video = await videoRepresentations(build, videoVariants);
  if ("refused" in video) return video;
  const audio =
    videoVariants.length === 0
      ? await audioOnlySet(build, master.variants).then((set) => ("refused" in set ? set : [set]))
      : await audioSets(build, videoVariants, master.renditions);
  if ("refused" in audio) return audio;
  const text = await textTracks(build, master.renditions);
  return { mpd: mpdDocument({ timelineStart: timelineZeroSeconds("FMP4"), video, audio, text }) };
}
