import { builder } from "../builder.ts";
import {
  chapterSpans,
  chaptersOf,
  MAX_CHAPTER_TITLE_CHARS,
  MAX_CHAPTERS,
  setVideoChapters,
} from "../chapters/chapters.ts";
import { tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { mediaUrl } from "./urls.ts";
import { VideoRef } from "./video.ts";

const ChapterRef = builder.objectRef<{ startSeconds: number; endSeconds: number; title: string }>("Chapter").implement({
  description: "A named part of a video, from `startSeconds` to where the next one starts (the last: the video's end).",
  fields: (t) => ({
    startSeconds: t.exposeFloat("startSeconds"),
    endSeconds: t.exposeFloat("endSeconds"),
    title: t.exposeString("title"),
  }),
});

builder.prismaObjectFields("Video", (t) => ({
  chapters: t.field({
    type: [ChapterRef],
    description: "Its chapters in order (setChapters); empty when it has none.",
    select: { chapters: true, duration: true },
    resolve: (video) => chapterSpans(chaptersOf(video), video.duration ?? 0),
  }),
  chaptersUrl: t.string({
    nullable: true,
    description:
      'Its chapters as a WebVTT file, for a `<track kind="chapters">` beside the player (a signed URL that ' +
      "expires with GCS or S3 storage; a playback token for a SIGNED video); null when it has none.",
    select: { id: true, chaptersKey: true, playbackPolicy: true },
    resolve: (video, _args, ctx) => (video.chaptersKey ? mediaUrl(ctx, video.chaptersKey, video) : null),
  }),
}));

const ChapterInput = builder.inputType("ChapterInput", {
  fields: (t) => ({
    startSeconds: t.float({
      required: true,
      description: "Where it starts, in seconds from the video's start: inside the video, after the chapter before.",
    }),
    title: t.string({
      required: true,
      description: `One line of 1 to ${MAX_CHAPTER_TITLE_CHARS} characters (trimmed).`,
    }),
  }),
});

const SetChaptersInput = builder.inputType("SetChaptersInput", {
  fields: (t) => ({
    videoId: t.id({ required: true }),
    chapters: t.field({
      type: [ChapterInput],
      required: true,
      description: `At most ${MAX_CHAPTERS}, in order of their start; an empty list removes the video's chapters.`,
    }),
  }),
});

const SetChaptersSuccess = builder.objectRef<{ videoId: string }>("SetChaptersSuccess").implement({
  fields: (t) => ({
    video: t.prismaField({
      type: VideoRef,
      resolve: (query, r, _a, ctx) => ctx.db.video.findUniqueOrThrow({ ...query, where: { id: r.videoId } }),
    }),
  }),
});

builder.mutationFields((t) => ({
  setChapters: t.field({
    type: SetChaptersSuccess,
    description:
      "Sets a video's chapters, replacing any it had, once its length is known (it has a `duration`): " +
      "`Video.chapters` and a WebVTT chapters file (`Video.chaptersUrl`) for players.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: SetChaptersInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "SetChaptersResult" } },
    resolve: async (_root, { input }, ctx) => ({
      videoId: await setVideoChapters(ctx, tenantOf(ctx), String(input.videoId), input.chapters),
    }),
  }),
}));
