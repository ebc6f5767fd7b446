import { GraphQLError } from "graphql";
import { builder } from "../builder.ts";
import { randomBytes } from "node:crypto";
import { tenantOf, type Context } from "../context.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import type { Prisma, Video } from "../generated/prisma/client.ts";
import {
  TERMINAL_VIDEO_STATUSES,
  videoSnapshot,
  type VideoEventMessage,
  type VideoEventPayload,
} from "../events/video-events.ts";
import { cancelVideo } from "../jobs/cancel.ts";
import { completeUpload, queueUploadedVideo, sourceKeyFor } from "../uploads/complete-upload.ts";
import { UploadTooLargeError } from "../storage/types.ts";
import { mediaUrl } from "./urls.ts";
import { VariantRef } from "./variant.ts";
import { isUuid } from "../ids.ts";

export const PlaybackPolicyEnum = builder.enumType("PlaybackPolicy", {
  values: {
    PUBLIC: { description: "Anyone with the URL can play it." },
    SIGNED: { description: "Playlists, segments and images need a short-lived token bound to the video; the URLs this API hands out carry one." },
  } as const,
});

export const VideoSourceEnum = builder.enumType("VideoSource", { values: ["UPLOAD", "URL", "MANIM", "COMPOSITION"] as const });

export const VideoStatusEnum = builder.enumType("VideoStatus", {
  values: ["WAITING_FOR_UPLOAD", "QUEUED", "PROCESSING", "READY", "FAILED", "CANCELED"] as const,
});

const notFound = (id: string) => new GraphQLError(`No video with id ${JSON.stringify(id)}`, { extensions: { code: "NOT_FOUND" } });

export const VideoRef = builder.prismaObject("Video", {
  description: "A video and its HLS ladder.",
  fields: (t) => ({
    id: t.exposeID("id"),
    title: t.exposeString("title"),
    status: t.expose("status", { type: VideoStatusEnum }),
    playbackPolicy: t.expose("playbackPolicy", { type: PlaybackPolicyEnum }),
    source: t.expose("source", { type: VideoSourceEnum, description: "Where the source comes from." }),
    playable: t.exposeBoolean("playable", { description: "True once every rung has its first segment: playback can start." }),
    error: t.exposeString("error", { nullable: true, description: "Why the video failed, in words a user can act on." }),
    duration: t.exposeFloat("duration", { nullable: true, description: "Seconds, from the probe." }),
    width: t.exposeInt("width", { nullable: true, description: "Display width of the source (rotation applied)." }),
    height: t.exposeInt("height", { nullable: true }),
    fps: t.exposeFloat("fps", { nullable: true }),
    rotation: t.exposeInt("rotation", { nullable: true }),
    hasAudio: t.exposeBoolean("hasAudio", { nullable: true }),
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
    variants: t.relation("variants", { query: { orderBy: [{ kind: "asc" }, { height: "desc" }] } }),
    jobs: t.relatedConnection("jobs", { cursor: "id", query: { orderBy: { createdAt: "desc" } } }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    playableAt: t.expose("playableAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
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
      isUuid(String(id)) ? ctx.db.video.findFirst({ ...query, where: { id: String(id), tenantId: tenantOf(ctx) } }) : null,
  }),
  videos: t.prismaConnection({
    type: VideoRef,
    cursor: "id",
    description: "The caller's tenant's videos, newest first.",
    authScopes: { scope: "videos:read" },
    args: { status: t.arg({ type: VideoStatusEnum }) },
    resolve: (query, _root, args, ctx) =>
      ctx.db.video.findMany({
        ...query,
        where: { tenantId: tenantOf(ctx), ...(args.status ? { status: args.status } : {}) },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      }),
  }),
}));

const CreateUploadInput = builder.inputType("CreateUploadInput", {
  fields: (t) => ({
    title: t.string({ required: true }),
    size: t.float({ description: "The file's size in bytes, if known: the upload URL then takes exactly that many." }),
    origin: t.string({
      description: "Origin of the web page that will upload (for CORS on GCS upload sessions); default: this request's Origin header.",
    }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum, description: "Default PUBLIC." }),
    idempotencyKey: t.string({
      description: "The same key (per tenant) returns the same video, with an upload URL for it, instead of creating a second one. Up to 200 characters.",
    }),
  }),
});

interface UploadTicket {
  uploadUrl: string;
  expiresAt: Date;
  maxBytes: number;
  video: Video;
}

