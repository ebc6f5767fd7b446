import { queryFromInfo } from "@pothos/plugin-prisma";
import { GraphQLError } from "graphql";
import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { TERMINAL_VIDEO_STATUSES } from "../events/video-events.ts";
import type { Video } from "../generated/prisma/client.ts";
import { PlaybackPolicy, VideoSource, VideoStatus } from "../generated/prisma/enums.ts";
import { isUuid } from "../ids.ts";
import { cancelVideo, tellWorkersToCancel } from "../jobs/cancel.ts";
import { videoPrefix } from "../protocol/storage-layout.ts";
import { deleteVideoRow } from "../thumbnails/image-cache-budget.ts";
import { CMS_LIMITS, validExternalId } from "../videos/cms-fields.ts";
import { findVideoOrThrow } from "../videos/find-video.ts";
import { LADDER_ORDER } from "../videos/variants.ts";
import {
  findVideoPage,
  SearchTimeoutError,
  TITLE_SEARCH_RATE_POINTS,
  type VideoOrder,
  videoCursor,
} from "../videos/video-search.ts";
import { cmsChangeFields, MetadataEntryInput, validCmsChanges } from "./cms-fields.ts";
import { refuseMalformedIdCursors } from "./id-cursors.ts";
import { mediaUrl } from "./urls.ts";
import { mutationWork, queryWork } from "../jobs/mutation-work.ts";

export const PlaybackPolicyEnum = builder.enumType(PlaybackPolicy, {
  name: "PlaybackPolicy",
  values: {
    PUBLIC: { description: "Anyone with the URL can play it." },
    SIGNED: {
      description:
        "Playlists, segments and images need a short-lived token bound to the video; " +
        "the URLs this API hands out carry one.",
    },
  },
});

const VideoSourceEnum = builder.enumType(VideoSource, { name: "VideoSource" });

export const VideoStatusEnum = builder.enumType(VideoStatus, {
  name: "VideoStatus",
  description:
    "WAITING_FOR_UPLOAD → QUEUED → PROCESSING → READY, or FAILED, CANCELED; DISCARDED: a live broadcast whose stream keeps no recording, its media deleted when it ended.",
});

const MediaTypeEnum = builder.enumType("MediaType", {
  values: {
    VIDEO: { description: "The source has a video stream: video rungs, and an audio rung when it has sound." },
    AUDIO: {
      description: "The source is audio only (a podcast, music): AAC rungs alone, no width, height or poster.",
    },
  } as const,
});

