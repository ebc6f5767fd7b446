import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { JobMessage } from "../../src/protocol/job-message.ts";
import { log } from "../log.ts";
import type { JobContext } from "./types.ts";

/** A job that stores one output at `outputKey` (a render or an import). */
type RenderJob = Extract<JobMessage, { outputKey: string }>;
type SourceReady = Extract<JobEventBody, { type: "source.ready" }>;

/** Beside a render's output: which job stored it and what its `source.ready` said. */
interface RenderRecord {
  jobId: string;
  succeeded: SourceReady;
}

const recordKeyOf = (outputKey: string) => `${outputKey}.done.json`;

/**
 * Runs a render or import job once: its output is recorded beside it just before the job reports
 * success, and a later delivery of the same job (a transport delivered a finished job again)
 * finds the record, does no work and reports the stored output again (`alreadyDone`), instead of
 * replacing a source the job's transcode may be reading.
 */
export async function runRenderOnce(
  job: RenderJob,
  ctx: JobContext,
  run: (ctx: JobContext) => Promise<void>,
): Promise<void> {
  const recordKey = recordKeyOf(job.outputKey);
  const record = await readRecord(ctx, recordKey);
  if (record?.jobId === job.jobId && record.succeeded.outputKey === job.outputKey) {
    log.info("the job's output is complete in storage: acknowledged without work", {
      jobId: job.jobId,
      attempt: job.attempt,
    });
    await ctx.emit({ ...record.succeeded, alreadyDone: true });
    return;
  }
  await run({
    ...ctx,
    emit: async (event) => {
      if (event.type === "source.ready") {
        const file = path.join(ctx.workDir, "render-record.json");
        await writeFile(file, JSON.stringify({ jobId: job.jobId, succeeded: event } satisfies RenderRecord));
        await ctx.storage.upload(recordKey, file, { contentType: "application/json", cacheControl: "no-store" });
      }
      await ctx.emit(event);
    },
  });
}

async function readRecord(ctx: JobContext, key: string): Promise<RenderRecord | null> {
  try {
    const text = await ctx.storage.readText(key);
    return text === null ? null : (JSON.parse(text) as RenderRecord);
  } catch {
    // Unreadable: the job runs.
    return null;
  }
}
