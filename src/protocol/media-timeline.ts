import type { SegmentFormat } from "./messages.ts";

/**
 * Where a published video's time 0 sits in its MPEG-TS segments. The worker writes it; the API
 * needs it to align caption tracks (WebVTT's `X-TIMESTAMP-MAP`) with the segments.
 */

/**
 * Every output's timestamps start this far in. The segment muxer gives each segment its own
 * MPEG-TS muxer, which shifts a segment whose first timestamps are negative (B-frame reordering,
 * AAC priming) by that amount: without the lead a run's first segment would be shifted by its
 * encoder's delay and the next one not, and a resumed run's segments would not continue the
 * earlier ones exactly.
 */
export const TIMELINE_LEAD_SECONDS = 10;

/** What ffmpeg's MPEG-TS muxer adds in front of every timestamp on top of the lead (its default delay). */
const MPEGTS_MUXER_DELAY_SECONDS = 1.4;

/** The 90 kHz MPEG-TS timestamp of the source's time 0 in every published segment. */
export const MPEGTS_TIME_ZERO = Math.round((TIMELINE_LEAD_SECONDS + MPEGTS_MUXER_DELAY_SECONDS) * 90_000);

/**
 * The second at which the source's time 0 sits in a published segment of `format`: fMP4 segments
 * carry the encoder's timestamps as they are, MPEG-TS ones the muxer's delay on top.
 */
export function timelineZeroSeconds(format: SegmentFormat): number {
  return format === "FMP4" ? TIMELINE_LEAD_SECONDS : MPEGTS_TIME_ZERO / 90_000;
}
