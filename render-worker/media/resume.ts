import { type PlaylistSegment, parsePlaylist } from "../../src/shared/hls-playlists.ts";
import { Rung, type SegmentFormat, type Storyboard } from "../../src/protocol/media-facts.ts";
import { type HlsLayout, RUNG_INIT_SEGMENT } from "../../src/protocol/storage-layout.ts";
import type { WorkerStorage } from "../storage/types.ts";
import type { AppliedMediaFilters } from "./media-filters.ts";
import { segmentCount, segmentFileName, segmentStart, type SegmentPlan } from "./segments.ts";

/**
 * Written beside the playlists once a run has published every rung: which job wrote the
 * segments under `hls/` and how. A later run keeps published segments only when it is a run of
 * the same job that would encode the same ladder the same way; anything else (new options, a new
 * ladder planner, another job such as a retryVariant of a failed rung) starts from zero.
 */

export interface EncodeManifest extends SegmentPlan {
  jobId: string;
  ladder: Rung[];
  encoder: string;
  /**
   * The media filters (loudness normalization with its measurement, watermark) the run applies;
   * absent: none. Stored as `finishing`: a run may resume from a manifest another release's worker wrote.
   */
  finishing?: AppliedMediaFilters;
  /** Set for fMP4 segments only (absent: MPEG-TS), so a TS encode's manifest reads as it always did. */
  segmentFormat?: "FMP4";
  /** A clip's range of the source (seconds): a run of another range starts from zero. */
  trim?: { start: number; end: number };
  /** Set once the job's run published everything: what it published, so a later delivery does no work. */
  complete?: CompletedEncode;
}

/** What a finished transcode published, as its `job.succeeded` and variant events said. */
interface CompletedEncode {
  masterKey: string;
  posterKey: string | null;
  storyboard?: Storyboard | null;
  variants: {
    name: string;
    playlistKey: string;
    segmentCount: number;
    error?: string;
    /** What the rung carries, as its `variant.ready` said (absent from older workers' manifests). */
    bitRates?: { peak: number; average: number };
  }[];
}

/** Where a run starts: segment `segments` of every rung, at `fromSeconds` of media time. */
export interface ResumePoint {
  segments: number;
  fromSeconds: number;
  /** Per rung name, the first `segments` segments of its published playlist. */
  kept: Map<string, PlaylistSegment[]>;
}

export type ResumePlan = { resume: ResumePoint } | { resume: null; reason: string };

/** The manifest as stored: its rungs as the contract has them, so the text depends on nothing else. */
export function encodeManifestText(manifest: EncodeManifest): string {
  return `${JSON.stringify({ ...manifest, ladder: manifest.ladder.map((r) => Rung.parse(r)) })}\n`;
}

type FinishedEncode = EncodeManifest & { complete: CompletedEncode };

/**
 * The manifest an earlier run left under the video's `hls/`, read once by a run: `text` is null
 * when there is none, and `unreadable` says why when it could not be read.
 */
export interface EarlierEncode {
  text: string | null;
  /** The text parsed; null when there is none or it is not JSON. */
  manifest: EncodeManifest | null;
  unreadable?: string;
}

export async function readEarlierEncode(storage: WorkerStorage, hls: HlsLayout): Promise<EarlierEncode> {
  let text: string | null;
  try {
    text = await storage.readText(hls.encodeManifestKey);
  } catch (err) {
    return { text: null, manifest: null, unreadable: err instanceof Error ? err.message : String(err) };
  }
  let manifest: EncodeManifest | null = null;
  try {
    manifest = text === null ? null : (JSON.parse(text) as EncodeManifest);
  } catch {
    // Not one this worker wrote: the job runs, from the start.
  }
  return { text, manifest };
}

/**
 * The earlier manifest when `jobId`'s finished run wrote it; null when there is none, it is
 * another job's, or it cannot be read (the job then runs).
 */
export function completedEncode(earlier: EarlierEncode, jobId: string): FinishedEncode | null {
  const manifest = earlier.manifest;
  const finished = manifest?.jobId === jobId && manifest.complete && Array.isArray(manifest.complete.variants);
  return finished ? (manifest as FinishedEncode) : null;
}

/**
 * What the earlier run of `jobId` applied besides the ladder; undefined when there was none, it
 * was another job's, or its manifest cannot be read.
 */
export function earlierMediaFilters(earlier: EarlierEncode, jobId: string): AppliedMediaFilters | undefined {
  return earlier.manifest?.jobId === jobId ? earlier.manifest.finishing : undefined;
}

