/** What the worker found and planned of a video's media, as job messages and events carry it. */
import { z } from "zod";

/**
 * How a ladder's segments are packaged: MPEG-TS segments (`seg_00000.ts`…), or fragmented MP4
 * (CMAF: one `init.mp4` per rung and `seg_00000.m4s`…, rung playlists with `#EXT-X-MAP`).
 */
export const SegmentFormat = z.enum(["TS", "FMP4"]);
export type SegmentFormat = z.infer<typeof SegmentFormat>;

/**
 * A video's storyboard: `tileCount` frames, one every `intervalSeconds` from 0, scaled to
 * `tileWidth`×`tileHeight` and laid out row by row in sheets of `columns`×`rows` tiles (the last
 * sheet may be partly empty); the WebVTT file at `vttKey` has one cue per tile,
 * `sheet-N.jpg#xywh=x,y,w,h`.
 */
export const Storyboard = z.object({
  vttKey: z.string(),
  sheetKeys: z.array(z.string()).min(1),
  intervalSeconds: z.number().positive(),
  tileWidth: z.number().int().positive(),
  tileHeight: z.number().int().positive(),
  columns: z.number().int().positive(),
  rows: z.number().int().positive(),
  tileCount: z.number().int().positive(),
});
export type Storyboard = z.infer<typeof Storyboard>;

/** Facts the worker's probe found about the source. */
export const ProbeResult = z.object({
  duration: z.number().nonnegative(),
  /** Display dimensions (rotation applied); null for an audio-only source. */
  width: z.number().int().positive().nullable(),
  height: z.number().int().positive().nullable(),
  fps: z.number().nonnegative(),
  rotation: z.number().int(),
  hasAudio: z.boolean(),
  /** Null for an audio-only source. */
  videoCodec: z.string().nullable(),
  audioCodec: z.string().nullable(),
  /** The audio stream's channel count, when it has one and ffprobe knows it. */
  audioChannels: z.number().int().positive().nullable().optional(),
  /** The audio stream's bits per second, when ffprobe knows it (not for lossless or unknown rates). */
  audioBitrate: z.number().int().positive().nullable().optional(),
});
export type ProbeResult = z.infer<typeof ProbeResult>;

/**
 * A split transcode's source as its first run probed it, handed to its chunks (`job.split`, then
 * each `transcode_chunk`): a chunk opens the source as `format` with this probe instead of probing
 * it again, which on cloud storage reads the source over HTTP before each chunk's encode. A worker
 * whose upload whitelist does not name `format`, or a chunk without it (split by a worker before
 * it), probes the source itself.
 */
export const ChunkSource = z.object({
  probe: ProbeResult,
  /** The container ffprobe found, one of the worker's upload formats (`mov`, `matroska`, …). */
  format: z.string().regex(/^[a-z0-9_]{1,32}$/),
  /** The container's start time in seconds, which a seek into it counts from (absent: the chunk reads it). */
  startTime: z.number().min(-86_400).max(86_400).optional(),
});
export type ChunkSource = z.infer<typeof ChunkSource>;

/**
 * A time chunk of a chunked transcode: segments `fromSegment` to `toSegment - 1` of every video
 * rung, from `fromSeconds` to `toSeconds` of the source (render-worker/media/chunks.ts plans them).
 */
export const ChunkRange = z
  .object({
    index: z.number().int().nonnegative(),
    fromSegment: z.number().int().nonnegative(),
    /** Exclusive. */
    toSegment: z.number().int().positive(),
    fromSeconds: z.number().nonnegative(),
    toSeconds: z.number().positive(),
  })
  .refine((c) => c.toSegment > c.fromSegment && c.toSeconds > c.fromSeconds, { message: "an empty chunk" });
export type ChunkRange = z.infer<typeof ChunkRange>;

/** One rung of the planned ladder. */
export const Rung = z.object({
  /** Directory name under `hls/` and the variant's name: `720p`, `audio`. */
  name: z.string().regex(/^[a-z0-9]+$/),
  kind: z.enum(["VIDEO", "AUDIO"]),
  width: z.number().int().positive().nullable(),
  height: z.number().int().positive().nullable(),
  /** Peak bits per second, as declared in the master playlist. */
  bandwidth: z.number().int().positive(),
  /** RFC 6381 codecs string, e.g. `avc1.64001f` or `mp4a.40.2`. */
  codecs: z.string(),
  /** The encoder's target bits per second (without MPEG-TS overhead); set on an audio-only ladder's rungs. */
  bitrate: z.number().int().positive().optional(),
});
export type Rung = z.infer<typeof Rung>;

/** A rung as the worker planned it for its encoder: the H.264 level, an audio-only rung's channels. */
export const PlannedRung = Rung.extend({
  /** H.264 level_idc (31 is level 3.1); absent on audio rungs. */
  h264Level: z.number().int().positive().optional(),
  /** An audio-only ladder's rung: 1 (mono stays mono) or 2 channels. */
  channels: z.union([z.literal(1), z.literal(2)]).optional(),
});
export type PlannedRung = z.infer<typeof PlannedRung>;

/** A rung's segments as published, in order: what a playlist of them lists. */
export const PublishedSegments = z.object({
  name: z.string().regex(/^[a-z0-9]+$/),
  segments: z.array(
    z.object({
      uri: z.string().regex(/^seg_[0-9]{5,9}\.(?:ts|m4s)$/),
      duration: z.number().positive().finite(),
      /**
       * The bytes storage holds for it (an fMP4 segment's without its init), where the run uploaded it
       * or found it uploaded: what the master's measured BANDWIDTH counts. Absent from older workers.
       */
      bytes: z.number().int().positive().optional(),
    }),
  ),
});
export type PublishedSegments = z.infer<typeof PublishedSegments>;

/** What a rendition's published segments carry, in bits per second (`segmentBitRates`). */
export const BitRates = z.object({
  // Stored in Variant's INTEGER columns.
  peak: z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1),
  average: z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1),
});

/** What a named rung's published segments carry (`BitRates`). */
export const RenditionBitRates = BitRates.extend({ name: z.string().regex(/^[a-z0-9]+$/) });
