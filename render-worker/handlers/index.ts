import type { JobMessage } from "../../src/protocol/messages.ts";
import { importUrl } from "./import-url.ts";
import { renderComposition } from "./render-composition.ts";
import { renderManim } from "./render-manim.ts";
import { runRenderOnce } from "./render-record.ts";
import { makeStaticRenditions } from "./static-renditions.ts";
import { transcode } from "./transcode.ts";
import type { JobContext, JobHandler } from "./types.ts";

/**
 * One handler per job kind, keyed by the message's `type`: a kind added to the contract's
 * JobMessage fails to type-check here until it has a handler.
 */
const handlers = {
  transcode,
  render_manim: renderManim,
  render_composition: renderComposition,
  import_url: importUrl,
  static_renditions: makeStaticRenditions,
} satisfies { [Type in JobMessage["type"]]: JobHandler<Extract<JobMessage, { type: Type }>> };

/** Runs the handler of the job's kind. */
export function runHandler(job: JobMessage, ctx: JobContext): Promise<void> {
  // TypeScript cannot correlate `handlers[job.type]` with `job`; the `satisfies` above guarantees it.
  const handler = handlers[job.type] as JobHandler<JobMessage>;
  // A transcode resumes or finds its output; static renditions are remade (the same bytes again).
  if (job.type === "transcode" || job.type === "static_renditions") return handler(job, ctx);
  return runRenderOnce(job, ctx, (recordingCtx) => handler(job, recordingCtx));
}
