import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { builder } from "../builder.ts";
import {
  type CaptionFormat,
  decodeCaptionBytes,
  MAX_CAPTION_BYTES,
  toPublishableWebVtt,
} from "../captions/caption-text.ts";
import { timestampMapFor } from "../captions/subtitle-playlists.ts";
import { canonicalLanguage, trackName } from "../captions/track-attributes.ts";
import { tenantOf } from "../context.ts";
import { FileTooLargeError, InvalidCaptionsError, NotFoundError, ValidationError } from "../errors.ts";
import { Prisma } from "../generated/prisma/client.ts";
import { CaptionSource } from "../generated/prisma/enums.ts";
import { isUuid } from "../ids.ts";
import { lockVideo } from "../jobs/video-lock.ts";
import { captionKey, captionPlaylistKey, captionPrefix } from "../protocol/storage-layout.ts";
import { findVideoOrThrow } from "../videos/find-video.ts";
import { mediaUrl } from "./urls.ts";
import { VideoRef } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

/** More tracks than this on one video is a mistake, not a use. */
const MAX_CAPTIONS_PER_VIDEO = 30;

const CaptionSourceEnum = builder.enumType(CaptionSource, {
  name: "CaptionSource",
  description: "Where a caption track's cues come from.",
});

const CaptionFormatEnum = builder.enumType("CaptionFormat", {
  values: {
    WEBVTT: { description: 'WebVTT: the first line starts with "WEBVTT".' },
    SRT: { description: "SubRip: numbered cues with times like 00:00:01,000; converted to WebVTT." },
  } as const,
});

