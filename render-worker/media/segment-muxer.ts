import { TIMELINE_LEAD_SECONDS } from "../../src/protocol/media-timeline.ts";
import type { Rung, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { RUNG_PLAYLIST } from "../../src/protocol/storage-layout.ts";
import { segmentCount, segmentExtension, segmentStart, type SegmentPlan } from "./segments.ts";

/**
 * How far below a cut its keyframe and its segment start are asked for: the encoder compares the
 * cut with a frame's time in floating point and the segment muxer in whole microseconds, so a
 * frame exactly on a cut (every whole second at 25 fps) might fall a hair short of it in one of
 * them and not in the other. No frame comes within 1 µs of a cut without being on it.
 */
export const CUT_SLACK_SECONDS = 1e-6;

/** A cut this close to the source's end would leave a sliver of a last segment (a few AAC frames): none there. */
const END_MARGIN_SECONDS = 0.1;

/**
 * The cuts of a run that starts at segment `firstSegment`, in media time: up to the start of its
 * last segment when it stops at `stopSegment`, else on past the source's end: the probe's duration
 * may fall short of what the decoder finds, and a cut past the end costs nothing.
 */
export function segmentCuts(
  plan: SegmentPlan,
  firstSegment: number,
  duration: number,
  stopSegment: number | null,
): number[] {
  const last = stopSegment === null ? segmentCount(plan, duration * 1.1 + 60) : stopSegment - 1;
  const cuts: number[] = [];
  for (let i = firstSegment + 1; i <= last; i++) {
    const at = segmentStart(plan, i);
    if (Math.abs(at - duration) < END_MARGIN_SECONDS) continue;
    cuts.push(at);
  }
  return cuts;
}

/**
 * One rung as the segment muxer writes it: MPEG-TS segments cut at `cuts` (seconds after the
 * output's time 0, which is `zeroSeconds` of media time; on the first keyframe at or after each,
 * which the video encoder forced there; every audio packet is one), numbered from `firstSegment`,
 * and an m3u8 list of them. The hls muxer cannot do this: with event playlists FFmpeg 5.1 applies
 * `-hls_init_time` to every segment. The list is written to a temporary file and renamed, after
 * the segment it adds was written, so whatever it lists is complete; the publisher writes the
 * playlists players read.
 */
export function segmentOptions(
  rung: Rung,
  format: SegmentFormat,
  firstSegment: number,
  zeroSeconds: number,
  /** Where to cut; `everySeconds`: a live encode's, whose end is not known (a cut every so often). */
  cuts: number[] | { everySeconds: number },
): string[] {
  return [
    // Several outputs fed by one filter graph buffer packets while the slowest catches up.
    "-max_muxing_queue_size",
    "4096",
    // Timestamps go to the segment muxer as the encoder made them: its cuts and its list's
    // durations count from 0, and `-initial_offset` moves them in each segment's file.
    "-avoid_negative_ts",
    "disabled",
    "-f",
    "segment",
    ...(format === "FMP4" ? FRAGMENTED_MP4_SEGMENT : ["-segment_format", "mpegts"]),
    ...(Array.isArray(cuts)
      ? [
          "-segment_times",
          // A run of one segment (a chunk, a resume before the last) has no cut: one past any source. FFmpeg
          // reads a plain number of seconds here, not an exponent ("1e9" fails the run).
          cuts.length > 0 ? cuts.map((cut) => cut.toFixed(6)).join(",") : "1000000000",
        ]
      : ["-segment_time", String(cuts.everySeconds)]),
    "-initial_offset",
    (TIMELINE_LEAD_SECONDS + zeroSeconds).toFixed(6),
    "-segment_start_number",
    String(firstSegment),
    "-segment_list",
    `${rung.name}/${RUNG_PLAYLIST}`,
    "-segment_list_type",
    "m3u8",
  ];
}

/**
 * Each fMP4 segment is a fragmented MP4 file of its own (the publisher splits off its init): an
 * empty moov, the segment's samples in one fragment at its close. The segment muxer's inner mp4
 * muxer would shift every segment's timestamps to 0 and move the first one's B-frame delay into an
 * edit list; `frag_discont` without edit lists and without that shift makes each fragment's
 * decode time (tfdt) the packets' own, so the segments continue one another as MPEG-TS ones do.
 */
const FRAGMENTED_MP4_SEGMENT = [
  "-segment_format",
  "mp4",
  "-segment_format_options",
  "movflags=empty_moov+default_base_moof+frag_discont:use_editlist=0:avoid_negative_ts=disabled",
];

/** The segment files of a rung, relative to the work dir (the segment muxer's output). */
export function segmentFiles(rung: Rung, format: SegmentFormat): string {
  return `${rung.name}/seg_%05d.${segmentExtension(format)}`;
}
