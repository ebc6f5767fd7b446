import { builder } from "../builder.ts";
import { MAX_CAPTION_BYTES } from "../captions/caption-text.ts";
import { addCaptionTrack, removeCaptionTrack, updateCaptionTrack } from "../captions/caption-tracks.ts";
import { tenantOf } from "../context.ts";
import { GENERATED_CAPTION_LANGUAGES, requestGeneratedCaptions } from "../captions/generated-captions.ts";
import { FileTooLargeError, InvalidCaptionsError, NotFoundError, NoWorkerError, ValidationError } from "../errors.ts";
import { CaptionSource, CaptionStatus } from "../generated/prisma/enums.ts";
import { captionKey, captionPlaylistKey } from "../protocol/storage-layout.ts";
import { JobRef } from "./job.ts";
import { mediaUrl } from "./urls.ts";
import { VideoRef } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const CaptionSourceEnum = builder.enumType(CaptionSource, {
  name: "CaptionSource",
  description: "Where a caption track's cues come from.",
});

const CaptionStatusEnum = builder.enumType(CaptionStatus, {
  name: "CaptionStatus",
  description: "Where a caption track is: uploaded tracks are READY at once, generated ones are transcribed first.",
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
    status: t.expose("status", {
      type: CaptionStatusEnum,
      description: "Only READY tracks are in the master playlist; a generated track is PROCESSING until transcribed.",
    }),
    progress: t.exposeFloat("progress", {
      description:
        "How far a generated track's transcription is, 0..1 (media time of the speech recognised / duration).",
    }),
    error: t.exposeString("error", { nullable: true, description: "Why a generated track FAILED." }),
    job: t.prismaField({
      type: JobRef,
      nullable: true,
      description:
        "The TRANSCRIBE job that makes a generated track (its `cost` says what it cost); null for uploaded tracks.",
      resolve: (query, caption, _args, ctx) =>
        caption.jobId ? ctx.db.job.findUnique({ ...query, where: { id: caption.jobId } }) : null,
    }),
    cueCount: t.exposeInt("cueCount"),
    url: t.string({
      description:
        "The WebVTT file (with GCS or S3 storage a signed URL that expires); a generated track's answers 404 until READY.",
      select: { video: { select: { id: true, playbackPolicy: true } } },
      resolve: (caption, _args, ctx) =>
        mediaUrl(ctx, caption.key || captionKey(caption.videoId, caption.id), caption.video),
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

const GenerateCaptionsInput = builder.inputType("GenerateCaptionsInput", {
  fields: (t) => ({
    videoId: t.id({ required: true }),
    language: t.string({
      required: true,
      description: `BCP-47 tag of the speech: ${GENERATED_CAPTION_LANGUAGES.join(", ")} only (e.g. "en", "en-GB").`,
    }),
    name: t.string({
      description: "The track's name in players' menus; unique per video. Default \"English (generated)\".",
    }),
  }),
});

const GenerateCaptionsSuccess = captionSuccess("GenerateCaptionsSuccess");

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
    resolve: (_root, { input }, ctx) =>
      addCaptionTrack(ctx, tenantOf(ctx), { ...input, videoId: String(input.videoId) }),
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
    resolve: (_root, { id, input }, ctx) => updateCaptionTrack(ctx.db, tenantOf(ctx), String(id), input),
  }),
  generateCaptions: t.field({
    type: GenerateCaptionsSuccess,
    description:
      "Generates a caption track from the video's speech (a TRANSCRIBE job on a worker with the `asr` capability): " +
      "the track is GENERATED and PROCESSING, with its `progress`, until it is READY and listed in the master " +
      "playlist like an uploaded one. A READY video's is made now, a video still encoding gets it once READY. " +
      `English only (${GENERATED_CAPTION_LANGUAGES.join(", ")}): another language is a ValidationError. ` +
      "NoWorkerError when no worker can transcribe now. Its failure fails the track, not the video.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["TRANSCRIBE"] }),
    args: { input: t.arg({ type: GenerateCaptionsInput, required: true }) },
    errors: {
      types: [ValidationError, NotFoundError, NoWorkerError],
      union: { name: "GenerateCaptionsResult" },
    },
    resolve: (_root, { input }, ctx) =>
      requestGeneratedCaptions(ctx, tenantOf(ctx), { ...input, videoId: String(input.videoId) }),
  }),
  removeCaption: t.field({
    type: RemoveCaptionSuccess,
    description: "Removes a caption track: the master playlist stops listing it and its file is deleted.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "RemoveCaptionResult" } },
    resolve: async (_root, { id }, ctx) => {
      const removed = await removeCaptionTrack(ctx, tenantOf(ctx), String(id));
      return { removedCaptionId: removed.captionId, videoId: removed.videoId };
    },
  }),
}));
