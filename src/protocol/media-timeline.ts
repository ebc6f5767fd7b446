import type { SegmentFormat } from "./media-facts.ts";

/**
 * Where a published video's time 0 sits in its segments. The worker writes it; the API
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

/**
 * The 90 kHz timestamp of the source's time 0 (its first frame's PTS) in every published segment, by
 * segment format: MPEG-TS segments carry the lead and the muxer's delay, fMP4 ones (whose mp4 muxer adds
 * none) the lead alone. ffprobe reads 11.400000 and 10.000000 s off a first segment.
 */
export const MEDIA_TIME_ZERO_90KHZ: Readonly<Record<SegmentFormat, number>> = {
  TS: Math.round((TIMELINE_LEAD_SECONDS + MPEGTS_MUXER_DELAY_SECONDS) * 90_000),
  FMP4: Math.round(TIMELINE_LEAD_SECONDS * 90_000),
};

/** The second at which the source's time 0 sits in a published segment of `format`. */
export function timelineZeroSeconds(format: SegmentFormat): number {
  return MEDIA_TIME_ZERO_90KHZ[format] / 90_000;
}
