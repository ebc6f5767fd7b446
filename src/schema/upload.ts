import { randomBytes } from "node:crypto";
import { builder } from "../builder.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { completeUpload, queueUploadedVideo } from "../uploads/complete-upload.ts";
import { sourceKey, videoPrefix } from "../protocol/storage-layout.ts";
import { UploadTooLargeError } from "../storage/types.ts";
import { createVideoOnce } from "../videos/create-video-once.ts";
import { findVideoOrThrow } from "../videos/find-video.ts";
import { validIdempotencyKey, validOrigin, validTitle } from "../videos/input-rules.ts";
import { creationOptionFields, validCreationOptions } from "./creation-options.ts";
import { PlaybackPolicyEnum, VideoRef } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const CREATION_OPTION_ARGS = builder.args((t) => creationOptionFields(t));

const CreateUploadInput = builder.inputType("CreateUploadInput", {
  fields: (t) => ({
    title: t.string({ required: true }),
    size: t.float({
      description: "The file's size in bytes, if known: the upload URL then takes exactly that many.",
    }),
    origin: t.string({
      description:
        "Origin of the web page that will upload (for CORS on GCS upload sessions); " +
        "default: this request's Origin header.",
    }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum, description: "Default PUBLIC." }),
    idempotencyKey: t.string({
      description:
        "The same key (per tenant) returns the same video, with an upload URL for it, " +
        "instead of creating a second one. 1 to 200 characters of plain text (no control characters).",
    }),
    ...creationOptionFields(t),
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
        "PUT the file here, whole or in chunks with `Content-Range` (308 with `Range` until the last byte). " +
        "With local or S3 storage it is the API's own URL, relative to its origin unless PUBLIC_URL is set, " +
        "and the last byte queues the video (S3: chunks other than the last of at least 256 KiB); " +
        "with GCS it is a resumable upload session (chunks in multiples of 256 KiB), " +
        "then `completeUpload` or the bucket's notification queues the video.",
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

builder.mutationFields((t) => ({
  createUpload: t.field({
    type: CreateUploadSuccess,
    description:
      "Creates a video waiting for its file and returns a resumable upload URL for it: single-use, expiring, " +
      "bound to this video and its size limit. With `idempotencyKey`, a repeated call returns the same video and URL " +
      "(a ValidationError on `size` when it sends another size).",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["TRANSCODE"] }),
    args: { input: t.arg({ type: CreateUploadInput, required: true }) },
    errors: { types: [ValidationError, FileTooLargeError, NotFoundError], union: { name: "CreateUploadResult" } },
    resolve: async (_root, { input }, ctx) => {
      const title = validTitle(input.title);
      const size = input.size ?? null;
      if (size !== null && (!Number.isSafeInteger(size) || size < 1)) {
        throw new ValidationError("size", "The size is a whole number of bytes, at least 1");
      }
      if (size !== null && size > ctx.maxUploadBytes) throw new FileTooLargeError(ctx.maxUploadBytes);
      const idempotencyKey = validIdempotencyKey(input.idempotencyKey);
      const origin = validOrigin(input.origin) ?? ctx.requestOrigin;
      const options = await validCreationOptions(ctx, input);
      const { video, created } = await createVideoOnce(
        ctx,
        idempotencyKey,
        {
          title,
          uploadSize: size,
          playbackPolicy: input.playbackPolicy ?? "PUBLIC",
          uploadNonce: randomBytes(16).toString("base64url"),
        },
        options,
      );
      // A repeat must be the same upload: its URL takes exactly the size the first call declared.
      if (!created && size !== null && (video.uploadSize === null || Number(video.uploadSize) !== size)) {
        const first = video.uploadSize === null ? "no size" : `size ${video.uploadSize}`;
        throw new ValidationError(
          "size",
          `This idempotencyKey's upload was created with ${first}; a repeated call sends the same size (or none)`,
        );
      }
      try {
        const target = await ctx.storage.createUploadTarget(video.id, {
          maxBytes: ctx.maxUploadBytes,
          size: video.uploadSize === null ? null : Number(video.uploadSize),
          origin,
          nonce: video.uploadNonce ?? "used",
        });
        // The expiry sweep (src/uploads/expire-uploads.ts) counts from the latest URL handed out.
        await ctx.db.video.updateMany({
          where: { id: video.id, status: "WAITING_FOR_UPLOAD" },
          data: { uploadExpiresAt: target.expiresAt },
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
    extensions: mutationWork({ jobs: ["TRANSCODE"] }),
    args: {
      file: t.arg({ type: "File", required: true }),
      title: t.arg.string(),
      ...CREATION_OPTION_ARGS,
    },
    errors: { types: [ValidationError, FileTooLargeError, NotFoundError], union: { name: "UploadVideoResult" } },
    resolve: async (_root, { file, title, ...args }, ctx) => {
      const name = validTitle(title, file.name || "Untitled");
      if (file.size === 0) throw new ValidationError("file", "The file is empty (0 bytes)");
      if (file.size > ctx.maxUploadBytes) throw new FileTooLargeError(ctx.maxUploadBytes);
      const options = await validCreationOptions(ctx, args);
      const once = await createVideoOnce(ctx, null, { title: name }, options);
      // An externalId the tenant has already: that video, and this file is not kept.
      if (!once.created) return { video: once.video };
      const created = once.video;
      const key = sourceKey(created.id);
      try {
        await ctx.storage.write(key, file.stream() as unknown as AsyncIterable<Uint8Array>, {
          limit: ctx.maxUploadBytes,
          contentType: file.type || "application/octet-stream",
        });
      } catch (err) {
        await ctx.db.video.delete({ where: { id: created.id } });
        await ctx.storage.deletePrefix(videoPrefix(created.id));
        if (err instanceof UploadTooLargeError) throw new FileTooLargeError(ctx.maxUploadBytes);
        throw err;
      }
      const video = await queueUploadedVideo(ctx, created.id, { key, name: file.name || "upload", size: file.size });
      return { video: video ?? created };
    },
  }),
  completeUpload: t.field({
    type: CompleteUploadSuccess,
    description:
      "Queues a video whose file went straight to storage (a GCS upload session) once the file is there. " +
      "The bucket's notification normally does this; calling it again, or for a video already queued, " +
      "returns the video unchanged.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [], prepaid: ["TRANSCODE"] }),
    args: { videoId: t.arg.id({ required: true }) },
    errors: { types: [ValidationError, NotFoundError, FileTooLargeError], union: { name: "CompleteUploadResult" } },
    resolve: async (_root, { videoId }, ctx) => {
      await findVideoOrThrow(ctx, String(videoId));
      return { video: (await completeUpload(ctx, String(videoId))).video };
    },
  }),
}));
