import type {
  StaticRenditionOutcome,
  StaticRenditionsJobMessage,
} from "../../src/protocol/static-rendition-messages.ts";
import { staticRenditionKey } from "../../src/protocol/storage-layout.ts";
import { log } from "../log.ts";
import { abortError, MediaError } from "../media/errors.ts";
import { remuxRendition } from "../media/mp4-remux.ts";
import type { JobContext } from "./types.ts";

const CONTENT_TYPES = { mp4: "video/mp4", m4a: "audio/mp4" } as const;

/**
 * Makes a READY video's static renditions from its published HLS rungs (a remux, no encode) and
 * stores them under `{outputPrefix}/mp4/`. A rendition whose media cannot be remuxed fails alone
 * and the job still ends with `static_renditions.done`; anything else (storage, a cancel) is
 * thrown, so the attempt is retried. Doing it again replaces the files with the same bytes.
 */
export async function makeStaticRenditions(job: StaticRenditionsJobMessage, ctx: JobContext): Promise<void> {
  await ctx.emit({ type: "job.started" });
  const outcomes: StaticRenditionOutcome[] = [];
  for (const plan of job.renditions) {
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    const key = staticRenditionKey(job.outputPrefix, plan.name);
    try {
      const made = await remuxRendition(ctx.storage, job.outputPrefix, plan, ctx.workDir, ctx.signal);
      const extension = plan.name === "AUDIO" ? "m4a" : "mp4";
      await ctx.storage.upload(key, made.file, {
        contentType: CONTENT_TYPES[extension],
        cacheControl: "public, max-age=300",
      });
      const bitrate = Math.round((made.sizeBytes * 8) / made.durationSeconds);
      const { width, height, sizeBytes } = made;
      outcomes.push({ name: plan.name, status: "READY", key, width, height, bitrate, sizeBytes });
    } catch (err) {
      if (!(err instanceof MediaError) || ctx.signal.aborted) throw err;
      log.warn("a static rendition failed", { jobId: job.jobId, rendition: plan.name, error: err.message });
      outcomes.push({ name: plan.name, status: "FAILED", error: err.message });
    }
  }
  await ctx.emit({ type: "static_renditions.done", renditions: outcomes });
}