const CaptionRef = builder.prismaObject("Caption", {
  description: "A subtitle track of a video, served as a SUBTITLES rendition of its HLS master playlist.",
  fields: (t) => ({
    id: t.exposeID("id"),
    language: t.exposeString("language", { description: "BCP-47 tag in canonical form, e.g. `en-US`." }),
    name: t.exposeString("name", { description: "What players show in their track menu." }),
    default: t.exposeBoolean("isDefault", { description: "Players show it unless the viewer chose otherwise." }),
    autoselect: t.boolean({
      description: "Players may pick it by the viewer's language settings (always true for the default track).",
      resolve: (caption) => caption.isDefault || caption.autoselect,
    }),
    forced: t.exposeBoolean("forced", {
      description: "Holds only the cues shown even with subtitles off (foreign-language dialogue, signs).",
    }),
    hearingImpaired: t.exposeBoolean("hearingImpaired", {
      description: "Subtitles for the deaf and hard of hearing: describes sounds and music as well as speech.",
    }),
    source: t.expose("source", { type: CaptionSourceEnum }),
    cueCount: t.exposeInt("cueCount"),
    url: t.string({
      description: "The WebVTT file (with GCS or S3 storage a signed URL that expires).",
      select: { video: { select: { id: true, playbackPolicy: true } } },
      resolve: (caption, _args, ctx) => mediaUrl(ctx, caption.key, caption.video),
    }),
    playlistUrl: t.string({
      description: "Its HLS subtitle playlist, as the master playlist lists it.",
      select: { video: { select: { id: true, playbackPolicy: true } } },
      resolve: (caption, _args, ctx) => mediaUrl(ctx, captionPlaylistKey(caption.videoId, caption.id), caption.video),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.prismaObjectField(VideoRef, "captions", (t) =>
  t.relation("captions", {
    description: "Its caption tracks, oldest first; the master playlist lists each as a SUBTITLES rendition.",
    query: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
  }),
);

const AddCaptionInput = builder.inputType("AddCaptionInput", {
  fields: (t) => ({
    videoId: t.id({ required: true }),
    language: t.string({ required: true, description: 'BCP-47 language tag, e.g. "en", "de-CH", "pt-BR".' }),
    name: t.string({
      required: true,
      description: 'The track\'s name in players\' menus, e.g. "English" or "Deutsch (SDH)"; unique per video.',
    }),
    text: t.string({
      description: `The file's text (at most ${MAX_CAPTION_BYTES} bytes as UTF-8). Give \`text\` or \`file\`.`,
    }),
    file: t.field({
      type: "File",
      description: `The file in a GraphQL multipart request (at most ${MAX_CAPTION_BYTES} bytes, UTF-8).`,
    }),
    format: t.field({
      type: CaptionFormatEnum,
      description: "Default: WEBVTT if the text starts with WEBVTT, else SRT.",
    }),
    default: t.boolean({ description: "Make it the video's default track (any other loses that). Default false." }),
    autoselect: t.boolean({ description: "Default true." }),
    forced: t.boolean({ description: "Default false." }),
    hearingImpaired: t.boolean({ description: "Default false." }),
  }),
});

/** A caption mutation's success: the track and its video, each read as the query asks. */
const captionSuccess = (name: string) =>
  builder.objectRef<{ captionId: string; videoId: string }>(name).implement({
    fields: (t) => ({
      caption: t.prismaField({
        type: CaptionRef,
        resolve: (query, r, _a, ctx) => ctx.db.caption.findUniqueOrThrow({ ...query, where: { id: r.captionId } }),
      }),
      video: t.prismaField({
        type: VideoRef,
        resolve: (query, r, _a, ctx) => ctx.db.video.findUniqueOrThrow({ ...query, where: { id: r.videoId } }),
      }),
    }),
  });

const AddCaptionSuccess = captionSuccess("AddCaptionSuccess");

const RemoveCaptionSuccess = builder
  .objectRef<{ removedCaptionId: string; videoId: string }>("RemoveCaptionSuccess")
  .implement({
    fields: (t) => ({
      removedCaptionId: t.exposeID("removedCaptionId"),
      video: t.prismaField({
        type: VideoRef,
        resolve: (query, r, _a, ctx) => ctx.db.video.findUniqueOrThrow({ ...query, where: { id: r.videoId } }),
      }),
    }),
  });

const UpdateCaptionInput = builder.inputType("UpdateCaptionInput", {
  description: "What to change on a caption track; a field left out (or null) stays as it is.",
  fields: (t) => ({
    language: t.string({ description: 'BCP-47 language tag, e.g. "en", "de-CH", "pt-BR".' }),
    name: t.string({ description: "The track's name in players' menus; unique per video." }),
    default: t.boolean({
      description: "true: make it the video's default track (any other loses that); false: it is not the default.",
    }),
  }),
});

const UpdateCaptionSuccess = captionSuccess("UpdateCaptionSuccess");

/** The caption file's text from `text` or `file`, exactly one of them, within MAX_CAPTION_BYTES. */
async function captionText(text: string | null | undefined, file: File | null | undefined): Promise<string> {
  if ((text == null) === (file == null)) throw new ValidationError("text", "Give the captions as `text` or as `file`");
  if (text != null) {
    if (Buffer.byteLength(text, "utf8") > MAX_CAPTION_BYTES) throw new FileTooLargeError(MAX_CAPTION_BYTES);
    return text;
  }
  if (file!.size > MAX_CAPTION_BYTES) throw new FileTooLargeError(MAX_CAPTION_BYTES);
  return decodeCaptionBytes(new Uint8Array(await file!.arrayBuffer()));
}

const isPrismaError = (err: unknown, code: string): boolean =>
  err instanceof Prisma.PrismaClientKnownRequestError && err.code === code;

/** Track names are unique per video (the database's unique index holds it under concurrent requests). */
const nameTaken = (name: string) =>
  new ValidationError("name", `The video already has a caption track named "${name}"`);

builder.mutationFields((t) => ({
  addCaption: t.field({
    type: AddCaptionSuccess,
    description:
      "Adds a WebVTT or SRT caption track to a video, at any stage: players see it in the master playlist " +
      "(within seconds, as the master is cached that long).",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [], points: 2 }),
    args: { input: t.arg({ type: AddCaptionInput, required: true }) },
    errors: {
      types: [ValidationError, NotFoundError, InvalidCaptionsError, FileTooLargeError],
      union: { name: "AddCaptionResult" },
    },
    resolve: async (_root, { input }, ctx) => {
      const video = await findVideoOrThrow(ctx, String(input.videoId));
      const language = canonicalLanguage(input.language, "language");
      const name = trackName(input.name, "name");
      const raw = await captionText(input.text, input.file);
      const captions = toPublishableWebVtt(
        raw,
        (input.format as CaptionFormat | null) ?? null,
        timestampMapFor(video.segmentFormat),
      );
      const tooMany = () =>
        new ValidationError("videoId", `A video has at most ${MAX_CAPTIONS_PER_VIDEO} caption tracks`);
      // Checked here to spare storage a file that cannot be kept; the check that holds is the one in the transaction.
      const existing = await ctx.db.caption.findMany({ where: { videoId: video.id }, select: { name: true } });
      if (existing.length >= MAX_CAPTIONS_PER_VIDEO) throw tooMany();
      if (existing.some((c) => c.name === name)) throw nameTaken(name);

      const id = randomUUID();
      const key = captionKey(video.id, id);
      const body = Buffer.from(captions.vtt, "utf8");
      // The file first: a track the master lists is always there to fetch.
      await ctx.storage.write(key, Readable.from([body]), {
        limit: body.byteLength,
        contentType: "text/vtt; charset=utf-8",
      });
      try {
        await ctx.db.$transaction(async (tx) => {
          // The video's row lock makes count-then-insert one step: concurrent additions count one after the other.
          if ((await lockVideo(tx, video.id)) === null) throw new NotFoundError("video", video.id);
          if ((await tx.caption.count({ where: { videoId: video.id } })) >= MAX_CAPTIONS_PER_VIDEO) throw tooMany();
          if (input.default) await tx.caption.updateMany({ where: { videoId: video.id }, data: { isDefault: false } });
          await tx.caption.create({
            data: {
              id,
              videoId: video.id,
              language,
              name,
              isDefault: input.default ?? false,
              autoselect: input.autoselect ?? true,
              forced: input.forced ?? false,
              hearingImpaired: input.hearingImpaired ?? false,
              source: "UPLOADED",
              key,
              cueCount: captions.cueCount,
              lastCueEnd: captions.lastCueEnd,
              size: body.byteLength,
            },
          });
        });
      } catch (err) {
        await ctx.storage.deletePrefix(captionPrefix(video.id, id));
        // Another request took the name meanwhile, or the video was deleted meanwhile.
        if (isPrismaError(err, "P2002")) throw nameTaken(name);
        if (isPrismaError(err, "P2003")) throw new NotFoundError("video", video.id);
        throw err;
      }
      return { captionId: id, videoId: video.id };
    },
  }),
  updateCaption: t.field({
    type: UpdateCaptionSuccess,
    description:
      "Changes a caption track's name, language or default flag (players see it in the master playlist within " +
      "seconds). Its cues stay as they are: to change them, add a new track and remove this one.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: {
      id: t.arg.id({ required: true }),
      input: t.arg({ type: UpdateCaptionInput, required: true }),
    },
    errors: { types: [NotFoundError, ValidationError], union: { name: "UpdateCaptionResult" } },
    resolve: async (_root, { id, input }, ctx) => {
      const captionId = String(id);
      const caption = isUuid(captionId)
        ? await ctx.db.caption.findFirst({
            where: { id: captionId, video: { tenantId: tenantOf(ctx) } },
            select: { id: true, videoId: true },
          })
        : null;
      if (!caption) throw new NotFoundError("caption", captionId);
      const language = input.language == null ? undefined : canonicalLanguage(input.language, "language");
      const name = input.name == null ? undefined : trackName(input.name, "name");
      try {
        await ctx.db.$transaction(async (tx) => {
          // The video's row lock orders this with addCaption's default flag: a video keeps at most one default.
          if ((await lockVideo(tx, caption.videoId)) === null) throw new NotFoundError("caption", captionId);
          if (input.default) {
            await tx.caption.updateMany({
              where: { videoId: caption.videoId, id: { not: caption.id } },
              data: { isDefault: false },
            });
          }
          const updated = await tx.caption.updateMany({
            where: { id: caption.id },
            data: { language, name, isDefault: input.default ?? undefined },
          });
          if (updated.count === 0) throw new NotFoundError("caption", captionId);
        });
      } catch (err) {
        if (isPrismaError(err, "P2002")) throw nameTaken(name ?? "");
        throw err;
      }
      return { captionId: caption.id, videoId: caption.videoId };
    },
  }),
  removeCaption: t.field({
    type: RemoveCaptionSuccess,
    description: "Removes a caption track: the master playlist stops listing it and its file is deleted.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "RemoveCaptionResult" } },
    resolve: async (_root, { id }, ctx) => {
      const captionId = String(id);
      const caption = isUuid(captionId)
        ? await ctx.db.caption.findFirst({ where: { id: captionId, video: { tenantId: tenantOf(ctx) } } })
        : null;
      if (!caption) throw new NotFoundError("caption", captionId);
      // The row first: once the master no longer lists the track, its file can go.
      const removed = await ctx.db.caption.deleteMany({ where: { id: caption.id } });
      if (removed.count === 0) throw new NotFoundError("caption", captionId);
      await ctx.storage.deletePrefix(captionPrefix(caption.videoId, caption.id));
      return { removedCaptionId: caption.id, videoId: caption.videoId };
    },
  }),
}));
