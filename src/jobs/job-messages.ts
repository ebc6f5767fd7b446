import type { Job } from "../generated/prisma/client.ts";
import type { VideoWithKey } from "../content-protection/job-protection.ts";
import { PROTOCOL_VERSION } from "../protocol/version.ts";
import type { JobMessage } from "../protocol/job-message.ts";
import { parseJobInput } from "./create-job.ts";
import { JOB_KINDS } from "./kinds/index.ts";
import type { JobKindModule, JobMessageSettings } from "./kinds/job-kind-module.ts";

/**
 * The message for a job's current attempt, built from its row at every dispatch (so a retried
 * attempt carries the same input) by its kind's module. Throws when the row's input does not fit
 * its kind's schema.
 */
export function buildJobMessage(job: Job, video: VideoWithKey, settings: JobMessageSettings): JobMessage {
  const envelope = { v: PROTOCOL_VERSION, jobId: job.id, attempt: job.attempt, videoId: job.videoId };
  const kind = JOB_KINDS[job.kind] as JobKindModule;
  const input = parseJobInput(job.kind, kind.row.read(job));
  return kind.buildMessage({ job, video, input, settings, envelope });
}
