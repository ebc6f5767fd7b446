import type { JobMessage } from "../../src/protocol/job-message.ts";
import { encodeAudioTrack } from "./audio-track.ts";
import { importUrl } from "./import-url.ts";
import { live } from "./live.ts";
import { renderComposition } from "./render-composition.ts";
import { renderManim } from "./render-manim.ts";
import { runRenderOnce } from "./render-record.ts";
import { makeStaticRenditions } from "./static-renditions.ts";
import { transcode } from "./transcode.ts";
import { transcodeChunk } from "./transcode-chunk.ts";
import { transcribe } from "./transcribe.ts";
import type { JobContext, JobHandler } from "./types.ts";

/**
 * One handler per job kind, keyed by the message's `type`: a kind added to the contract's
 * JobMessage fails to type-check here until it has a handler.
 */
const handlers = {
  transcode,
  transcode_chunk: transcodeChunk,
  render_manim: renderManim,
  render_composition: renderComposition,
  import_url: importUrl,
  static_renditions: makeStaticRenditions,
  live,
  audio_track: encodeAudioTrack,
  transcribe,
} satisfies { [Type in JobMessage["type"]]: JobHandler<Extract<JobMessage, { type: Type }>> };

/**
 * What a second delivery of a finished job does, per kind: `record` runs it once (`runRenderOnce`:
 * the output is recorded beside it, and a redelivery reports that record instead of replacing a
 * source a transcode may be reading); `handler` leaves it to the handler (a transcode resumes or
 * finds its output; a chunk is encoded again and its published segments kept; static renditions
 * are remade, the same bytes again).
 */
const redelivery = {
  transcode: "handler",
  transcode_chunk: "handler",
  render_manim: "record",
  render_composition: "record",
  import_url: "record",
  static_renditions: "handler",
  // A broadcast is not run twice: a second delivery finds its feed gone (LIVE jobs have one attempt).
  live: "handler",
  // Encoded again: the same AAC bytes, so its write-once segments stand.
  audio_track: "handler",
  // A second delivery transcribes again and stores the same file.
  transcribe: "handler",
} as const satisfies Record<JobMessage["type"], "record" | "handler">;

type Redelivery = typeof redelivery;
type RecordedJob = Extract<
  JobMessage,
  { type: { [T in keyof Redelivery]: Redelivery[T] extends "record" ? T : never }[keyof Redelivery] }
>;

const runsOnceByRecord = (job: JobMessage): job is RecordedJob => redelivery[job.type] === "record";

/** Runs the handler of the job's kind. */
export function runHandler(job: JobMessage, ctx: JobContext): Promise<void> {
  // TypeScript cannot correlate `handlers[job.type]` with `job`; the `satisfies` above guarantees it.
  const handler = handlers[job.type] as JobHandler<JobMessage>;
  if (!runsOnceByRecord(job)) return handler(job, ctx);
  return runRenderOnce(job, ctx, (recordingCtx) => handler(job, recordingCtx));
}
