import type { ContentProtection } from "../../src/protocol/transcode-messages.ts";
import { segmentEncryption } from "./encryption.ts";
import { mkdir, statfs } from "node:fs/promises";
import path from "node:path";
import type { ProbeResult, PublishedSegments, Rung, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { storageUnavailable } from "../../src/shared/storage-errors.ts";
import type { HlsLayout } from "../../src/protocol/storage-layout.ts";
import { bitRatesByName, type PlaylistSegment, type SegmentBitRates } from "../../src/shared/hls-playlists.ts";
import { publishedFraction } from "../progress/job-progress.ts";
import type { WorkerStorage } from "../storage/types.ts";
import { createMasterPublication } from "./hls-master.ts";
import { schedulePasses } from "./hls-publish-watch.ts";
import { publishRung } from "./hls-rung-playlist.ts";
import {
  newRungState,
  type PublishTarget,
  RungPublishError,
  type RungState,
  SNAPSHOT_DIR,
  sizedRendition,
} from "./hls-rung-state.ts";
import { SegmentCutShortError } from "./hls-segment-upload.ts";

/** Below this much free space the work dir counts as full. */
const WORK_DIR_MIN_FREE_BYTES = 1024 * 1024;
/**
 * A segment ffmpeg could not write whole is the disk's fault below this much free space, or below
 * `CUT_SEGMENT_MIN_FREE_ROUNDS` of the ladder's segments where that is more: between ffmpeg's failed
 * write and the publisher's look, other jobs on the disk free megabytes (the chaos run found 1 MiB).
 */
const CUT_SEGMENT_MIN_FREE_BYTES = 64 * 1024 * 1024;
const CUT_SEGMENT_MIN_FREE_ROUNDS = 8;

export interface HlsPublisherOptions {
  storage: WorkerStorage;
  /** The directory ffmpeg writes `{rung}/index.m3u8` and its segments into. */
  workDir: string;
  /** Where the video's HLS goes (`hlsLayout` of its prefix, built once by the job's handler). */
  hls: HlsLayout;
  /** The rungs the master playlist lists (those of `rungs` that fail to publish are left out). */
  ladder: Rung[];
  /** The rungs ffmpeg writes and this publisher publishes; default the whole ladder (retryVariant: some). */
  rungs?: Rung[];
  /** Per rung, the segments an earlier run published that this run keeps (a resumed run). */
  kept?: Map<string, PlaylistSegment[]>;
  /**
   * This run's segments follow the kept ones as another encode (a live broadcast taken over): the
   * first is listed after `#EXT-X-DISCONTINUITY`.
   */
  discontinuityAfterKept?: boolean;
  probe: ProbeResult;
  /** What ffmpeg writes: MPEG-TS segments (default), or fragmented MP4 ones, published as init + media. */
  segmentFormat?: SegmentFormat;
  /** The job's content protection: every media segment encrypted before it is uploaded (encryption.ts). */
  contentProtection?: ContentProtection;
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
  /** Publishes the rungs' segments and playlists but no master: an alternate audio track, which the API lists in the video's. */
  withoutMaster?: boolean;
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
 *
 * The parts: when passes run (hls-publish-watch.ts), a rung's part of a pass (hls-rung-playlist.ts)
 * and its segments' uploads (hls-segment-upload.ts), the master (hls-master.ts).
 */
export function createHlsPublisher(opts: HlsPublisherOptions): HlsPublisher {
  const { workDir, ladder } = opts;
  const { hls } = opts;
  const masterKey = hls.masterKey;
  const target: PublishTarget = {
    storage: opts.storage,
    workDir,
    hls,
    fragmented: opts.segmentFormat === "FMP4",
    encryption: segmentEncryption(opts.contentProtection),
    targetDuration: opts.targetDuration,
  };
  const openRungs = new Set(opts.openRungs ?? []);
  const rungOptions = {
    openRungs,
    segmentsOnly: opts.segmentsOnly === true,
    discontinuityAfterKept: opts.discontinuityAfterKept === true,
  };
  const states: RungState[] = (opts.rungs ?? ladder).map((rung) => newRungState(rung, opts.kept?.get(rung.name) ?? []));
  const master = createMasterPublication(target, {
    ladder,
    probe: opts.probe,
    openRungs,
    ...(opts.onPlayable ? { onPlayable: opts.onPlayable } : {}),
  });
  const passes = schedulePasses({
    workDir,
    rungNames: states.map((s) => s.rung.name),
    pass: () => publishPass(false),
    ...(opts.intervalMs === undefined ? {} : { intervalMs: opts.intervalMs }),
    ...(opts.onError ? { onError: opts.onError } : {}),
  });

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
    const results = await Promise.allSettled(publishing.map((s) => publishRung(target, rungOptions, s, final)));
    const failed = results.find((r) => r.status === "rejected" && !(r.reason instanceof RungPublishError));
    if (failed) throw (failed as PromiseRejectedResult).reason;
    results.forEach((r, i) => {
      if (r.status === "rejected") publishing[i]!.failure = r.reason as RungPublishError;
    });
    const live = states.filter((s) => !s.failure);
    const needed = states.some((s) => s.rung.kind === "VIDEO") ? live.filter((s) => s.rung.kind === "VIDEO") : live;
    if (needed.length === 0) throw states.find((s) => s.failure)!.failure;
    const failedRungs = new Set(states.filter((s) => s.failure).map((s) => s.rung.name));
    if (opts.segmentsOnly || opts.withoutMaster) return;
    await master.afterPass(live, failedRungs, final);
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
    start: passes.start,
    variants,
    segments: () => states.map(sizedRendition),
    bitRates: () => bitRatesByName(states.filter((s) => !s.failure).map(sizedRendition), opts.targetDuration),
    async finish() {
      await passes.halt();
      if (passes.failure) throw passes.failure.error;
      await publishPass(true);
      if (!master.published && !opts.segmentsOnly && !opts.withoutMaster)
        throw new Error("The master playlist was not published: a rung has no segments");
      return variants().map((v) => {
        const bitRates = master.finalRates.get(v.name);
        return bitRates ? { ...v, bitRates } : v;
      });
    },
    stop: passes.halt,
  };
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