const CreateUploadSuccess = builder.objectRef<UploadTicket>("CreateUploadSuccess").implement({
  fields: (t) => ({
    uploadUrl: t.exposeString("uploadUrl", {
      description:
        "PUT the file here, whole or in chunks with `Content-Range` (308 with `Range` until the last byte). With local or S3 storage it is the API's own URL, relative to its origin unless PUBLIC_URL is set, and the last byte queues the video (S3: chunks other than the last of at least 256 KiB); with GCS it is a resumable upload session (chunks in multiples of 256 KiB), then `completeUpload` or the bucket's notification queues the video.",
    }),
    expiresAt: t.expose("expiresAt", { type: "DateTime" }),
    maxBytes: t.exposeFloat("maxBytes"),
    video: t.field({ type: VideoRef, resolve: (r) => r.video }),
  }),
});

const UploadVideoSuccess = builder.objectRef<{ video: Video }>("UploadVideoSuccess").implement({
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

const CompleteUploadSuccess = builder.objectRef<{ video: Video }>("CompleteUploadSuccess").implement({
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

function validOrigin(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  let origin: string | null = null;
  try {
    origin = new URL(raw).origin;
  } catch {
    origin = null;
  }
  if (origin === null || origin === "null" || origin !== raw) throw new ValidationError("origin", "Expected an origin such as https://cms.example.com");
  return origin;
}

export function validTitle(raw: string | null | undefined, fallback?: string): string {
  const title = (raw ?? fallback ?? "").trim();
  if (!title) throw new ValidationError("title", "A title is required");
  if (title.length > 300) throw new ValidationError("title", "The title is longer than 300 characters");
  return title;
}

const VideoResultRef = builder.objectRef<{ video: Video }>("CancelVideoSuccess").implement({
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

const DeleteVideoSuccess = builder.objectRef<{ deletedVideoId: string }>("DeleteVideoSuccess").implement({
  fields: (t) => ({ deletedVideoId: t.exposeID("deletedVideoId") }),
});

/** The caller's tenant's video `id`; another tenant's is "not found", exactly like a missing one. */
export async function findVideoOrThrow(ctx: Context, id: string): Promise<Video> {
  const video = isUuid(id) ? await ctx.db.video.findFirst({ where: { id, tenantId: tenantOf(ctx) } }) : null;
  if (!video) throw new NotFoundError("video", id);
  return video;
}

export function validIdempotencyKey(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  if (!raw || raw.length > 200) throw new ValidationError("idempotencyKey", "An idempotency key has 1 to 200 characters");
  return raw;
}

/**
 * Creates a video for the caller's tenant, or with `idempotencyKey` returns the one an earlier
 * call with the same key created (also when two calls race: the unique index decides).
 */
export async function createVideoOnce(
  ctx: Context,
  idempotencyKey: string | null,
  data: Omit<Prisma.VideoUncheckedCreateInput, "tenantId" | "idempotencyKey">,
): Promise<{ video: Video; created: boolean }> {
  const tenantId = tenantOf(ctx);
  if (idempotencyKey === null) return { video: await ctx.db.video.create({ data: { ...data, tenantId } }), created: true };
  const existing = () => ctx.db.video.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } });
  const earlier = await existing();
  if (earlier) return { video: earlier, created: false };
  try {
    return { video: await ctx.db.video.create({ data: { ...data, tenantId, idempotencyKey } }), created: true };
  } catch (err) {
    const again = (err as { code?: string }).code === "P2002" ? await existing() : null;
    if (again) return { video: again, created: false };
    throw err;
  }
}

builder.mutationFields((t) => ({
  createUpload: t.field({
    type: CreateUploadSuccess,
    description:
      "Creates a video waiting for its file and returns a resumable upload URL for it: single-use, expiring, bound to this video and its size limit. With `idempotencyKey`, a repeated call returns the same video and URL.",
    authScopes: { scope: "videos:write" },
    args: { input: t.arg({ type: CreateUploadInput, required: true }) },
    errors: { types: [ValidationError, FileTooLargeError], union: { name: "CreateUploadResult" } },
    resolve: async (_root, { input }, ctx) => {
      const title = validTitle(input.title);
      const size = input.size ?? null;
      if (size !== null && (!Number.isSafeInteger(size) || size < 1)) throw new ValidationError("size", "The size is a whole number of bytes, at least 1");
      if (size !== null && size > ctx.maxUploadBytes) throw new FileTooLargeError(ctx.maxUploadBytes);
      const idempotencyKey = validIdempotencyKey(input.idempotencyKey);
      const origin = validOrigin(input.origin) ?? ctx.requestOrigin;
      const { video, created } = await createVideoOnce(ctx, idempotencyKey, {
        title,
        uploadSize: size,
        playbackPolicy: input.playbackPolicy ?? "PUBLIC",
        uploadNonce: randomBytes(16).toString("base64url"),
      });
      try {
        const target = await ctx.storage.createUploadTarget(video.id, {
          maxBytes: ctx.maxUploadBytes,
          size: video.uploadSize === null ? null : Number(video.uploadSize),
          origin,
          nonce: video.uploadNonce ?? "used",
        });
        return { video, uploadUrl: target.url, expiresAt: target.expiresAt, maxBytes: ctx.maxUploadBytes };
      } catch (err) {
        if (created) await ctx.db.video.delete({ where: { id: video.id } });
        throw err;
      }
    },
  }),
  uploadVideo: t.field({
    type: UploadVideoSuccess,
    description: "Uploads a small file in the request itself (GraphQL multipart request) and queues it.",
    authScopes: { scope: "videos:write" },
    args: { file: t.arg({ type: "File", required: true }), title: t.arg.string() },
    errors: { types: [ValidationError, FileTooLargeError], union: { name: "UploadVideoResult" } },
    resolve: async (_root, { file, title }, ctx) => {
      const name = validTitle(title, file.name || "Untitled");
      if (file.size === 0) throw new ValidationError("file", "The file is empty (0 bytes)");
      if (file.size > ctx.maxUploadBytes) throw new FileTooLargeError(ctx.maxUploadBytes);
      const created = await ctx.db.video.create({ data: { title: name, tenantId: tenantOf(ctx) } });
      const key = sourceKeyFor(created.id);
      try {
        await ctx.storage.write(key, file.stream() as unknown as AsyncIterable<Uint8Array>, {
          limit: ctx.maxUploadBytes,
          contentType: file.type || "application/octet-stream",
        });
      } catch (err) {
        await ctx.db.video.delete({ where: { id: created.id } });
        await ctx.storage.deletePrefix(`videos/${created.id}`);
        if (err instanceof UploadTooLargeError) throw new FileTooLargeError(ctx.maxUploadBytes);
        throw err;
      }
      const video = await queueUploadedVideo(ctx, created.id, { key, name: file.name || "upload", size: file.size });
      return { video: video ?? created };
    },
  }),
  cancelVideo: t.field({
    type: VideoResultRef,
    description: "Cancels a video that is waiting for its upload, queued or processing: workers stop within seconds and clean up.",
    authScopes: { scope: "videos:write" },
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
      await ctx.storage.deletePrefix(`videos/${video.id}`);
      await ctx.db.video.delete({ where: { id: video.id } });
      return { deletedVideoId: video.id };
    },
  }),
  completeUpload: t.field({
    type: CompleteUploadSuccess,
    description:
      "Queues a video whose file went straight to storage (a GCS upload session) once the file is there. The bucket's notification normally does this; calling it again, or for a video already queued, returns the video unchanged.",
    authScopes: { scope: "videos:write" },
    args: { videoId: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError, FileTooLargeError], union: { name: "CompleteUploadResult" } },
    resolve: async (_root, { videoId }, ctx) => {
      await findVideoOrThrow(ctx, String(videoId));
      return { video: (await completeUpload(ctx, String(videoId))).video };
    },
  }),
}));

// --- live events -------------------------------------------------------------------------

export const VideoEventInterface = builder.interfaceRef<VideoEventPayload>("VideoEvent").implement({
  description: "Something happened to a video; every event carries the video's current state.",
  resolveType: (e) =>
    ({ status: "VideoStatusEvent", variantProgress: "VariantProgressEvent", variantStatus: "VariantStatusEvent", renderProgress: "RenderProgressEvent" })[e.kind],
  fields: (t) => ({
    // Snapshots carry the row's scalar fields; relations are loaded on demand by the Prisma plugin.
    video: t.field({ type: VideoRef, resolve: (e) => e.video as unknown as Video }),
  }),
});

builder.objectRef<Extract<VideoEventPayload, { kind: "status" }>>("VideoStatusEvent").implement({
  description: "The video's status or `playable` changed (also sent first, with the current state).",
  interfaces: [VideoEventInterface],
  fields: (t) => ({ status: t.field({ type: VideoStatusEnum, resolve: (e) => e.video.status }) }),
});

builder.objectRef<Extract<VideoEventPayload, { kind: "variantStatus" }>>("VariantStatusEvent").implement({
  description: "A variant became READY or FAILED.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({ variant: t.field({ type: VariantRef, resolve: (e) => e.variant as never }) }),
});

builder.objectRef<Extract<VideoEventPayload, { kind: "variantProgress" }>>("VariantProgressEvent").implement({
  description: "Encoding progress of one variant, sampled about once a second.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({
    variant: t.field({ type: VariantRef, resolve: (e) => e.variant as never }),
    fps: t.float({ nullable: true, description: "Frames encoded per second.", resolve: (e) => e.fps }),
    speed: t.float({ nullable: true, description: "Media seconds encoded per wall second.", resolve: (e) => e.speed }),
    etaSeconds: t.float({ nullable: true, resolve: (e) => e.etaSeconds }),
  }),
});

