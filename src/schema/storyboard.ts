import { GraphQLError } from "graphql";
import { builder } from "../builder.ts";
import { Storyboard } from "../protocol/media-facts.ts";
import { videoPrefix } from "../protocol/storage-layout.ts";
import { mediaUrl as apiMediaUrl } from "../storage/api-urls.ts";
import {
  ANIMATED_FPS,
  ANIMATED_WIDTH,
  MAX_ANIMATED_SECONDS,
  MAX_ANIMATED_WIDTH_SECONDS,
  parseAnimatedRequest,
  parseThumbnailRequest,
} from "../thumbnails/requests.ts";
import type { Context } from "../context.ts";
import { type MediaOwner, mediaUrl } from "./urls.ts";

type StoryboardOf = { video: MediaOwner; storyboard: Storyboard };

const StoryboardRef = builder.objectRef<StoryboardOf>("Storyboard").implement({
  description:
    "Frames of the whole video laid out in JPEG sprite sheets, with a WebVTT file whose cues point at them " +
    "(`sheet-0.jpg#xywh=0,0,160,90`), as players' thumbnail tracks read it.",
  fields: (t) => ({
    vttUrl: t.string({
      description: "The WebVTT file: one cue per tile, covering the video from 0 to its duration.",
      resolve: (s, _args, ctx) => mediaUrl(ctx, s.storyboard.vttKey, s.video),
    }),
    sheetUrls: t.stringList({
      description: "The sprite sheets, in order (the cues name them relative to the WebVTT file).",
      resolve: (s, _args, ctx) => Promise.all(s.storyboard.sheetKeys.map((key) => mediaUrl(ctx, key, s.video))),
    }),
    intervalSeconds: t.float({
      description: "A tile every this many seconds, from 0.",
      resolve: (s) => s.storyboard.intervalSeconds,
    }),
    tileCount: t.int({ resolve: (s) => s.storyboard.tileCount }),
    tileWidth: t.int({ resolve: (s) => s.storyboard.tileWidth }),
    tileHeight: t.int({ resolve: (s) => s.storyboard.tileHeight }),
    columns: t.int({ description: "Tiles per sheet row.", resolve: (s) => s.storyboard.columns }),
    rows: t.int({
      description: "Tile rows per sheet (the last sheet may be partly empty).",
      resolve: (s) => s.storyboard.rows,
    }),
  }),
});

const AnimatedPreviewFormat = builder.enumType("AnimatedPreviewFormat", { values: ["WEBP", "GIF"] as const });

/** The API's URL of a video image made on request, with a playback token when the video is SIGNED. */
function imageUrl(ctx: Context, video: MediaOwner, name: string, params: Record<string, string>): string {
  const query = new URLSearchParams(params);
  if (video.playbackPolicy === "SIGNED") query.set("token", ctx.playbackTokens.issue(video.id));
  return `${apiMediaUrl(ctx.publicUrl, `${videoPrefix(video.id)}/${name}`)}?${query}`;
}

const badInput = (problem: string) => new GraphQLError(problem, { extensions: { code: "BAD_USER_INPUT" } });

builder.prismaObjectFields("Video", (t) => ({
  storyboard: t.field({
    type: StoryboardRef,
    nullable: true,
    description:
      "Sprite sheets and their WebVTT index, made after the video is playable; null until then or if making it failed.",
    select: { id: true, storyboard: true, playbackPolicy: true },
    resolve: (video) => {
      const parsed = Storyboard.safeParse(video.storyboard);
      return parsed.success ? { video, storyboard: parsed.data } : null;
    },
  }),
  thumbnailUrl: t.string({
    nullable: true,
    description:
      "A JPEG of the frame at `time` seconds, `width` pixels wide (even, 16 to 1920), made on first request and " +
      "cached (time rounded to 0.1 s); null until the video is READY.",
    args: {
      time: t.arg.float({ required: true }),
      width: t.arg.int({ defaultValue: 320 }),
    },
    select: { id: true, status: true, duration: true, playbackPolicy: true },
    resolve: (video, args, ctx) => {
      if (video.status !== "READY" || video.duration === null) return null;
      const params = { time: String(args.time), width: String(args.width ?? 320) };
      const request = parseThumbnailRequest(new URLSearchParams(params), video.duration);
      if ("problem" in request) throw badInput(request.problem);
      return imageUrl(ctx, video, "thumbnail.jpg", params);
    },
  }),
  animatedPreviewUrl: t.string({
    nullable: true,
    description:
      `An animated WebP or GIF of \`start\` to \`end\` seconds (at most ${MAX_ANIMATED_SECONDS} s), \`width\` pixels wide ` +
      `(even, ${ANIMATED_WIDTH.min} to ${ANIMATED_WIDTH.max}), width × seconds at most ${MAX_ANIMATED_WIDTH_SECONDS}, ` +
      `${ANIMATED_FPS} frames a second, made on first request and cached; null until the video is READY.`,
    args: {
      start: t.arg.float({ required: true }),
      end: t.arg.float({ required: true }),
      width: t.arg.int({ defaultValue: ANIMATED_WIDTH.default }),
      format: t.arg({ type: AnimatedPreviewFormat, defaultValue: "WEBP" }),
    },
    select: { id: true, status: true, duration: true, playbackPolicy: true },
    resolve: (video, args, ctx) => {
      if (video.status !== "READY" || video.duration === null) return null;
      const format = args.format === "GIF" ? "gif" : "webp";
      const params = {
        start: String(args.start),
        end: String(args.end),
        width: String(args.width ?? ANIMATED_WIDTH.default),
      };
      const request = parseAnimatedRequest(new URLSearchParams(params), format, video.duration);
      if ("problem" in request) throw badInput(request.problem);
      return imageUrl(ctx, video, `animated.${format}`, params);
    },
  }),
}));
