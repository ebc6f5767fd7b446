import type { JobMessage } from "../../src/protocol/messages.ts";
import type { JobContext } from "./types.ts";
import { renderManim } from "./render-manim.ts";
import { importUrl } from "./import-url.ts";
import { renderComposition } from "./render-composition.ts";
import { runRenderOnce } from "./render-record.ts";
import { transcode } from "./transcode.ts";

type Handlers = { [K in JobMessage["type"]]: (job: Extract<JobMessage, { type: K }>, ctx: JobContext) => Promise<void> };

/** One handler per job kind; a kind missing here fails to type-check. */
export const handlers: Handlers = {
  transcode,
  render_manim: renderManim,
  render_composition: renderComposition,
  import_url: importUrl,
};

/** Runs the handler of the job's kind. */
export function runHandler(job: JobMessage, ctx: JobContext): Promise<void> {
  // TypeScript cannot correlate `handlers[job.type]` with `job`; the mapped type above guarantees it.
  const handler = handlers[job.type] as (job: JobMessage, ctx: JobContext) => Promise<void>;
  if (job.type === "transcode") return handler(job, ctx);
  return runRenderOnce(job, ctx, (recordingCtx) => handler(job, recordingCtx));
}
