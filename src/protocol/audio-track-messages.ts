/** An alternate audio track's job: its message and its end (`audio_track.done`). */
import { z } from "zod";
import { SegmentFormat } from "./media-facts.ts";
import { readVersion, Traceparent } from "./version.ts";

/** Where the track's file is: stored by the API (an upload), or at a URL the worker downloads through its guard. */
export const AudioTrackSource = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("stored"), key: z.string().min(1) }),
  z.object({ kind: z.literal("url"), url: z.string().min(1).max(8192) }),
]);
export type AudioTrackSource = z.infer<typeof AudioTrackSource>;

/**
 * Encodes a tenant's audio file as one AAC rung (the ladder's audio rate) on a READY video's
 * timeline: padded with silence, or cut, to `durationSeconds` (the video's), segments cut every
 * `segmentSeconds` in `segmentFormat`, published under `{outputPrefix}/hls/` with no master (the API
 * lists the track in the video's). Ends with `audio_track.done`.
 */
export const AudioTrackJobMessage = z.object({
  v: readVersion,
  type: z.literal("audio_track"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  trackId: z.uuid(),
  source: AudioTrackSource,
  /** Larger downloads are refused, whether they say so in Content-Length or not (a URL source). */
  maxBytes: z.number().int().positive(),
  /** Test-only: lets the worker fetch loopback and private addresses. Never set it in production. */
  allowPrivateAddresses: z.boolean().default(false),
  outputPrefix: z.string().min(1),
  durationSeconds: z.number().positive(),
  segmentSeconds: z.number().min(1).max(10),
  segmentFormat: SegmentFormat,
});
export type AudioTrackJobMessage = z.infer<typeof AudioTrackJobMessage>;
