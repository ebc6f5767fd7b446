import type { SegmentEncryption } from "./encryption.ts";
import type { Rung } from "../../src/protocol/media-facts.ts";
import type { HlsLayout } from "../../src/protocol/storage-layout.ts";
import type { WorkerStorage } from "../storage/types.ts";
import type { PlaylistSegment } from "../../src/shared/hls-playlists.ts";

/** What every part of a publication writes with (hls-publisher.ts wires the parts). */
export interface PublishTarget {
  storage: WorkerStorage;
  /** The directory ffmpeg writes `{rung}/index.m3u8` and its segments into. */
  workDir: string;
  hls: HlsLayout;
  /** fMP4 segments, published as init + media; else MPEG-TS. */
  fragmented: boolean;
  /** Each media segment encrypted before it is uploaded (encryption.ts); null: as ffmpeg wrote it. */
  encryption: SegmentEncryption | null;
  /** Every rung playlist's `#EXT-X-TARGETDURATION` (HlsPublisherOptions.targetDuration). */
  targetDuration: number;
}

export { PLAYLIST_TYPE } from "../../src/shared/hls-playlists.ts";
export const CACHE_IMMUTABLE = "public, max-age=31536000, immutable";
export const CACHE_FINAL = "public, max-age=3600";
/** Rung names match `^[a-z0-9]+$`, so this directory in the work dir is never a rung's. */
export const SNAPSHOT_DIR = ".publish";

/** One rung's publishing state. */
export interface RungState {
  rung: Rung;
  kept: PlaylistSegment[];
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
  /** The segments published or kept so far, in order: what the rung's playlist in storage lists. */
  listed: PlaylistSegment[];
  /**
   * How many bytes storage holds for each segment this run uploaded or found uploaded by an earlier
   * run (not those kept from a published playlist): what the master's measured rates count.
   */
  sizes: Map<string, number>;
  /** The most segments ffmpeg's list of the rung has listed: a list that lists fewer was cut short. */
  ffmpegListed: number;
  failure?: RungPublishError;
}

/** A rung's published segments with the bytes storage holds, where known: what its rates are measured from. */
export function sizedRendition(state: RungState): { name: string; segments: (PlaylistSegment & { bytes?: number })[] } {
  const segments = state.listed.map((segment) => {
    const bytes = state.sizes.get(segment.uri);
    return bytes === undefined ? segment : { ...segment, bytes };
  });
  return { name: state.rung.name, segments };
}

/** A rung's state before its first pass: what it keeps counts as uploaded and listed. */
export function newRungState(rung: Rung, kept: PlaylistSegment[]): RungState {
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
    ffmpegListed: 0,
  };
}

/**
 * Storage refused one of a rung's files for a reason of that file (not a full disk or an outage,
 * which are StorageUnavailableError and fail the attempt); the other rungs go on.
 */
export class RungPublishError extends Error {
  readonly rung: string;
  constructor(rung: string, cause: unknown) {
    super(`Publishing the ${rung} rung failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "RungPublishError";
    this.rung = rung;
  }
}