builder.objectRef<Extract<VideoEventPayload, { kind: "renderProgress" }>>("RenderProgressEvent").implement({
  description: "Progress of the render that makes a video's source (a Manim scene's animations, a composition's questions), before the ladder's progress.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({
    index: t.int({ description: "The animation or question being rendered, from 0.", resolve: (e) => e.index }),
    count: t.int({ nullable: true, description: "How many there are, when known before rendering.", resolve: (e) => e.count }),
    percent: t.float({ description: "Of the current one, 0..100.", resolve: (e) => e.percent }),
    description: t.string({ nullable: true, description: "What is being rendered, e.g. `Create(Square)`.", resolve: (e) => e.description }),
    renderedCount: t.int({ description: "Items rendered so far.", resolve: (e) => e.renderedCount }),
    cachedCount: t.int({ description: "Items taken from the cache so far (Manim animations unchanged since an earlier render).", resolve: (e) => e.cachedCount }),
  }),
});

async function* followVideo(
  first: VideoEventPayload,
  pending: Promise<IteratorResult<VideoEventMessage>>,
  sub: AsyncIterator<VideoEventMessage>,
  reread: () => Promise<VideoEventPayload | null>,
): AsyncGenerator<VideoEventPayload> {
  try {
    yield first;
    if (TERMINAL_VIDEO_STATUSES.has(first.video.status)) return;
    let next = pending;
    let seenUpdatedAt = first.video.updatedAt;
    for (;;) {
      const { value: message, done } = await next;
      if (done) return;
      next = sub.next();
      // Events may have been missed while the fan-out reconnected: the database says where we are.
      const value = message.kind === "resync" ? await reread() : message;
      if (!value) return;
      if (message.kind === "resync" && value.video.updatedAt === seenUpdatedAt) continue;
      // A status published before the initial read can arrive after it; it is not news.
      if (value.kind === "status" && value.video.updatedAt < seenUpdatedAt) continue;
      if (value.video.updatedAt > seenUpdatedAt) seenUpdatedAt = value.video.updatedAt;
      yield value;
      if (value.kind === "status" && TERMINAL_VIDEO_STATUSES.has(value.video.status)) return;
    }
  } finally {
    await sub.return?.();
  }
}

builder.subscriptionFields((t) => ({
  videoEvents: t.field({
    type: VideoEventInterface,
    description: "Status and per-variant progress of one video. Starts with the current state; ends after READY, FAILED or CANCELED.",
    authScopes: { scope: "videos:read" },
    args: { videoId: t.arg.id({ required: true }) },
    subscribe: async (_root, { videoId }, ctx: Context) => {
      const id = String(videoId);
      if (!isUuid(id)) throw notFound(id);
      const tenantId = tenantOf(ctx);
      const sub = ctx.pubSub.subscribe("videoEvents", id)[Symbol.asyncIterator]();
      // Asking for the first event registers the listener, so nothing published after the read below is missed.
      const pending = sub.next();
      const video = await ctx.db.video.findFirst({ where: { id, tenantId } });
      if (!video) {
        await sub.return?.();
        throw notFound(id);
      }
      const reread = async (): Promise<VideoEventPayload | null> => {
        const now = await ctx.db.video.findUnique({ where: { id } });
        return now && { kind: "status", video: videoSnapshot(now) };
      };
      return followVideo({ kind: "status", video: videoSnapshot(video) }, pending, sub, reread);
    },
    resolve: (event) => event,
  }),
}));
