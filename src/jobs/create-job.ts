import { z } from "zod";
import type { Db } from "../db/client.ts";
import { videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import { DEFAULT_COST_SETTINGS, type CostSettings } from "../costs/cost-model.ts";
import { estimateAtEnqueue } from "../costs/job-cost.ts";
import { assertJobDeclared } from "./mutation-work.ts";
import type { Job, JobKind, Prisma, Video } from "../generated/prisma/client.ts";
import {
  ImportUrlJobMessage,
  LiveJobMessage,
  RenderCompositionJobMessage,
  RenderManimJobMessage,
  StaticRenditionsJobMessage,
  TranscodeChunkJobMessage,
  TranscodeOptions,
  type Capability,
} from "../protocol/messages.ts";
import { traceparentOf } from "../shared/tracing.ts";

/**
 * What a job row stores for each kind, as the contract's message schema of that kind checks it:
 * parsed before the row is written and again when the job's message is built. A transcode keeps
 * its rungs in `Job.rungs`; every other kind keeps its input in `Job.input`.
 */
export const jobInputSchemas = {
  TRANSCODE: z.object({ rungs: TranscodeOptions.shape.rungs }),
  RENDER_MANIM: RenderManimJobMessage.pick({ code: true, sceneName: true, quality: true, renderer: true }),
  RENDER_COMPOSITION: RenderCompositionJobMessage.pick({
    template: true,
    questions: true,
    secondsPerQuestion: true,
    narration: true,
    assets: true,
    width: true,
    height: true,
  }),
  IMPORT_URL: ImportUrlJobMessage.pick({ url: true }),
  STATIC_RENDITIONS: StaticRenditionsJobMessage.pick({ renditions: true }),
  TRANSCODE_CHUNK: TranscodeChunkJobMessage.pick({ chunk: true, ladder: true, source: true }),
  LIVE: LiveJobMessage.pick({ feedUrl: true, input: true, options: true }),
} satisfies Record<JobKind, z.ZodType>;

/** A job's input as its caller gives it (defaults not yet applied). */
export type JobInputOf<K extends JobKind> = z.input<(typeof jobInputSchemas)[K]>;
/** A job's input as stored and read back. */
export type StoredJobInput<K extends JobKind> = z.output<(typeof jobInputSchemas)[K]>;

/** The worker capability each kind of job needs; its queue is named after it. */
export const jobCapability = {
  TRANSCODE: "cpu",
  RENDER_MANIM: "manim",
  RENDER_COMPOSITION: "cpu",
  IMPORT_URL: "cpu",
  STATIC_RENDITIONS: "cpu",
  // Chunks are encoded with libx264, as the split run that planned them (only a cpu run splits).
  TRANSCODE_CHUNK: "cpu",
  // A queue of its own: a broadcast holds a slot for as long as it lasts, beside the cpu slots.
  LIVE: "live",
} as const satisfies Record<JobKind, Capability>;

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
  const result = (jobInputSchemas[kind] as z.ZodType).safeParse(input);
  if (!result.success) throw new Error(`The ${kind} job's input is invalid: ${z.prettifyError(result.error)}`);
  return result.data as StoredJobInput<K>;
}

/**
 * Writes a QUEUED job in the caller's transaction (the row is the outbox the dispatcher publishes
 * from), a transcode with its estimated cost. Once the transaction commits, the caller calls
 * `announceQueuedJob`. The job keeps the active span's trace context, so its messages continue the
 * trace of what created it.
 */
export async function createJob(
  tx: Pick<Db, "job" | "video" | "variant">,
  job: NewJob,
  costs: CostSettings = DEFAULT_COST_SETTINGS,
): Promise<Job> {
  assertJobDeclared(job.kind);
  const traceparent = traceparentOf();
  const common = {
    videoId: job.videoId,
    kind: job.kind,
    capability: jobCapability[job.kind],
    maxAttempts: job.maxAttempts,
    ...(job.parentId === undefined ? {} : { parentId: job.parentId }),
    ...(traceparent === undefined ? {} : { traceparent }),
  };
  if (job.kind === "TRANSCODE") {
    const { rungs } = parseJobInput("TRANSCODE", job.input);
    const estimate = await estimateAtEnqueue(tx, costs, { ...common, rungs: rungs ?? [] });
    return tx.job.create({ data: { ...common, ...(rungs ? { rungs } : {}), ...estimate } });
  }
  const input = parseJobInput(job.kind, job.input);
  // Through JSON: the stored value is what the message builder reads back (no undefined keys).
  const stored = JSON.parse(JSON.stringify(input)) as Prisma.InputJsonValue;
  const remuxed =
    job.kind === "STATIC_RENDITIONS"
      ? (input as StoredJobInput<"STATIC_RENDITIONS">).renditions.flatMap((r) =>
          [r.videoRung, r.audioRung].filter((name): name is string => name !== null),
        )
      : [];
  const estimate =
    job.kind === "TRANSCODE_CHUNK"
      ? await estimateChunk(tx, costs, common, input as StoredJobInput<"TRANSCODE_CHUNK">)
      : await estimateAtEnqueue(tx, costs, { ...common, rungs: [...new Set(remuxed)] });
  return tx.job.create({ data: { ...common, input: stored, ...estimate } });
}

/**
 * The estimate columns of a split transcode's chunk: a transcode of its part of the source, its
 * video rungs only (none before the source is probed).
 */
export function estimateChunk(
  tx: Pick<Db, "video" | "variant">,
  costs: CostSettings,
  job: { videoId: string; capability: string },
  input: StoredJobInput<"TRANSCODE_CHUNK">,
) {
  return estimateAtEnqueue(tx, costs, {
    kind: "TRANSCODE_CHUNK",
    videoId: job.videoId,
    capability: job.capability,
    rungs: input.ladder.map((r) => r.name),
    seconds: input.chunk.toSeconds - input.chunk.fromSeconds,
  });
}

/** After the transaction that queued a job commits: dispatch it now and tell the video's subscribers. */
export function announceQueuedJob(deps: { dispatcher: { kick(): void }; pubSub: VideoPubSub }, video: Video): void {
  deps.dispatcher.kick();
  deps.pubSub.publish("videoEvents", video.id, { kind: "status", video: videoSnapshot(video) });
}
