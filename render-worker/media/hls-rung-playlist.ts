import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { RUNG_INIT_SEGMENT, RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { growingPlaylistCacheControl, mediaPlaylist, parsePlaylist } from "../../src/shared/hls-playlists.ts";
import { CACHE_FINAL, PLAYLIST_TYPE, type PublishTarget, type RungState, SNAPSHOT_DIR } from "./hls-rung-state.ts";
import { listCutShort, publishSegment, uploadOfRung } from "./hls-segment-upload.ts";

/** How a rung's playlist is published (HlsPublisherOptions says what each means). */
export interface RungPlaylistOptions {
  openRungs: ReadonlySet<string>;
  segmentsOnly: boolean;
  discontinuityAfterKept: boolean;
}

/** The rung's playlist as storage serves it now (another run of the job may have published it). */
async function publishedPlaylist(
  { storage }: PublishTarget,
  playlistKey: string,
): Promise<{ uris: Set<string>; endList: boolean } | null> {
  const text = await storage.readText(playlistKey);
  if (text === null) return null;
  const manifest = parsePlaylist(text);
  return { uris: new Set(manifest.segments.map((s) => s.uri)), endList: manifest.endList === true };
}

/**
 * One rung's part of a pass: reads the list ffmpeg keeps replacing, uploads the segments it lists
 * that are not uploaded yet, then a playlist of them (unless storage lists more already).
 */
export async function publishRung(
  target: PublishTarget,
  options: RungPlaylistOptions,
  state: RungState,
  final: boolean,
): Promise<void> {
  const { workDir, hls } = target;
  const name = state.rung.name;
  const local = path.join(workDir, name, RUNG_PLAYLIST);
  let text: string;
  try {
    text = await readFile(local, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && !final) return;
    throw err;
  }
  const { segments, endList } = parsePlaylist(text);
  // ffmpeg writes its list whole and renames it into place, so a list that is not a playlist, or
  // lists fewer segments than before, is a write that failed (a full work dir), which ffmpeg does
  // not report: the publication would stall, silently, until there is room again.
  if (!text.startsWith("#EXTM3U") || segments.length < state.ffmpegListed)
    throw listCutShort(
      name,
      `at ${Buffer.byteLength(text)} bytes, ${segments.length} of ${state.ffmpegListed} segments`,
    );
  state.ffmpegListed = segments.length;
  if (final && !endList) throw new Error(`The ${name} playlist has no #EXT-X-ENDLIST after ffmpeg finished`);
  const listed = state.kept.length + segments.length;
  const fresh = segments.filter((s) => !state.uploaded.has(s.uri));
  if (!final && fresh.length === 0 && listed <= Math.max(state.publishedSegments, state.aheadOfUs)) return;

  const playlistKey = hls.playlistKey(name);
  const published = await publishedPlaylist(target, playlistKey);
  for (const segment of fresh) {
    if (!/^[\w.-]+$/.test(segment.uri)) {
      throw new Error(`Unexpected segment URI ${JSON.stringify(segment.uri)} in the ${name} playlist`);
    }
    // A segment a published playlist lists may have been played: it stays as it is, even when
    // this run (a resumed or duplicate one) encoded other bytes for it.
    if (!published?.uris.has(segment.uri)) await publishSegment(target, state, segment.uri);
    state.uploaded.add(segment.uri);
    state.uploadedSeconds += segment.duration;
  }
  // The file ffmpeg keeps replacing may already list more than was uploaded; what was read is listed.
  const discontinuity = options.discontinuityAfterKept && state.kept.length > 0;
  const listedSegments = [
    ...state.kept,
    ...segments.map((s, i) => ({
      uri: s.uri,
      duration: s.duration,
      ...(discontinuity && i === 0 ? { discontinuity: true } : {}),
    })),
  ];
  if (options.segmentsOnly) {
    state.listed = listedSegments;
    state.publishedSegments = listed;
    return;
  }

  // A published playlist never shrinks and never loses its end: this run's playlist replaces
  // it only once it lists as much, and a complete one only with its own complete one. An open
  // rung's playlist is never ended here: once the API has listed later chunks after it, it stays.
  const ends = final && !options.openRungs.has(name);
  const behind = published !== null && (published.uris.size > listed || (published.endList && !ends));
  if (behind && ends) {
    throw new Error(`The ${name} playlist this run finished lists fewer segments than the published one`);
  }
  if (behind) {
    state.listed = listedSegments;
    state.aheadOfUs = published.endList ? Number.MAX_SAFE_INTEGER : published.uris.size;
    // Finished: what storage lists already covers this run's segments.
    if (final) state.publishedSegments = listed;
    return;
  }
  if (final || listed > state.publishedSegments) {
    const snapshot = path.join(workDir, SNAPSHOT_DIR, `${name}.m3u8`);
    const cacheControl = ends ? CACHE_FINAL : growingPlaylistCacheControl(target.targetDuration, "public");
    const playlist = mediaPlaylist(listedSegments, {
      targetDuration: target.targetDuration,
      endList: ends,
      ...(target.fragmented ? { map: RUNG_INIT_SEGMENT } : {}),
    });
    await writeFile(snapshot, playlist);
    await uploadOfRung(target, name, playlistKey, snapshot, { contentType: PLAYLIST_TYPE, cacheControl });
    state.publishedSegments = listed;
  }
  // Listed once storage's playlist lists it: what a run taking over continues after (a live feed
  // lets go of what is before it), not what this run uploaded before a playlist write failed.
  state.listed = listedSegments;
}
