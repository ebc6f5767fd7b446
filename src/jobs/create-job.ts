import { z } from "zod";
import type { Db } from "../db/client.ts";
import { videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import { assertJobDeclared } from "./mutation-work.ts";
import type { Job, JobKind, Video } from "../generated/prisma/client.ts";
import { traceparentOf } from "../shared/tracing.ts";
import { JOB_KINDS } from "./kinds/index.ts";
import type { JobKindModule } from "./kinds/job-kind-module.ts";

/** A job's input as its caller gives it (defaults not yet applied): its kind's `input` schema (`src/jobs/kinds/`). */
export type JobInputOf<K extends JobKind> = z.input<(typeof JOB_KINDS)[K]["input"]>;
/** A job's input as stored and read back. */
export type StoredJobInput<K extends JobKind> = z.output<(typeof JOB_KINDS)[K]["input"]>;

export type NewJob = {
  [K in JobKind]: {
    kind: K;
    videoId: string;
    input: JobInputOf<K>;
    maxAttempts: number;
    /** The job whose output this one works on (a render's transcode), or that split into it (a chunk). */
    parentId?: string;
  };
}[JobKind];

/** A job's stored input, checked by its kind's schema; throws with the schema's reasons when it does not fit. */
export function parseJobInput<K extends JobKind>(kind: K, input: unknown): StoredJobInput<K> {
  const result = (JOB_KINDS[kind].input as z.ZodType).safeParse(input);
  if (!result.success) throw new Error(`The ${kind} job's input is invalid: ${z.prettifyError(result.error)}`);
  return result.data as StoredJobInput<K>;
}

/**
 * Writes a QUEUED job in the caller's transaction (the row is the outbox the dispatcher publishes
 * from), with the estimate its kind gives it. Once the transaction commits, the caller calls
 * `announceQueuedJob`. The job keeps the active span's trace context, so its messages continue the
 * trace of what created it.
 */
export async function createJob(
  tx: Pick<Db, "job" | "video" | "variant">,
  job: NewJob,
  costs: CostSettings,
): Promise<Job> {
  assertJobDeclared(job.kind);
  const kind = JOB_KINDS[job.kind] as JobKindModule;
  const traceparent = traceparentOf();
  const common = {
    videoId: job.videoId,
    kind: job.kind,
    capability: kind.capability,
    maxAttempts: job.maxAttempts,
    ...(job.parentId === undefined ? {} : { parentId: job.parentId }),
    ...(traceparent === undefined ? {} : { traceparent }),
  };
  const input = parseJobInput(job.kind, job.input);
  const estimate = await kind.estimateAtEnqueue(tx, costs, common, input);
  return tx.job.create({ data: { ...common, ...kind.row.write(input), ...estimate } });
}

/** After the transaction that queued a job commits: dispatch it now and tell the video's subscribers. */
export function announceQueuedJob(deps: { dispatcher: { kick(): void }; pubSub: VideoPubSub }, video: Video): void {
  deps.dispatcher.kick();
  deps.pubSub.publish("videoEvents", video.id, { kind: "status", video: videoSnapshot(video) });
}
