import { refuseStaticRenditions } from "../content-protection/protection-choice.ts";
import { builder } from "../builder.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { StaticRenditionName as StaticRenditionNames, StaticRenditionStatus } from "../generated/prisma/enums.ts";
import { announceQueuedJob } from "../jobs/create-job.ts";
import { queueStaticRenditions, requestStaticRenditions } from "../jobs/queue-static-renditions.ts";
import { lockVideo } from "../jobs/video-lock.ts";
import { downloadFilename } from "../videos/download-filename.ts";
import { findVideoOrThrow } from "../videos/find-video.ts";
import { mediaUrl } from "./urls.ts";
import { VideoRef } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

export const StaticRenditionNameEnum = builder.enumType(StaticRenditionNames, {
  name: "StaticRenditionName",
  values: {
    HIGHEST: { description: "MP4 of the highest video rung, with the audio." },
    LOW: { description: "MP4 of a small video rung (the lowest at least 270 on its short side), with the audio." },
    AUDIO: { description: "M4A: the audio alone (AAC)." },
  },
});

const StaticRenditionStatusEnum = builder.enumType(StaticRenditionStatus, {
  name: "StaticRenditionStatus",
  values: {
    PREPARING: { description: "Asked for; it is made once the video is READY." },
    READY: { description: "Stored: `url` serves it." },
    FAILED: { description: "It could not be made (`error` says why); the video is not affected. Ask again to retry." },
    SKIPPED: { description: "The video has nothing to make it from (`error` says what): no audio, or no video." },
  },
});

builder.prismaObject("StaticRendition", {
  description:
    "A progressive file beside the HLS ladder (MP4 or M4A), remuxed from the ladder's rungs for downloads and " +
    "players without HLS. Its status is its own: the video is READY (and playable) without it.",
  fields: (t) => ({
    name: t.expose("name", { type: StaticRenditionNameEnum }),
    status: t.expose("status", { type: StaticRenditionStatusEnum }),
    width: t.exposeInt("width", { nullable: true }),
    height: t.exposeInt("height", { nullable: true }),
    bitrate: t.exposeInt("bitrate", { nullable: true, description: "Average bits per second of the file." }),
    sizeBytes: t.float({ nullable: true, resolve: (r) => (r.sizeBytes === null ? null : Number(r.sizeBytes)) }),
    error: t.exposeString("error", { nullable: true, description: "Why it FAILED or was SKIPPED." }),
    url: t.string({
      nullable: true,
      description:
        "The file, once READY; it answers HTTP Range requests. A SIGNED video's URL carries a short-lived token; " +
        "with GCS or S3 storage it is a signed URL that expires (query it again for a fresh one).",
      select: { video: { select: { id: true, playbackPolicy: true } } },
      resolve: (r, _args, ctx) => (r.status === "READY" && r.key ? mediaUrl(ctx, r.key, r.video) : null),
    }),
    downloadUrl: t.string({
      nullable: true,
      description:
        "`url` for a download: its response says `Content-Disposition: attachment` with a file name made " +
        "from the video's title.",
      select: { video: { select: { id: true, playbackPolicy: true, title: true } } },
      resolve: (r, _args, ctx) => {
        if (r.status !== "READY" || !r.key) return null;
        const name = downloadFilename(r.video.title, r.name.toLowerCase(), r.name === "AUDIO" ? "m4a" : "mp4");
        return mediaUrl(ctx, r.key, r.video, name);
      },
    }),
    readyAt: t.expose("readyAt", { type: "DateTime", nullable: true }),
  }),
});

builder.prismaObjectFields("Video", (t) => ({
  staticRenditions: t.relation("staticRenditions", {
    description: "The static renditions asked for (createUpload's `staticRenditions`, requestStaticRenditions).",
    query: { orderBy: { name: "asc" } },
  }),
}));

/** What the create mutations' `staticRenditions` input field says. */
export const STATIC_RENDITIONS_INPUT =
  "Static renditions to make once the video is READY (after the HLS ladder: they never delay `playable`); " +
  "they are listed in `Video.staticRenditions` as PREPARING until then. Default: none.";

const RequestStaticRenditionsSuccess = builder
  .objectRef<{ video: Video }>("RequestStaticRenditionsSuccess")
  .implement({ fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }) });

builder.mutationFields((t) => ({
  requestStaticRenditions: t.field({
    type: RequestStaticRenditionsSuccess,
    description:
      "Asks for static renditions of a video. A READY video's are made now (a STATIC_RENDITIONS job); a video " +
      "still waiting or encoding gets them once it is READY. Asking again for one PREPARING, READY or SKIPPED " +
      "changes nothing; one that FAILED is made again.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["STATIC_RENDITIONS"] }),
    args: {
      videoId: t.arg.id({ required: true }),
      names: t.arg({ type: [StaticRenditionNameEnum], required: true }),
    },
    errors: { types: [ValidationError, NotFoundError], union: { name: "RequestStaticRenditionsResult" } },
    resolve: async (_root, args, ctx) => {
      const found = await findVideoOrThrow(ctx, String(args.videoId));
      const names = args.names;
      if (names.length === 0) throw new ValidationError("names", "Name at least one rendition");
      refuseStaticRenditions(found.contentProtection, names.length);
      const { video, job } = await ctx.db.$transaction(async (tx) => {
        const status = await lockVideo(tx, found.id);
        if (status === null) throw new NotFoundError("video", found.id);
        if (status === "FAILED" || status === "CANCELED") {
          throw new ValidationError("videoId", `The video is ${status}; it has no rungs to make renditions from`);
        }
        await requestStaticRenditions(tx, found.id, names);
        const job = await queueStaticRenditions(tx, found.id, { maxAttempts: ctx.maxAttempts, costs: ctx.costs });
        return { video: await tx.video.findUniqueOrThrow({ where: { id: found.id } }), job };
      });
      if (job) announceQueuedJob(ctx, video);
      return { video };
    },
  }),
}));
