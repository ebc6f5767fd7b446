import type { SegmentFormat } from "../../src/protocol/media-facts.ts";

/**
 * Where a ladder's segments are cut: the first segment lasts `firstSegmentSeconds`, every later one
 * `segmentSeconds`, in every rung (video rungs get a keyframe forced at each cut). A short first
 * segment is what a player needs to start, so the ladder is playable that much sooner; the later
 * ones keep their length. The encoder, the publisher and a resumed run all take the cuts from here.
 */
export interface SegmentPlan {
  segmentSeconds: number;
  firstSegmentSeconds: number;
}

/** The length of a ladder's first segment, when its segments are longer. */
const FIRST_SEGMENT_SECONDS = 1;

export function segmentPlan(segmentSeconds: number): SegmentPlan {
  return { segmentSeconds, firstSegmentSeconds: Math.min(FIRST_SEGMENT_SECONDS, segmentSeconds) };
}

/** The media time segment `index` starts at (segment 0 at 0). */
export function segmentStart(plan: SegmentPlan, index: number): number {
  return index === 0 ? 0 : plan.firstSegmentSeconds + (index - 1) * plan.segmentSeconds;
}

/** How many segments `duration` seconds of media make (at least one). */
export function segmentCount(plan: SegmentPlan, duration: number): number {
  if (duration <= plan.firstSegmentSeconds + 1e-6) return 1;
  return 1 + Math.ceil((duration - plan.firstSegmentSeconds) / plan.segmentSeconds - 1e-6);
}

/**
 * The playlists' `#EXT-X-TARGETDURATION`: fixed for the whole encode, because Safari stops playing
 * a playlist whose target duration changes between versions. Every segment is cut on the first
 * frame at or after its boundary, so it lasts its planned length give or take a frame (an AAC
 * frame for audio), which rounds to at most this.
 */
export function targetDuration(plan: SegmentPlan): number {
  return Math.ceil(plan.segmentSeconds);
}

/** The file name of a rung's segment `index` as the segment muxer names it: `seg_00000.ts`, `seg_00000.m4s` (fMP4). */
export function segmentFileName(format: SegmentFormat, index: number): string {
  return `seg_${String(index).padStart(5, "0")}.${segmentExtension(format)}`;
}

/** The extension of a segment file, without the dot. */
export function segmentExtension(format: SegmentFormat): string {
  return format === "FMP4" ? "m4s" : "ts";
}
