import type { Context } from "../context.ts";
import type { JobKind, Video } from "../generated/prisma/client.ts";
import { announceQueuedJob, createJob, type JobInputOf } from "../jobs/create-job.ts";
import { createVideoOnce } from "./create-video-once.ts";
import type { CreationOptions } from "./creation-options.ts";

/** The kinds of job that make a video's source. */
type SourceJobKind = Exclude<JobKind, "TRANSCODE">;
type SourceJob = { [K in SourceJobKind]: { kind: K; input: JobInputOf<K> } }[SourceJobKind];

/**
 * Creates a video whose source a worker makes (a render, an import) and queues its first job;
 * with an idempotency key an earlier call's video is returned as it is.
 */
export async function createRenderedVideo(
  ctx: Context,
  request: {
    title: string;
    idempotencyKey: string | null;
    playbackPolicy: "PUBLIC" | "SIGNED";
    source: "URL" | "MANIM" | "COMPOSITION";
    /** What its creator chose (validCreationOptions). */
    options: CreationOptions;
  } & SourceJob,
): Promise<Video> {
  const { video, created } = await createVideoOnce(
    ctx,
    request.idempotencyKey,
    { title: request.title, playbackPolicy: request.playbackPolicy, source: request.source, status: "QUEUED" },
    request.options,
  );
  if (!created) return video;
  const job = { kind: request.kind, input: request.input } as SourceJob;
  await createJob(ctx.db, { videoId: video.id, maxAttempts: ctx.maxAttempts, ...job }, ctx.costs);
  announceQueuedJob(ctx, video);
  return video;
}
