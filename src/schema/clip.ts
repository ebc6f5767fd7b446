import { builder } from "../builder.ts";
import { NotFoundError, SourceUnavailableError, ValidationError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { createClip } from "../videos/create-clip.ts";
import { validTitle } from "../videos/input-rules.ts";
import { creationOptionFields, validCreationOptions } from "./creation-options.ts";
import { PlaybackPolicyEnum, VideoRef } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const CreateClipInput = builder.inputType("CreateClipInput", {
  fields: (t) => ({
    sourceVideoId: t.id({ required: true, description: "A READY video of the caller's tenant." }),
    start: t.float({ required: true, description: "Seconds into the source video where the clip starts." }),
    end: t.float({ required: true, description: "Seconds into the source video where the clip ends." }),
    title: t.string({ description: "Default: the source video's title with “(clip)”." }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum, description: "Default: the source video's." }),
    ...creationOptionFields(t, "source video"),
  }),
});

const CreateClipSuccess = builder.objectRef<{ video: Video }>("CreateClipSuccess").implement({
  description: "The clip, a new video being encoded; follow it with `videoEvents`.",
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

type ClipFields = Pick<Video, "clipOfId" | "clipStart" | "clipEnd" | "tenantId">;

const VideoClipRef = builder.objectRef<ClipFields>("VideoClip").implement({
  description: "What a clip was cut from.",
  fields: (t) => ({
    sourceVideo: t.prismaField({
      type: VideoRef,
      nullable: true,
      description: "The video whose source the clip was cut from; null once it was deleted.",
      resolve: (query, clip, _args, ctx) =>
        clip.clipOfId
          ? ctx.db.video.findFirst({ ...query, where: { id: clip.clipOfId, tenantId: clip.tenantId } })
          : null,
    }),
    start: t.float({ description: "Seconds into the source video.", resolve: (clip) => clip.clipStart! }),
    end: t.float({ description: "Seconds into the source video.", resolve: (clip) => clip.clipEnd! }),
  }),
});

builder.prismaObjectFields("Video", (t) => ({
  clip: t.field({
    type: VideoClipRef,
    nullable: true,
    description: "For a clip (createClip): the video and range it was cut from; null for any other video.",
    select: { clipOfId: true, clipStart: true, clipEnd: true, tenantId: true },
    resolve: (video) => (video.clipStart === null || video.clipEnd === null ? null : video),
  }),
}));

builder.mutationFields((t) => ({
  createClip: t.field({
    type: CreateClipSuccess,
    description:
      "Cuts a new video from a range of a READY video, frame-accurately: its stored source is encoded again from " +
      "`start` to `end` through the usual ladder (progress, playable and READY as for an upload). For a clip " +
      "without an encode, add `asset_start_time` and `asset_end_time` to a playback URL instead. The clip has " +
      "the source video's segment format, loudness target and watermark unless it chooses otherwise; static " +
      "renditions and the CMS's data (description, metadata, tags, externalId) are its own.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["TRANSCODE"] }),
    args: { input: t.arg({ type: CreateClipInput, required: true }) },
    errors: {
      types: [ValidationError, NotFoundError, SourceUnavailableError],
      union: { name: "CreateClipResult" },
    },
    resolve: async (_root, { input }, ctx) => {
      const sourceVideoId = String(input.sourceVideoId);
      const video = await createClip(ctx, {
        sourceVideoId,
        start: input.start,
        end: input.end,
        title: input.title === null || input.title === undefined ? null : validTitle(input.title),
        playbackPolicy: input.playbackPolicy ?? null,
        options: (inherited) => validCreationOptions(ctx, input, inherited),
      });
      return { video };
    },
  }),
}));
