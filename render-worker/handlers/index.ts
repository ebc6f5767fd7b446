import type { JobMessage } from "../../src/protocol/messages.ts";
import type { JobContext } from "./types.ts";
import { renderManim } from "./render-manim.ts";
import { transcode } from "./transcode.ts";

type Handlers = { [K in JobMessage["type"]]: (job: Extract<JobMessage, { type: K }>, ctx: JobContext) => Promise<void> };

/** One handler per job kind; a kind missing here fails to type-check. */
export const handlers: Handlers = {
  transcode,
  render_manim: renderManim,
};

/** Runs the handler of the job's kind. */
export function runHandler(job: JobMessage, ctx: JobContext): Promise<void> {
  switch (job.type) {
    case "transcode":
      return handlers.transcode(job, ctx);
    case "render_manim":
      return handlers.render_manim(job, ctx);
  }
}