/**
 * Finds what an earlier run of this encode left published: N segments in every rung to encode, which end at
 * `segmentStart(N)` in all of them since each starts on a forced keyframe, and which the playlists' durations
 * must add up to. Resuming there re-encodes nothing published; the last segment is always left to encode, so
 * the run still writes every rung's end of list.
 */
export async function planResume(args: {
  storage: WorkerStorage;
  hls: HlsLayout;
  /** The manifest an earlier run left, if any. */
  earlier: EarlierEncode;
  /** This run's manifest. */
  manifest: EncodeManifest;
  /** The rungs this run encodes (the whole ladder, or a retryVariant's rungs). */
  rungs: Rung[];
  duration: number;
  fps: number;
}): Promise<ResumePlan> {
  try {
    return await findResumePoint(args);
  } catch (err) {
    // Whatever cannot be read is encoded again.
    const why = err instanceof Error ? err.message : String(err);
    return { resume: null, reason: `the earlier run's playlists could not be read: ${why}` };
  }
}

async function findResumePoint(args: Parameters<typeof planResume>[0]): Promise<ResumePlan> {
  const { storage, hls, earlier, manifest, rungs } = args;
  if (earlier.unreadable !== undefined) throw new Error(earlier.unreadable);
  const previous = earlier.text;
  if (previous === null) return { resume: null, reason: "no earlier run published anything" };
  if (previous !== encodeManifestText(manifest)) {
    const reason = "an earlier run was another job's, or encoded another ladder or with other options";
    return { resume: null, reason };
  }

  const plan: SegmentPlan = {
    segmentSeconds: manifest.segmentSeconds,
    firstSegmentSeconds: manifest.firstSegmentSeconds,
  };
  const published = new Map<string, PlaylistSegment[]>();
  for (const rung of rungs) {
    const text = await storage.readText(hls.playlistKey(rung.name));
    if (text === null) return { resume: null, reason: `the ${rung.name} rung has no published playlist` };
    const segments = publishedSegments(text, manifest.segmentFormat ?? "TS");
    if (segments === null) return { resume: null, reason: `the ${rung.name} playlist is not one this worker wrote` };
    published.set(rung.name, segments);
  }

  const lastSegmentIndex = segmentCount(plan, args.duration) - 1;
  const segments = Math.min(lastSegmentIndex, ...[...published.values()].map((s) => s.length));
  if (segments === 0) return { resume: null, reason: "not every rung has a complete segment" };
  const fromSeconds = segmentStart(plan, segments);

  // A video segment ends on the first frame at or after its boundary, so N segments last until
  // the start of segment N give or take a frame; anything else means the cuts are not where we seek to.
  // An audio-only ladder's segments end on an AAC frame (21 ms) instead.
  const frame = args.fps > 0 ? 1 / args.fps : 0.1;
  const audioOnly = !manifest.ladder.some((r) => r.kind === "VIDEO");
  for (const rung of rungs) {
    if (rung.kind !== "VIDEO" && !audioOnly) continue;
    const seconds = published
      .get(rung.name)!
      .slice(0, segments)
      .reduce((sum, s) => sum + s.duration, 0);
    if (Math.abs(seconds - fromSeconds) > frame + 0.01) {
      const cuts = `${plan.firstSegmentSeconds} s, then every ${plan.segmentSeconds} s`;
      return { resume: null, reason: `the ${rung.name} segments are not cut after ${cuts}` };
    }
  }
  const kept = new Map([...published].map(([name, s]) => [name, s.slice(0, segments)]));
  return { resume: { segments, fromSeconds, kept } };
}

/**
 * The segments of a playlist whose segments are `seg_00000.ts`, `seg_00001.ts`… from 0 (`.m4s`
 * after the rung's `init.mp4` for fMP4); else null.
 */
function publishedSegments(text: string, format: SegmentFormat): PlaylistSegment[] | null {
  const { segments, mediaSequence } = parsePlaylist(text);
  if ((mediaSequence ?? 0) !== 0) return null;
  const kept: PlaylistSegment[] = [];
  for (const [i, segment] of segments.entries()) {
    if (segment.uri !== segmentFileName(format, i) || !(segment.duration > 0)) return null;
    if ((format === "FMP4") !== (segment.map?.uri === RUNG_INIT_SEGMENT)) return null;
    kept.push({ uri: segment.uri, duration: segment.duration });
  }
  return kept;
}
