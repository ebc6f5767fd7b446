/** The job messages of a transcode and of a split transcode's chunks. */
import { z } from "zod";
import { ChunkRange, ChunkSource, PlannedRung, SegmentFormat } from "./media-facts.ts";
import { LoudnessTarget, Watermark } from "./media-filters.ts";
import { readVersion, Traceparent } from "./version.ts";

/**
 * How a protected video's segments are encrypted (src/content-protection/): AES-128 whole
 * segments with keys derived from `key` (src/shared/segment-keys.ts), a new one every
 * `keyRotationSegments` segments (null: one for the whole video); or CENC (fMP4 only, no
 * rotation): samples encrypted in the fragments with one key and key id derived from `key`. The
 * key travels only in job messages, never in storage.
 */
export const ContentProtection = z.object({
  method: z.enum(["AES_128", "CENC"]),
  /** The video's 16-byte content key, hex. */
  key: z.string().regex(/^[0-9a-f]{32}$/),
  keyRotationSegments: z.number().int().min(1).max(100_000).nullable(),
});
export type ContentProtection = z.infer<typeof ContentProtection>;

/** Encoding options the API passes along; the worker has defaults for each. */
export const TranscodeOptions = z.object({
  /** Target HLS segment length in seconds. */
  segmentSeconds: z.number().min(1).max(10).default(4),
  /** How segments are packaged; absent: TS. */
  segmentFormat: SegmentFormat.optional(),
  /** Never plan rungs above this height (in addition to never above the source). */
  maxHeight: z.number().int().positive().optional(),
  /** Sources longer than this are refused before encoding (a guard against duration bombs). */
  maxDurationSeconds: z.number().positive().optional(),
  /**
   * Encode only these rungs of the planned ladder (retryVariant); the master playlist still lists
   * the whole ladder. Absent: every rung.
   */
  rungs: z
    .array(z.string().regex(/^[a-z0-9]+$/))
    .min(1)
    .optional(),
  /** Normalize the audio to this EBU R128 target (two-pass loudnorm); absent: the audio as it is. */
  loudness: LoudnessTarget.optional(),
  /** Draw this image over the video before the ladder is scaled. */
  watermark: Watermark.optional(),
  /** Encrypt every segment (workers before it do not read it: the API sends it to this protocol's workers). */
  contentProtection: ContentProtection.optional(),
  /**
   * Encode only this range of the source, in seconds, cut frame-accurately (a clip, createClip): the
   * published video starts at `start` and lasts `end - start` (less when the source ends first).
   */
  trim: z
    .object({ start: z.number().nonnegative().finite(), end: z.number().positive().finite() })
    .refine((t) => t.end > t.start, { message: "trim.end must be after trim.start" })
    .optional(),
  /**
   * The worker may split this transcode into time chunks that other workers encode
   * (docs/chunked-transcoding.md): chunks of about `chunkSeconds`, the first about
   * `firstChunkSeconds`. The API sets it only while two or more workers have a free cpu slot (or
   * the transcode split before); a source no longer than one chunk is not split. Absent: one run
   * encodes the whole ladder. `slots`: how many cpu jobs the workers alive then run at once (their
   * WORKER_CONCURRENCY summed), so that the last round of chunks is not left partly idle (APIs
   * before it do not send it, workers before it ignore it).
   */
  chunking: z
    .object({
      chunkSeconds: z.number().min(2).max(3600),
      firstChunkSeconds: z.number().min(1).max(3600),
      slots: z.number().int().min(1).max(100_000).optional(),
    })
    .optional(),
});
export type TranscodeOptions = z.infer<typeof TranscodeOptions>;

export const TranscodeJobMessage = z.object({
  v: readVersion,
  type: z.literal("transcode"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  /** Storage key of the source file, e.g. `videos/{videoId}/source/upload`. */
  sourceKey: z.string().min(1),
  /** Storage prefix of the video's media, e.g. `videos/{videoId}`; HLS goes under `{prefix}/hls/`. */
  outputPrefix: z.string().min(1),
  options: TranscodeOptions.default({ segmentSeconds: 4 }),
});
export type TranscodeJobMessage = z.infer<typeof TranscodeJobMessage>;

/**
 * Encodes one chunk of a split transcode (`job.split`): the video rungs of `ladder`, segments
 * `chunk.fromSegment` to `chunk.toSegment - 1`, published under `{outputPrefix}/hls/` with the
 * numbers a one-process encode gives them. It writes no playlist: the API lists the segments
 * (`chunk.succeeded`) once every earlier chunk's are listed.
 */
export const TranscodeChunkJobMessage = z.object({
  v: readVersion,
  type: z.literal("transcode_chunk"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  /** The split transcode's job. */
  parentJobId: z.uuid(),
  sourceKey: z.string().min(1),
  outputPrefix: z.string().min(1),
  chunk: ChunkRange,
  /** The video rungs the first run planned, encoded with exactly its settings. */
  ladder: z.array(PlannedRung).min(1),
  /** The source as the split run probed it (APIs before it do not send it: the chunk probes). */
  source: ChunkSource.optional(),
  /** The split transcode's options the chunk's encode depends on. */
  options: TranscodeOptions.pick({
    segmentSeconds: true,
    segmentFormat: true,
    watermark: true,
    maxDurationSeconds: true,
    contentProtection: true,
  }),
});
export type TranscodeChunkJobMessage = z.infer<typeof TranscodeChunkJobMessage>;
