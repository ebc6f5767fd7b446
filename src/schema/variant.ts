import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { Job, Variant, Video } from "../generated/prisma/client.ts";
import { VariantKind, VariantStatus } from "../generated/prisma/enums.ts";
import { retryVariant } from "../jobs/retry-variant.ts";
import { hlsLayout, videoPrefix } from "../protocol/storage-layout.ts";
import { JobRef } from "./job.ts";
import { mediaUrl } from "./urls.ts";
import { VideoRef } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const VariantStatusEnum = builder.enumType(VariantStatus, { name: "VariantStatus" });
const VariantKindEnum = builder.enumType(VariantKind, { name: "VariantKind" });

export const VariantRef = builder.prismaObject("Variant", {
  description: "One rung of the HLS ladder.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    kind: t.expose("kind", { type: VariantKindEnum }),
    width: t.exposeInt("width", { nullable: true }),
    height: t.exposeInt("height", { nullable: true }),
    bandwidth: t.exposeInt("bandwidth", {
      description:
        "The ladder's bound on the rung's peak bits per second (a video rung's counts the audio it plays " +
        "with): what the master playlist declares while the video encodes. Once every segment is " +
        "published, the master states the measured peak and AVERAGE-BANDWIDTH instead, at most this.",
    }),
    peakBitRate: t.exposeInt("peakBitRate", {
      nullable: true,
      description:
        "What the rung's published segments carry at their peak, in bits per second (RFC 8216: the highest " +
        "rate over any run of segments lasting 0.5 to 1.5 target durations), of this rendition alone; a " +
        "finished master's BANDWIDTH is a video rung's peak plus its audio's. Measured once the rung is " +
        "READY; null before, and where its segments were not all measured.",
    }),
    averageBitRate: t.exposeInt("averageBitRate", {
      nullable: true,
      description:
        "The rung's bytes over its length, in bits per second, of this rendition alone (a finished master's " +
        "AVERAGE-BANDWIDTH adds its audio's): what a viewer fetches per second watched. Measured once the " +
        "rung is READY; null before, and where its segments were not all measured.",
    }),
    codecs: t.exposeString("codecs"),
    bitrate: t.exposeInt("bitrate", {
      nullable: true,
      description:
        "The encoder's target bits per second, without the MPEG-TS overhead `bandwidth` counts; " +
        "set on an audio-only video's rungs.",
    }),
    status: t.expose("status", { type: VariantStatusEnum }),
    progress: t.exposeFloat("progress", { description: "Media time of finished segments over duration, 0..1." }),
    segmentCount: t.exposeInt("segmentCount"),
    error: t.exposeString("error", { nullable: true }),
    playlistUrl: t.string({
      nullable: true,
      description:
        "The rung's media playlist, once its first segment is published; null again when its video is DISCARDED (its media deleted).",
      select: { video: { select: { id: true, playbackPolicy: true, status: true } } },
      resolve: (variant, _args, ctx) =>
        (variant.status === "READY" || variant.segmentCount > 0) && variant.video.status !== "DISCARDED"
          ? mediaUrl(ctx, hlsLayout(videoPrefix(variant.videoId)).playlistKey(variant.name), variant.video)
          : null,
    }),
  }),
});

const RetryVariantSuccess = builder
  .objectRef<{ variant: Variant; video: Video; job: Job }>("RetryVariantSuccess")
  .implement({
    fields: (t) => ({
      variant: t.field({ type: VariantRef, resolve: (r) => r.variant }),
      video: t.field({ type: VideoRef, resolve: (r) => r.video }),
      job: t.field({ type: JobRef, resolve: (r) => r.job }),
    }),
  });

builder.mutationFields((t) => ({
  retryVariant: t.field({
    type: RetryVariantSuccess,
    description:
      "Encodes one FAILED variant again, alone: the other rungs are not touched and the master playlist keeps " +
      "listing the whole ladder. Allowed when the video is READY or FAILED; " +
      "the video is PROCESSING until the rung is READY.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["TRANSCODE"] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "RetryVariantResult" } },
    resolve: (_root, { id }, ctx) => retryVariant(ctx, String(id), tenantOf(ctx)),
  }),
}));
