import { type FSWatcher, mkdirSync, watch } from "node:fs";
import { mkdir, readFile, rm, stat, statfs, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, PublishedSegments, Rung, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import { hlsLayout, RUNG_INIT_SEGMENT, RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { publishedFraction } from "../progress/job-progress.ts";
import type { WorkerStorage } from "../storage/types.ts";
import { ObjectExistsError } from "../storage/write-once.ts";
import { log } from "../log.ts";
import { splitFragmentedMp4 } from "./fragmented-mp4.ts";
import { sameSegmentCut } from "./segment-match.ts";
import {
  growingPlaylistCacheControl,
  mediaPlaylist,
  publishedRenditionBitRates,
  renditionBitRates,
  type SegmentBitRates,
} from "../../src/shared/media-playlist.ts";
import { masterPlaylist, parsePlaylist } from "./playlists.ts";
import type { KeptSegment } from "./playlists.ts";

const PLAYLIST_TYPE = "application/vnd.apple.mpegurl";
const SEGMENT_TYPE = "video/mp2t";
const FMP4_SEGMENT_TYPE = "video/iso.segment";
const FMP4_INIT_TYPE = "video/mp4";
const CACHE_IMMUTABLE = "public, max-age=31536000, immutable";
const CACHE_FINAL = "public, max-age=3600";
/** An MPEG-TS file is whole packets of this size; a segment that is not was cut short. */
const TS_PACKET_BYTES = 188;
/** Below this much free space the work dir counts as full. */
const WORK_DIR_MIN_FREE_BYTES = 1024 * 1024;
/**
 * A segment ffmpeg could not write whole is the disk's fault below this much free space, or below
 * `CUT_SEGMENT_MIN_FREE_ROUNDS` of the ladder's segments where that is more: between ffmpeg's failed
 * write and the publisher's look, other jobs on the disk free megabytes (the chaos run found 1 MiB).
 */
const CUT_SEGMENT_MIN_FREE_BYTES = 64 * 1024 * 1024;
const CUT_SEGMENT_MIN_FREE_ROUNDS = 8;
/** Rung names match `^[a-z0-9]+$`, so this directory in the work dir is never a rung's. */
const SNAPSHOT_DIR = ".publish";
/** How often the work dir is looked at when no change was seen: a backstop for a missed file event. */
const BACKSTOP_INTERVAL_MS = 1000;

export interface HlsPublisherOptions {
  storage: WorkerStorage;
  /** The directory ffmpeg writes `{rung}/index.m3u8` and its segments into. */
  workDir: string;
  /** Storage prefix of the video; HLS goes under `{outputPrefix}/hls/`. */
  outputPrefix: string;
  /** The rungs the master playlist lists (those of `rungs` that fail to publish are left out). */
  ladder: Rung[];
  /** The rungs ffmpeg writes and this publisher publishes; default the whole ladder (retryVariant: some). */
  rungs?: Rung[];
  /** Per rung, the segments an earlier run published that this run keeps (a resumed run). */
  kept?: Map<string, KeptSegment[]>;
  /**
   * This run's segments follow the kept ones as another encode (a live broadcast taken over): the
   * first is listed after `#EXT-X-DISCONTINUITY`.
   */
  discontinuityAfterKept?: boolean;
  probe: ProbeResult;
  /** What ffmpeg writes: MPEG-TS segments (default), or fragmented MP4 ones, published as init + media. */
  segmentFormat?: SegmentFormat;
  /**
   * Every rung playlist's `#EXT-X-TARGETDURATION`, the same in every version published
   * (`targetDuration` of segments.ts); a segment that rounds to more raises it.
   */
  targetDuration: number;
  /**
   * How often to look for new segments when no file event came (a pass also runs as soon as ffmpeg
   * replaces a rung's list); default 1 s.
   */
  intervalMs?: number;
  /**
   * Rungs whose playlists this run leaves open when ffmpeg finishes (no `#EXT-X-ENDLIST`): the first
   * chunk of a split encode, whose later segments other runs encode and the API lists. A published
   * playlist that lists more than this run's is left as it is.
   */
  openRungs?: readonly string[];
  /**
   * Publishes the rungs' segments (and fMP4 init segments) only: no playlist and no master. A chunk
   * of a split encode, whose segments the API lists; the write-once rules are a full publication's.
   */
  segmentsOnly?: boolean;
  /** The media seconds a rung's progress counts against (a chunk's length); default the probe's duration. */
  progressSeconds?: (rung: Rung) => number;
  /** Called once, when the master playlist and a first segment of every rung are published. */
  onPlayable?: (masterKey: string) => Promise<void>;
  /** Called when a publishing pass fails while ffmpeg runs; the publisher stops then. */
  onError?: (err: unknown) => void;
}

/** One rung's publishing state. */
interface VariantPublication {
  name: string;
  playlistKey: string;
  /** Published media time / source duration, 0..1. */
  progress: number;
  segmentCount: number;
  /** Media seconds of the rung in storage: this run's segments and those it kept. */
  publishedSeconds: number;
  /** Set when storage refused this rung's files: the rung failed alone and the master leaves it out. */
  error?: string;
  /** From finish(): what the rung's published segments carry, where the final master measured it. */
  bitRates?: SegmentBitRates;
}

/**
 * Storage refused one of a rung's files for a reason of that file (not a full disk or an outage,
 * which are StorageUnavailableError and fail the attempt); the other rungs go on.
 */
class RungPublishError extends Error {
  readonly rung: string;
  constructor(rung: string, cause: unknown) {
    super(`Publishing the ${rung} rung failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "RungPublishError";
    this.rung = rung;
  }
}

export interface HlsPublisher {
  readonly masterKey: string;
  /** Starts publishing segments as ffmpeg closes them: on every change of a rung's list, and on a backstop timer. */
  start(): void;
  variants(): VariantPublication[];
  /**
   * Each rung's segments this run published or kept, in order: what its playlist lists (or would),
   * with the bytes storage holds for those this run uploaded or found uploaded.
   */
  segments(): PublishedSegments[];
  /** What each rung carries whose every listed segment's bytes this run knows (`segmentBitRates`). */
  bitRates(): Map<string, SegmentBitRates>;
  /**
   * After ffmpeg exited successfully: publishes what is left and the final playlists (ended, but
   * for `openRungs`), and the master with what the rungs carry; resolves with each rung's
   * publication, its `bitRates` where the master states them.
   */
  finish(): Promise<VariantPublication[]>;
  /** After a failure or cancellation: stops the timer and waits for the pass in flight. */
  stop(): Promise<void>;
}

interface RungState {
  rung: Rung;
  kept: KeptSegment[];
  uploaded: Set<string>;
  uploadedSeconds: number;
  /** Segments listed in the last playlist uploaded; -1 before the first. */
  publishedSegments: number;
  /**
   * What the playlist in storage lists when it is ahead of this run (another run's): this run
   * publishes only past it.
   */
  aheadOfUs: number;
  /** fMP4: the rung's init segment, once this run has published it. */
  init: Buffer | null;
  /** The segments published or kept so far, in order. */
  listed: KeptSegment[];
  /**
   * How many bytes storage holds for each segment this run uploaded or found uploaded by an earlier
   * run (not those kept from a published playlist): what the master's measured rates count.
   */
  sizes: Map<string, number>;
  failure?: RungPublishError;
}

/**
 * Publishes an HLS ladder while ffmpeg writes it. A pass runs whenever ffmpeg replaces a rung's
 * list (a file event; a slow timer is the backstop) and reads every rung's list, uploads the
 * segments it lists that are not uploaded yet (listed means written: ffmpeg renames the list into
 * place after the segment), then uploads a playlist of them, so a published playlist never names
 * an unpublished segment. Once every rung has published a segment, the master playlist follows.
 * A rung whose files storage refuses fails alone: it is published no further and the master
 * leaves it out, unless no video rung is left, which fails the whole publication. A full,
 * failing or unreachable storage (or work dir) fails the whole publication instead, so the
 * attempt is retried rather than ending with rungs missing.
 */
export function createHlsPublisher(opts: HlsPublisherOptions): HlsPublisher {
  const { storage, workDir, ladder } = opts;
  const hls = hlsLayout(opts.outputPrefix);
  const masterKey = hls.masterKey;
  const fragmented = opts.segmentFormat === "FMP4";
  const openRungs = new Set(opts.openRungs ?? []);
  const states: RungState[] = (opts.rungs ?? ladder).map((rung) => {
    const kept = opts.kept?.get(rung.name) ?? [];
    return {
      rung,
      kept,
      uploaded: new Set(kept.map((s) => s.uri)),
      uploadedSeconds: kept.reduce((sum, s) => sum + s.duration, 0),
      publishedSegments: -1,
      aheadOfUs: -1,
      init: null,
      listed: kept,
      sizes: new Map(),
    };
  });
  let masterPublished = false;
  let masterFailedRungs = 0;
  /** What the final master states each rung carries (its last pass). */
  let finalRates = new Map<string, SegmentBitRates>();
  let stopped = false;
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let watchers: FSWatcher[] = [];
  let passInFlight: Promise<void> | null = null;
  /** A change was seen while a pass ran: another pass follows it at once. */
  let passAgain = false;
  let failure: { error: unknown } | null = null;

  async function uploadOfRung(
    rung: string,
    key: string,
    file: string,
    options: { contentType: string; cacheControl: string },
    once = false,
  ): Promise<void> {
    try {
      await (once ? storage.uploadOnce(key, file, options) : storage.upload(key, file, options));
    } catch (err) {
      // Another run published other bytes under this key: the whole run stops, whatever the rung.
      if (err instanceof ObjectExistsError) throw err;
      throw storageUnavailable(err) ?? new RungPublishError(rung, err);
    }
  }

  /**
   * Uploads a segment once. When its key already holds other bytes, which no published playlist
   * lists (a listed one is never uploaded again), an earlier run of the job uploaded it and died
   * before listing it. If those bytes are the same cut of the same rung, encoded again (x264's
   * threads make two encodes of the same frames differ in their bytes), they are kept and listed
   * as this run's own, as a resumed run keeps an earlier run's segments; anything else still fails
   * the run. `probeFile` is this run's segment as ffprobe can read it (an fMP4 one with its init),
   * `init` what to put before the stored bytes to read them so. Resolves with how many bytes the
   * stored object holds: `file`'s (`bytes`), or the kept object's.
   */
  async function uploadSegmentOnce(
    rung: string,
    key: string,
    file: { path: string; bytes: number },
    options: { contentType: string; cacheControl: string },
    compare: { probeFile: string; format: "mpegts" | "mov"; init?: Buffer },
  ): Promise<number> {
    try {
      await uploadOfRung(rung, key, file.path, options, true);
      return file.bytes;
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err;
      const stored = path.join(workDir, SNAPSHOT_DIR, `${rung}.stored.${path.basename(key)}`);
      let storedBytes: number;
      try {
        await storage.download(key, stored);
        storedBytes = (await stat(stored)).size;
        if (compare.init) await writeFile(stored, Buffer.concat([compare.init, await readFile(stored)]));
        if (!(await sameSegmentCut(compare.probeFile, stored, compare.format))) throw err;
      } finally {
        await rm(stored, { force: true });
      }
      log.info("kept a segment an earlier run uploaded and did not list: the same cut, other bytes", { key });
      return storedBytes;
    }
  }

  /** The rung's playlist as storage serves it now (another run of the job may have published it). */
  async function publishedPlaylist(playlistKey: string): Promise<{ uris: Set<string>; endList: boolean } | null> {
    const text = await storage.readText(playlistKey);
    if (text === null) return null;
    const manifest = parsePlaylist(text);
    return { uris: new Set(manifest.segments.map((s) => s.uri)), endList: manifest.endList === true };
  }

  /**
   * An fMP4 segment as ffmpeg wrote it carries the rung's init: the init is published once (the
   * same bytes in every run of the same encode; other bytes under its key fail the run, as a
   * segment's would), and the segment without it.
   */
  async function publishFragmentedSegment(state: RungState, uri: string): Promise<void> {
    const name = state.rung.name;
    let parts: ReturnType<typeof splitFragmentedMp4>;
    try {
      parts = splitFragmentedMp4(await readFile(path.join(workDir, name, uri)));
    } catch (err) {
      throw segmentCutShort(name, uri, `(${err instanceof Error ? err.message : String(err)})`);
    }
    if (state.init === null) {
      const initFile = path.join(workDir, SNAPSHOT_DIR, `${name}.${RUNG_INIT_SEGMENT}`);
      await writeFile(initFile, parts.init);
      const initOptions = { contentType: FMP4_INIT_TYPE, cacheControl: CACHE_IMMUTABLE };
      await uploadOfRung(name, `${hls.rungPrefix(name)}/${RUNG_INIT_SEGMENT}`, initFile, initOptions, true);
      state.init = Buffer.from(parts.init);
    } else if (!state.init.equals(parts.init)) {
      throw new Error(`The segment ${name}/${uri} has another init (codec configuration) than the rung's first`);
    }
    const mediaFile = path.join(workDir, SNAPSHOT_DIR, `${name}.${uri}`);
    await writeFile(mediaFile, parts.media);
    try {
      const options = { contentType: FMP4_SEGMENT_TYPE, cacheControl: CACHE_IMMUTABLE };
      // ffmpeg's file has the init before the media: what ffprobe reads the stored media with.
      const compare = { probeFile: path.join(workDir, name, uri), format: "mov" as const, init: state.init };
      const media = { path: mediaFile, bytes: parts.media.byteLength };
      state.sizes.set(uri, await uploadSegmentOnce(name, `${hls.rungPrefix(name)}/${uri}`, media, options, compare));
    } finally {
      await rm(mediaFile, { force: true });
    }
  }

  async function publishRung(state: RungState, final: boolean): Promise<void> {
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
    if (final && !endList) throw new Error(`The ${name} playlist has no #EXT-X-ENDLIST after ffmpeg finished`);
    const listed = state.kept.length + segments.length;
    const fresh = segments.filter((s) => !state.uploaded.has(s.uri));
    if (!final && fresh.length === 0 && listed <= Math.max(state.publishedSegments, state.aheadOfUs)) return;

    const playlistKey = hls.playlistKey(name);
    const published = await publishedPlaylist(playlistKey);
    for (const segment of fresh) {
      if (!/^[\w.-]+$/.test(segment.uri)) {
        throw new Error(`Unexpected segment URI ${JSON.stringify(segment.uri)} in the ${name} playlist`);
      }
      // A segment a published playlist lists may have been played: it stays as it is, even when
      // this run (a resumed or duplicate one) encoded other bytes for it.
      if (!published?.uris.has(segment.uri)) {
        if (fragmented) {
          await publishFragmentedSegment(state, segment.uri);
        } else {
          const segmentKey = `${hls.rungPrefix(name)}/${segment.uri}`;
          const { size } = await stat(path.join(workDir, name, segment.uri));
          if (size === 0 || size % TS_PACKET_BYTES !== 0) throw segmentCutShort(name, segment.uri, `at ${size} bytes`);
          const segmentOptions = { contentType: SEGMENT_TYPE, cacheControl: CACHE_IMMUTABLE };
          const segmentFile = path.join(workDir, name, segment.uri);
          const compare = { probeFile: segmentFile, format: "mpegts" as const };
          const file = { path: segmentFile, bytes: size };
          state.sizes.set(segment.uri, await uploadSegmentOnce(name, segmentKey, file, segmentOptions, compare));
        }
      }
      state.uploaded.add(segment.uri);
      state.uploadedSeconds += segment.duration;
    }
    // The file ffmpeg keeps replacing may already list more than was uploaded; what was read is listed.
    const discontinuity = opts.discontinuityAfterKept === true && state.kept.length > 0;
    const listedSegments = [
      ...state.kept,
      ...segments.map((s, i) => ({
        uri: s.uri,
        duration: s.duration,
        ...(discontinuity && i === 0 ? { discontinuity: true } : {}),
      })),
    ];
    state.listed = listedSegments;
    if (opts.segmentsOnly) {
      state.publishedSegments = listed;
      return;
    }

    // A published playlist never shrinks and never loses its end: this run's playlist replaces
    // it only once it lists as much, and a complete one only with its own complete one. An open
    // rung's playlist is never ended here: once the API has listed later chunks after it, it stays.
    const ends = final && !openRungs.has(name);
    const behind = published !== null && (published.uris.size > listed || (published.endList && !ends));
    if (behind && ends) {
      throw new Error(`The ${name} playlist this run finished lists fewer segments than the published one`);
    }
    if (behind) {
      state.aheadOfUs = published.endList ? Number.MAX_SAFE_INTEGER : published.uris.size;
      // Finished: what storage lists already covers this run's segments.
      if (final) state.publishedSegments = listed;
      return;
    }
    if (final || listed > state.publishedSegments) {
      const snapshot = path.join(workDir, SNAPSHOT_DIR, `${name}.m3u8`);
      const playlist = mediaPlaylist(listedSegments, {
        targetDuration: opts.targetDuration,
        endList: ends,
        ...(fragmented ? { map: RUNG_INIT_SEGMENT } : {}),
      });
      await writeFile(snapshot, playlist);
      await uploadOfRung(name, playlistKey, snapshot, {
        contentType: PLAYLIST_TYPE,
        cacheControl: ends ? CACHE_FINAL : growingPlaylistCacheControl(opts.targetDuration, "public"),
      });
      state.publishedSegments = listed;
    }
  }

  async function publishPass(final: boolean): Promise<void> {
    try {
      await publishRungsAndMaster(final);
    } catch (err) {
      throw (await workDirFull(workDir, err, segmentRoundBytes())) ?? storageUnavailable(err) ?? err;
    }
  }

  /** The bytes of one segment of every rung (each rung's biggest so far): what a round of ffmpeg's writes needs. */
  function segmentRoundBytes(): number {
    return states.reduce((sum, s) => sum + Math.max(0, ...s.sizes.values()), 0);
  }

  async function publishRungsAndMaster(final: boolean): Promise<void> {
    await mkdir(path.join(workDir, SNAPSHOT_DIR), { recursive: true });
    const publishing = states.filter((s) => !s.failure);
    // allSettled: no upload may still be reading the work dir when a failed pass returns.
    const results = await Promise.allSettled(publishing.map((s) => publishRung(s, final)));
    const failed = results.find((r) => r.status === "rejected" && !(r.reason instanceof RungPublishError));
    if (failed) throw (failed as PromiseRejectedResult).reason;
    results.forEach((r, i) => {
      if (r.status === "rejected") publishing[i]!.failure = r.reason as RungPublishError;
    });
    const live = states.filter((s) => !s.failure);
    const needed = states.some((s) => s.rung.kind === "VIDEO") ? live.filter((s) => s.rung.kind === "VIDEO") : live;
    if (needed.length === 0) throw states.find((s) => s.failure)!.failure;
    const failedRungs = new Set(states.filter((s) => s.failure).map((s) => s.rung.name));
    if (opts.segmentsOnly) return;
    const masterIsStale = masterPublished && failedRungs.size > masterFailedRungs;
    const publishMaster = async (measured?: Map<string, SegmentBitRates>) => {
      const file = path.join(workDir, SNAPSHOT_DIR, "master.m3u8");
      await writeFile(
        file,
        masterPlaylist(
          ladder.filter((r) => !failedRungs.has(r.name)),
          opts.probe,
          measured,
        ),
      );
      await storage.upload(masterKey, file, { contentType: PLAYLIST_TYPE, cacheControl: CACHE_FINAL });
    };
    if ((!masterPublished && live.every((s) => s.publishedSegments > 0)) || masterIsStale) {
      await publishMaster();
      masterFailedRungs = failedRungs.size;
      if (!masterPublished) {
        masterPublished = true;
        await opts.onPlayable?.(masterKey);
      }
    }
    // The final pass (finish() runs it once): every segment is published, so the master can state
    // what the rungs carry rather than their bounds.
    if (final && masterPublished && openRungs.size === 0) {
      finalRates = await masterRates(live, failedRungs);
      if (finalRates.size > 0) await publishMaster(finalRates);
    }
  }

  /** Each rung's segments as segments() reports them: with the bytes storage holds, where known. */
  const sizedSegments = (state: RungState) =>
    state.listed.map((segment) => {
      const bytes = state.sizes.get(segment.uri);
      return bytes === undefined ? segment : { ...segment, bytes };
    });

  /**
   * The rates of each rung whose every listed segment's stored bytes this run knows: a rung with
   * segments kept from a published playlist (a resumed run, or one behind another) is left out (the
   * final master reads it from storage: `masterRates`).
   */
  function bitRatesOf(rungs: RungState[]): Map<string, SegmentBitRates> {
    const measured = new Map<string, SegmentBitRates>();
    for (const state of rungs) {
      const rates = renditionBitRates(sizedSegments(state), opts.targetDuration);
      if (rates) measured.set(state.rung.name, rates);
    }
    return measured;
  }

  /**
   * What each rung the final master lists carries: this run's rungs from the bytes it recorded; a
   * rung whose segments it did not all upload (kept from a published playlist: a resumed run, or one
   * behind another) or does not encode at all (a retryVariant run's other rungs) from its published
   * playlist and the bytes storage lists for its segments. A rung that cannot be read whole (a
   * playlist not ended, a segment not listed, storage refusing) keeps its bound.
   */
  async function masterRates(live: RungState[], failedRungs: Set<string>): Promise<Map<string, SegmentBitRates>> {
    const measured = bitRatesOf(live);
    const unmeasured = ladder.filter((r) => !failedRungs.has(r.name) && !measured.has(r.name));
    await Promise.all(
      unmeasured.map(async ({ name }) => {
        try {
          const rates = await publishedBitRates(name);
          if (rates) measured.set(name, rates);
        } catch (err) {
          log.warn("could not measure a published rung: the master states its bound", {
            rung: name,
            error: String(err),
          });
        }
      }),
    );
    return measured;
  }

  /** A published rung's rates, from its ended playlist and the bytes storage lists for its segments. */
  async function publishedBitRates(rung: string): Promise<SegmentBitRates | undefined> {
    const prefix = `${hls.rungPrefix(rung)}/`;
    const [text, objects] = await Promise.all([storage.readText(hls.playlistKey(rung)), storage.list(prefix)]);
    if (text === null) return undefined;
    const stored = new Map(objects.map((o) => [o.key, o.bytes]));
    return publishedRenditionBitRates(parsePlaylist(text), (uri) => stored.get(prefix + uri), opts.targetDuration);
  }

  /** Runs a pass now, or right after the one in flight. */
  function publishSoon(): void {
    if (stopped) return;
    if (passInFlight) {
      passAgain = true;
      return;
    }
    clearTimeout(timer);
    passInFlight = publishPass(false)
      .catch((error: unknown) => {
        failure = { error };
        stopped = true;
        opts.onError?.(error);
      })
      .finally(() => {
        passInFlight = null;
        if (stopped) return;
        if (passAgain) {
          passAgain = false;
          publishSoon();
        } else {
          timer = setTimeout(publishSoon, opts.intervalMs ?? BACKSTOP_INTERVAL_MS);
        }
      });
  }

  /** Watches every rung's directory: ffmpeg renames a rung's list into place once per segment. */
  function watchRungs(): void {
    for (const state of states) {
      const dir = path.join(workDir, state.rung.name);
      try {
        mkdirSync(dir, { recursive: true });
        const watcher = watch(dir, (_event, file) => {
          if (file === RUNG_PLAYLIST) publishSoon();
        });
        // The backstop timer still finds what a failed watch would have reported.
        watcher.on("error", () => watcher.close());
        watchers.push(watcher);
      } catch {
        // Same: the timer publishes it.
      }
    }
  }

  async function halt(): Promise<void> {
    stopped = true;
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
    watchers = [];
    await passInFlight;
  }

  function variants(): VariantPublication[] {
    return states.map((s) => ({
      name: s.rung.name,
      playlistKey: hls.playlistKey(s.rung.name),
      progress: publishedFraction(s.uploadedSeconds, opts.progressSeconds?.(s.rung) ?? opts.probe.duration),
      segmentCount: s.uploaded.size,
      publishedSeconds: s.uploadedSeconds,
      ...(s.failure ? { error: s.failure.message } : {}),
    }));
  }

  return {
    masterKey,
    start() {
      if (stopped || started) return;
      started = true;
      watchRungs();
      publishSoon();
    },
    variants,
    segments: () => states.map((s) => ({ name: s.rung.name, segments: sizedSegments(s) })),
    bitRates: () => bitRatesOf(states.filter((s) => !s.failure)),
    async finish() {
      await halt();
      if (failure) throw failure.error;
      await publishPass(true);
      if (!masterPublished && !opts.segmentsOnly)
        throw new Error("The master playlist was not published: a rung has no segments");
      return variants().map((v) => {
        const bitRates = finalRates.get(v.name);
        return bitRates ? { ...v, bitRates } : v;
      });
    },
    stop: halt,
  };
}

/** A segment ffmpeg listed but did not write whole: its writes failed (a full disk), and ffmpeg exits 0. */
class SegmentCutShortError extends Error {
  readonly code = "EIO";
}

function segmentCutShort(rung: string, uri: string, how: string): Error {
  return new SegmentCutShortError(`The segment ${rung}/${uri} was cut short ${how} in the work dir`);
}

/**
 * A failed pass on a full work dir failed for that (a playlist ffmpeg could not finish, a cut
 * segment), whatever the error says: ffmpeg reports no failed write. A cut segment is a failed
 * write, so it counts as the disk's fault with a wider margin of free space (`roundBytes`: one
 * segment of every rung) than any other failure.
 */
async function workDirFull(workDir: string, err: unknown, roundBytes: number): Promise<Error | null> {
  const fs = await statfs(workDir).catch(() => null);
  const minFree =
    err instanceof SegmentCutShortError
      ? Math.max(CUT_SEGMENT_MIN_FREE_BYTES, CUT_SEGMENT_MIN_FREE_ROUNDS * roundBytes)
      : WORK_DIR_MIN_FREE_BYTES;
  if (!fs || fs.bavail * fs.bsize >= minFree) return null;
  const reason = err instanceof Error ? err.message : String(err);
  const full = new Error(`ENOSPC: no space left on device in the worker's work dir (${reason})`);
  return storageUnavailable(Object.assign(full, { code: "ENOSPC" }));
}
