import { tenantOf, type Context } from "../context.ts";
import { SourceUnavailableError, ValidationError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { announceQueuedJob, createJob } from "../jobs/create-job.ts";
import { type CreationOptions, createVideo, type InheritedOptions, inheritedOptions } from "./creation-options.ts";
import { createOnce } from "./create-video-once.ts";
import { findVideoOrThrow } from "./find-video.ts";

/** A clip shorter than this is a frame or none. */
const MIN_CLIP_SECONDS = 0.1;
/** Probed durations are rounded; an end this close past the video's end is its end. */
const END_SLACK_SECONDS = 0.001;

export interface ClipRequest {
  sourceVideoId: string;
  start: number;
  end: number;
  /** Null: the source video's title with “(clip)”. */
  title: string | null;
  /** Null: the source video's. */
  playbackPolicy: "PUBLIC" | "SIGNED" | null;
  /** The clip's creation options, from what it inherits from the source video. */
  options: (inherited: InheritedOptions) => Promise<CreationOptions>;
}

/** `start` and `end` (seconds of `source`) when they make a clip of it; else a ValidationError naming the field. */
function validClipRange(start: number, end: number, duration: number): { start: number; end: number } {
  if (!Number.isFinite(start) || start < 0) throw new ValidationError("start", "start must be 0 or more seconds");
  if (!Number.isFinite(end) || end <= start) throw new ValidationError("end", "end must be after start");
  if (end - start < MIN_CLIP_SECONDS) {
    throw new ValidationError("end", `A clip lasts at least ${MIN_CLIP_SECONDS} s`);
  }
  if (start > duration - MIN_CLIP_SECONDS) {
    throw new ValidationError("start", `start must be before the video's end (${duration.toFixed(3)} s)`);
  }
  if (end > duration + END_SLACK_SECONDS) {
    throw new ValidationError("end", `end must be at most the video's duration (${duration.toFixed(3)} s)`);
  }
  return { start, end: Math.min(end, duration) };
}

/**
 * Creates a clip: a new video whose transcode encodes `start`–`end` of a READY video's stored source, cut
 * frame-accurately (a clip of a clip cuts the same source, moved by the first clip's start). It inherits the
 * source video's segment format and media filters unless `request.options` says otherwise.
 */
export async function createClip(ctx: Context, request: ClipRequest): Promise<Video> {
  const source = await findVideoOrThrow(ctx, request.sourceVideoId);
  if (source.status !== "READY" || source.duration === null) {
    const status = source.status.toLowerCase().replace(/_/g, " ");
    throw new SourceUnavailableError(source.id, `The video is ${status}: only a READY video can be clipped`);
  }
  const range = validClipRange(request.start, request.end, source.duration);
  if (!source.sourceKey || (await ctx.storage.size(source.sourceKey)) === null) {
    throw new SourceUnavailableError(source.id, "The video's source file is no longer stored: it cannot be clipped");
  }
  const options = await request.options(inheritedOptions(source));
  const offset = source.clipStart ?? 0;
  const { video, created } = await createOnce(ctx, { idempotencyKey: null, externalId: options.externalId }, () =>
    ctx.db.$transaction(async (tx) => {
      const created = await createVideo(
        tx,
        {
          tenantId: tenantOf(ctx),
          title: request.title ?? `${source.title.slice(0, 293)} (clip)`,
          playbackPolicy: request.playbackPolicy ?? source.playbackPolicy,
          source: "CLIP",
          status: "QUEUED",
          sourceKey: source.sourceKey,
          sourceName: source.sourceName,
          // The video whose source the range is of: a clip of a clip names the first clip's source video.
          clipOfId: source.clipStart === null ? source.id : source.clipOfId,
          clipStart: offset + range.start,
          clipEnd: offset + range.end,
          uploadedAt: new Date(),
        },
        options,
      );
      await createJob(
        tx,
        { videoId: created.id, kind: "TRANSCODE", input: {}, maxAttempts: ctx.maxAttempts },
        ctx.costs,
      );
      return created;
    }),
  );
  if (created) announceQueuedJob(ctx, video);
  return video;
}
