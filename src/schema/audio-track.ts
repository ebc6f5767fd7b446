import { builder } from "../builder.ts";
import {
  addAudioTrack,
  MAX_AUDIO_TRACKS_PER_VIDEO,
  removeAudioTrack,
  updateAudioTrack,
} from "../audio-tracks/audio-tracks.ts";
import { tenantOf } from "../context.ts";
import { FileTooLargeError, NotFoundError, ValidationError } from "../errors.ts";
import { AudioTrackStatus } from "../generated/prisma/enums.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { audioTrackPlaylistKey } from "../protocol/storage-layout.ts";
import { mediaUrl } from "./urls.ts";
import { VideoRef } from "./video.ts";

const AudioTrackStatusEnum = builder.enumType(AudioTrackStatus, {
  name: "AudioTrackStatus",
  description: "PROCESSING while a worker encodes it, READY once the master lists it, FAILED with its `error`.",
});

const AudioTrackRef = builder.prismaObject("AudioTrack", {
  description:
    "An alternate audio track of a video (another language, commentary, a dub), served as an AUDIO rendition " +
    "of its HLS master playlist once READY. It lasts exactly as long as the video: padded with silence or cut.",
  fields: (t) => ({
    id: t.exposeID("id"),
    language: t.exposeString("language", { description: "BCP-47 tag in canonical form, e.g. `en-US`." }),
    name: t.exposeString("name", { description: "What players show in their audio menu." }),
    default: t.exposeBoolean("isDefault", {
      description: "Players play it unless the viewer chose otherwise (instead of the video's own audio).",
    }),
    status: t.expose("status", { type: AudioTrackStatusEnum }),
    error: t.exposeString("error", { nullable: true, description: "Why it FAILED." }),
    sourceDuration: t.exposeFloat("sourceDuration", {
      nullable: true,
      description: "Seconds of the file's audio, before it was padded or cut to the video's length (once READY).",
    }),
    playlistUrl: t.string({
      nullable: true,
      description: "Its HLS media playlist, as the master playlist lists it (once READY).",
      select: { video: { select: { id: true, playbackPolicy: true } } },
      resolve: (track, _args, ctx) =>
        track.status === "READY" ? mediaUrl(ctx, audioTrackPlaylistKey(track.videoId, track.id), track.video) : null,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    readyAt: t.expose("readyAt", { type: "DateTime", nullable: true }),
  }),
});

builder.prismaObjectField(VideoRef, "audioTracks", (t) =>
  t.relation("audioTracks", {
    description:
      "Its alternate audio tracks, oldest first; the master playlist lists each READY one as an AUDIO rendition.",
    query: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
  }),
);

const AddAudioTrackInput = builder.inputType("AddAudioTrackInput", {
  fields: (t) => ({
    videoId: t.id({ required: true, description: "A READY video with pictures." }),
    language: t.string({ required: true, description: 'BCP-47 language tag, e.g. "en", "de-CH", "pt-BR".' }),
    name: t.string({
      required: true,
      description:
        'The track\'s name in players\' menus, e.g. "Deutsch" or "Director\'s commentary"; unique per video.',
    }),
    file: t.field({
      type: "File",
      description:
        "The audio file in a GraphQL multipart request (up to MULTIPART_MAX_BYTES): MP3, AAC, WAV, FLAC, Ogg, " +
        "MP4/M4A, Matroska/WebM… Give `file` or `url`.",
    }),
    url: t.string({ description: "An http(s) URL of the audio file on the public internet; a worker downloads it." }),
    default: t.boolean({
      description:
        "Make it the video's default audio (any other track loses that, and the video's own audio). Default false.",
    }),
  }),
});

const UpdateAudioTrackInput = builder.inputType("UpdateAudioTrackInput", {
  description: "What to change on an audio track; a field left out (or null) stays as it is.",
  fields: (t) => ({
    language: t.string({ description: 'BCP-47 language tag, e.g. "en", "de-CH", "pt-BR".' }),
    name: t.string({ description: "The track's name in players' menus; unique per video." }),
    default: t.boolean({
      description:
        "true: make it the video's default audio (any other track loses that); false: it is not the default.",
    }),
  }),
});

/** An audio track mutation's success: the track and its video, each read as the query asks. */
const audioTrackSuccess = (name: string) =>
  builder.objectRef<{ audioTrackId: string; videoId: string }>(name).implement({
    fields: (t) => ({
      audioTrack: t.prismaField({
        type: AudioTrackRef,
        resolve: (query, r, _a, ctx) =>
          ctx.db.audioTrack.findUniqueOrThrow({ ...query, where: { id: r.audioTrackId } }),
      }),
      video: t.prismaField({
        type: VideoRef,
        resolve: (query, r, _a, ctx) => ctx.db.video.findUniqueOrThrow({ ...query, where: { id: r.videoId } }),
      }),
    }),
  });

const AddAudioTrackSuccess = audioTrackSuccess("AddAudioTrackSuccess");
const UpdateAudioTrackSuccess = audioTrackSuccess("UpdateAudioTrackSuccess");

const RemoveAudioTrackSuccess = builder
  .objectRef<{ removedAudioTrackId: string; videoId: string }>("RemoveAudioTrackSuccess")
  .implement({
    fields: (t) => ({
      removedAudioTrackId: t.exposeID("removedAudioTrackId"),
      video: t.prismaField({
        type: VideoRef,
        resolve: (query, r, _a, ctx) => ctx.db.video.findUniqueOrThrow({ ...query, where: { id: r.videoId } }),
      }),
    }),
  });

builder.mutationFields((t) => ({
  addAudioTrack: t.field({
    type: AddAudioTrackSuccess,
    description:
      "Adds an alternate audio track to a READY video (AUDIO_TRACK job: a worker encodes it as AAC on the video's " +
      `timeline, padded with silence or cut to the video's length). At most ${MAX_AUDIO_TRACKS_PER_VIDEO} per video. ` +
      "The master playlist lists it once it is READY; a file the worker cannot decode makes it FAILED, not the video.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["AUDIO_TRACK"] }),
    args: { input: t.arg({ type: AddAudioTrackInput, required: true }) },
    errors: {
      types: [ValidationError, NotFoundError, FileTooLargeError],
      union: { name: "AddAudioTrackResult" },
    },
    resolve: (_root, { input }, ctx) => addAudioTrack(ctx, tenantOf(ctx), { ...input, videoId: String(input.videoId) }),
  }),
  updateAudioTrack: t.field({
    type: UpdateAudioTrackSuccess,
    description:
      "Changes an audio track's name, language or default flag (players see it in the master playlist within seconds).",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: {
      id: t.arg.id({ required: true }),
      input: t.arg({ type: UpdateAudioTrackInput, required: true }),
    },
    errors: { types: [NotFoundError, ValidationError], union: { name: "UpdateAudioTrackResult" } },
    resolve: (_root, { id, input }, ctx) => updateAudioTrack(ctx.db, tenantOf(ctx), String(id), input),
  }),
  removeAudioTrack: t.field({
    type: RemoveAudioTrackSuccess,
    description:
      "Removes an audio track: the master playlist stops listing it, its job stops, its segments and file are deleted.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "RemoveAudioTrackResult" } },
    resolve: async (_root, { id }, ctx) => {
      const removed = await removeAudioTrack(ctx, tenantOf(ctx), String(id));
      return { removedAudioTrackId: removed.audioTrackId, videoId: removed.videoId };
    },
  }),
}));