export const VideoRef = builder.prismaObject("Video", {
  description: "A video and its HLS ladder.",
  fields: (t) => ({
    id: t.exposeID("id"),
    title: t.exposeString("title"),
    status: t.expose("status", { type: VideoStatusEnum }),
    playbackPolicy: t.expose("playbackPolicy", { type: PlaybackPolicyEnum }),
    source: t.expose("source", { type: VideoSourceEnum, description: "Where the source comes from." }),
    playable: t.exposeBoolean("playable", {
      description: "True once every rung has its first segment: playback can start.",
    }),
    error: t.exposeString("error", {
      nullable: true,
      description: "Why the video failed, in words a user can act on.",
    }),
    duration: t.exposeFloat("duration", { nullable: true, description: "Seconds, from the probe." }),
    width: t.exposeInt("width", { nullable: true, description: "Display width of the source (rotation applied)." }),
    height: t.exposeInt("height", { nullable: true }),
    fps: t.exposeFloat("fps", { nullable: true }),
    rotation: t.exposeInt("rotation", { nullable: true }),
    hasAudio: t.exposeBoolean("hasAudio", { nullable: true }),
    mediaType: t.field({
      type: MediaTypeEnum,
      nullable: true,
      description: "What the source holds, from the probe; null until it is probed.",
      // The probe sets hasAudio on every source it accepts, and a video codec only when there is video.
      resolve: (v) => (v.hasAudio === null ? null : v.videoCodec === null ? "AUDIO" : "VIDEO"),
    }),
    uploadedBytes: t.float({ resolve: (v) => Number(v.uploadedBytes) }),
    uploadSize: t.float({ nullable: true, resolve: (v) => (v.uploadSize === null ? null : Number(v.uploadSize)) }),
    playbackUrl: t.string({
      nullable: true,
      description: "The HLS master playlist, once the video is playable.",
      resolve: (v, _args, ctx) => (v.playable && v.masterKey ? mediaUrl(ctx, v.masterKey, v) : null),
    }),
    posterUrl: t.string({
      nullable: true,
      description: "A JPEG frame; with GCS or S3 storage a signed URL that expires (query it again for a fresh one).",
      resolve: (v, _args, ctx) => (v.posterKey ? mediaUrl(ctx, v.posterKey, v) : null),
    }),
    variants: t.relation("variants", {
      query: { orderBy: LADDER_ORDER },
    }),
    jobs: t.relatedConnection("jobs", {
      cursor: "id",
      description: "The video's jobs, newest first.",
      args: {
        chunks: t.arg.boolean({
          defaultValue: true,
          description:
            "False leaves out a split transcode's chunk jobs, which their transcode lists (`Job.chunks`): a long " +
            "video's chunks would fill the page.",
        }),
      },
      query: (args) => {
        // The connection's own arguments come with this field's, though its type names only the latter.
        refuseMalformedIdCursors(args as typeof args & Parameters<typeof refuseMalformedIdCursors>[0]);
        return {
          ...(args.chunks === false ? { where: { kind: { not: "TRANSCODE_CHUNK" as const } } } : {}),
          orderBy: { createdAt: "desc" },
        };
      },
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    playableAt: t.expose("playableAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
  }),
});

const VideoOrderEnum = builder.enumType("VideoOrder", {
  values: {
    CREATED_AT_DESC: { description: "Newest first." },
    CREATED_AT_ASC: { description: "Oldest first." },
    TITLE_ASC: { description: "By title, A to Z (the database's collation), then by id." },
    TITLE_DESC: { description: "By title, Z to A, then by id." },
  } satisfies Record<VideoOrder, { description: string }>,
});

const VideoFilterInput = builder.inputType("VideoFilter", {
  description: "Conditions on a tenant's videos; every one given must hold.",
  fields: (t) => ({
    titleContains: t.string({
      description:
        `A part of the title, any case: at most ${CMS_LIMITS.titleSearchLength} characters, with at least 3 letters ` +
        "or digits in a row; % and _ are literal.",
    }),
    tags: t.stringList({ description: "Videos with every one of these tags (normalized as tags are stored)." }),
    metadata: t.field({
      type: [MetadataEntryInput],
      description: "Videos whose metadata has every one of these keys with exactly this value.",
    }),
    externalId: t.string({ description: "The video with this externalId." }),
    status: t.field({ type: VideoStatusEnum }),
    source: t.field({ type: VideoSourceEnum }),
    createdFrom: t.field({ type: "DateTime", description: "Created at or after this instant." }),
    createdBefore: t.field({ type: "DateTime", description: "Created before this instant." }),
  }),
});

builder.queryFields((t) => ({
  video: t.prismaField({
    type: VideoRef,
    nullable: true,
    description: "A video of the caller's tenant; null for any other id.",
    authScopes: { scope: "videos:read" },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, { id }, ctx) =>
      isUuid(String(id))
        ? ctx.db.video.findFirst({ ...query, where: { id: String(id), tenantId: tenantOf(ctx) } })
        : null,
  }),
  videos: t.connection({
    type: VideoRef,
    description:
      "The caller's tenant's videos that match every filter given, newest first unless `orderBy` says otherwise. " +
      "Cursors are keysets (the sort key and the id): pages stay in place while videos are added.",
    authScopes: { scope: "videos:read" },
    // A title search costs its credential rate points (docs/security.md): its worst case reads every title.
    extensions: queryWork((args) =>
      (args.filter as { titleContains?: string | null } | null)?.titleContains != null ? TITLE_SEARCH_RATE_POINTS : 0,
    ),
    args: {
      status: t.arg({ type: VideoStatusEnum, description: "Only videos in this state (as `filter.status`)." }),
      filter: t.arg({ type: VideoFilterInput }),
      orderBy: t.arg({ type: VideoOrderEnum, description: "Default CREATED_AT_DESC." }),
    },
    resolve: async (_root, args, ctx, info) => {
      const order = args.orderBy ?? "CREATED_AT_DESC";
      const filter = args.filter ?? {};
      let page: Awaited<ReturnType<typeof findVideoPage>>;
      try {
        page = await findVideoPage(
          ctx.db,
          tenantOf(ctx),
          { ...filter, status: filter.status ?? args.status },
          order,
          args,
          ctx.videoSearch.titleTimeoutMs,
        );
      } catch (err) {
        if (err instanceof SearchTimeoutError)
          throw new GraphQLError(err.message, { extensions: { code: "SEARCH_TIMEOUT", field: err.field } });
        if (!(err instanceof ValidationError)) throw err;
        throw new GraphQLError(err.message, { extensions: { code: "BAD_USER_INPUT", field: err.field } });
      }
      const rows = await ctx.db.video.findMany({
        ...queryFromInfo({ context: ctx, info, typeName: "Video", path: ["edges", "node"] }),
        where: { id: { in: page.ids }, tenantId: tenantOf(ctx) },
      });
      const byId = new Map(rows.map((row) => [row.id, row]));
      const edges = page.ids.flatMap((id) => {
        const node = byId.get(id);
        return node ? [{ cursor: videoCursor(order, node), node }] : [];
      });
      return {
        edges,
        pageInfo: {
          hasNextPage: page.hasNextPage,
          hasPreviousPage: page.hasPreviousPage,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  }),
}));

const UpdateVideoInput = builder.inputType("UpdateVideoInput", {
  description:
    "What a CMS changes on a video: a field left out stays as it is, null clears it (title cannot be cleared). " +
    "The playback policy is chosen at creation only.",
  fields: (t) => ({
    id: t.id({ required: true }),
    ...cmsChangeFields(t),
    externalId: t.string({
      description: `The CMS's own id, 1 to ${CMS_LIMITS.externalIdLength} characters, unique in the tenant.`,
    }),
  }),
});

const UpdateVideoSuccess = builder.objectRef<{ video: Video }>("UpdateVideoSuccess").implement({
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

const CancelVideoSuccess = builder.objectRef<{ video: Video }>("CancelVideoSuccess").implement({
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

const DeleteVideoSuccess = builder.objectRef<{ deletedVideoId: string }>("DeleteVideoSuccess").implement({
  fields: (t) => ({ deletedVideoId: t.exposeID("deletedVideoId") }),
});

builder.mutationFields((t) => ({
  updateVideo: t.field({
    type: UpdateVideoSuccess,
    description:
      "Changes a video's title and the CMS's data on it (description, metadata, tags, externalId), in any state.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: UpdateVideoInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "UpdateVideoResult" } },
    resolve: async (_root, { input }, ctx) => {
      // The tenant's text is checked (lengths first) before anything reads the database.
      const changes = {
        ...validCmsChanges(input),
        ...(input.externalId === undefined ? {} : { externalId: validExternalId(input.externalId) }),
      };
      const video = await findVideoOrThrow(ctx, String(input.id));
      try {
        return { video: await ctx.db.video.update({ where: { id: video.id }, data: changes }) };
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "P2002") {
          throw new ValidationError("externalId", "Another video of this tenant has this externalId");
        }
        if (code === "P2025") throw new NotFoundError("video", video.id);
        throw err;
      }
    },
  }),
  cancelVideo: t.field({
    type: CancelVideoSuccess,
    description:
      "Cancels a video that is waiting for its upload, queued or processing: workers stop within seconds and clean up.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "CancelVideoResult" } },
    resolve: async (_root, { id }, ctx) => {
      await findVideoOrThrow(ctx, String(id));
      return { video: (await cancelVideo(ctx, String(id))).video };
    },
  }),
  deleteVideo: t.field({
    type: DeleteVideoSuccess,
    description: "Deletes a video, its jobs and all its media in storage; a video still processing is canceled first.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "DeleteVideoResult" } },
    resolve: async (_root, { id }, ctx) => {
      const video = await findVideoOrThrow(ctx, String(id));
      if (!TERMINAL_VIDEO_STATUSES.has(video.status)) {
        // A video that finished meanwhile (the cancel is refused) is deleted all the same.
        await cancelVideo(ctx, video.id).catch((err: unknown) => {
          if (!(err instanceof ValidationError)) throw err;
        });
      }
      // A READY video's static renditions may still be in the making: their worker stops.
      const running = await ctx.db.job.findMany({
        where: { videoId: video.id, status: { in: ["QUEUED", "RUNNING"] } },
      });
      for (const job of running) await tellWorkersToCancel(ctx.transport, job.id, job.attempt);
      await ctx.storage.deletePrefix(videoPrefix(video.id));
      await deleteVideoRow(ctx.db, video.id);
      return { deletedVideoId: video.id };
    },
  }),
}));
