import { builder } from "../builder.ts";
import type { Context } from "../context.ts";
import type { JobKind, Prisma, StaticRenditionName, Video } from "../generated/prisma/client.ts";
import { announceQueuedJob, createJob, type JobInputOf } from "../jobs/create-job.ts";
import { requestStaticRenditions } from "../jobs/queue-static-renditions.ts";
import { createVideoOnce } from "../videos/create-video-once.ts";
import { VideoRef } from "./video.ts";

export const RenderSuccess = builder.objectRef<{ video: Video }>("RenderSuccess").implement({
  description: "The video whose source is being rendered or imported; follow it with `videoEvents`.",
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

/** The kinds of job that make a video's source. */
type SourceJobKind = Exclude<JobKind, "TRANSCODE">;
type SourceJob = { [K in SourceJobKind]: { kind: K; input: JobInputOf<K> } }[SourceJobKind];

/**
 * Creates a video whose source a worker makes (a render, an import) and queues its first job;
 * with an idempotency key an earlier call's video is returned as it is.
 */
export async function createRenderedVideo(
  ctx: Context,
  options: {
    title: string;
    idempotencyKey: string | null;
    playbackPolicy: "PUBLIC" | "SIGNED";
    /** How the transcode of the made source packages its segments; default TS. */
    segmentFormat?: "TS" | "FMP4" | null;
    source: "URL" | "MANIM" | "COMPOSITION";
    /** Loudness and watermark its transcode applies (validFinishing). */
    finishing?: Prisma.InputJsonValue;
    /** Static renditions to make once the video is READY. */
    staticRenditions?: readonly StaticRenditionName[] | null;
  } & SourceJob,
): Promise<Video> {
  const { video, created } = await createVideoOnce(ctx, options.idempotencyKey, {
    title: options.title,
    playbackPolicy: options.playbackPolicy,
    segmentFormat: options.segmentFormat ?? "TS",
    source: options.source,
    status: "QUEUED",
    finishing: options.finishing,
  });
  if (!created) return video;
  if (options.staticRenditions?.length) await requestStaticRenditions(ctx.db, video.id, options.staticRenditions);
  const job = { kind: options.kind, input: options.input } as SourceJob;
  await createJob(ctx.db, { videoId: video.id, maxAttempts: ctx.maxAttempts, ...job }, ctx.costs);
  announceQueuedJob(ctx, video);
  return video;
}
