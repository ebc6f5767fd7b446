import { builder } from "../builder.ts";
import { checkOutboundUrl } from "../http/outbound-url.ts";
import type { Context } from "../context.ts";
import { NoWorkerError, ValidationError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import type { Prisma } from "../generated/prisma/client.ts";
import { videoSnapshot } from "../events/video-events.ts";
import { createVideoOnce } from "../videos/create-video-once.ts";
import { validIdempotencyKey, validTitle } from "../videos/input-rules.ts";
import { PlaybackPolicyEnum, VideoRef } from "./video.ts";

const MAX_SCENE_CODE_BYTES = 1_000_000;

export const ManimQualityEnum = builder.enumType("ManimQuality", {
  values: {
    LOW: { description: "854x480, 15 fps (`-ql`)" },
    MEDIUM: { description: "1280x720, 30 fps (`-qm`)" },
    HIGH: { description: "1920x1080, 60 fps (`-qh`)" },
    FOURK: { description: "3840x2160, 60 fps (`-qk`)" },
  } as const,
});
export const ManimRendererEnum = builder.enumType("ManimRenderer", { values: ["CAIRO", "OPENGL"] as const });

const RenderManimInput = builder.inputType("RenderManimInput", {
  fields: (t) => ({
    code: t.string({ required: true, description: "The Python source of a Manim Community script (at most 1 MB)." }),
    sceneName: t.string({ required: true, description: "The Scene subclass to render." }),
    quality: t.field({ type: ManimQualityEnum, description: "Default MEDIUM." }),
    renderer: t.field({ type: ManimRendererEnum, description: "Default CAIRO." }),
    title: t.string({ required: true }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum }),
    idempotencyKey: t.string({ description: "The same key (per tenant) returns the same video instead of rendering again." }),
  }),
});

export const RenderSuccess = builder.objectRef<{ video: Video }>("RenderSuccess").implement({
  description: "The video whose source is being rendered or imported; follow it with `videoEvents`.",
  fields: (t) => ({ video: t.field({ type: VideoRef, resolve: (r) => r.video }) }),
});

/**
 * Creates a video whose source a worker makes (a render, an import) and its first job, queued in
 * one transaction; with an idempotency key an earlier call's video is returned as it is.
 */
export async function createRenderedVideo(
  ctx: Context,
  options: {
    title: string;
    idempotencyKey: string | null;
    playbackPolicy: "PUBLIC" | "SIGNED";
    source: "URL" | "MANIM" | "COMPOSITION";
    kind: "RENDER_MANIM" | "RENDER_COMPOSITION" | "IMPORT_URL";
    capability: "cpu" | "manim";
    input: Prisma.InputJsonValue;
  },
): Promise<Video> {
  const { video, created } = await createVideoOnce(ctx, options.idempotencyKey, {
    title: options.title,
    playbackPolicy: options.playbackPolicy,
    source: options.source,
    status: "QUEUED",
  });
  if (!created) return video;
  await ctx.db.job.create({ data: { videoId: video.id, kind: options.kind, capability: options.capability, input: options.input, maxAttempts: ctx.maxAttempts } });
  ctx.dispatcher.kick();
  ctx.pubSub.publish("videoEvents", video.id, { kind: "status", video: videoSnapshot(video) });
  return video;
}

const CreateVideoFromUrlInput = builder.inputType("CreateVideoFromUrlInput", {
  fields: (t) => ({
    url: t.string({ required: true, description: "An http(s) URL of a video file on the public internet." }),
    title: t.string({ required: true }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum }),
    idempotencyKey: t.string({ description: "The same key (per tenant) returns the same video instead of importing again." }),
  }),
});

builder.mutationFields((t) => ({
  createVideoFromUrl: t.field({
    type: RenderSuccess,
    description:
      "Imports a video from a public http(s) URL (IMPORT_URL job: a worker downloads it into storage, at most URL_IMPORT_MAX_BYTES, refusing private, loopback and link-local addresses after DNS resolution and on every redirect), then transcodes it.",
    authScopes: { scope: "videos:write" },
    args: { input: t.arg({ type: CreateVideoFromUrlInput, required: true }) },
    errors: { types: [ValidationError], union: { name: "CreateVideoFromUrlResult" } },
    resolve: async (_root, { input }, ctx) => {
      // The checks that need no network; the worker checks the addresses the host resolves to.
      const url = checkOutboundUrl(input.url, { allowHttp: true, maxLength: 8192 });
      if (typeof url === "string") throw new ValidationError("url", `Cannot be imported: ${url}`);
      const video = await createRenderedVideo(ctx, {
        title: validTitle(input.title),
        idempotencyKey: validIdempotencyKey(input.idempotencyKey),
        playbackPolicy: input.playbackPolicy ?? "PUBLIC",
        source: "URL",
        kind: "IMPORT_URL",
        capability: "cpu",
        input: { url: url.href },
      });
      return { video };
    },
  }),
  renderManim: t.field({
    type: RenderSuccess,
    description:
      "Renders a Manim scene in a sandboxed worker with the `manim` capability (RENDER_MANIM job), then transcodes it into the ladder (its child TRANSCODE job). `videoEvents` streams the render's progress per animation first. Syntax errors (with line numbers) and a missing scene class fail the video before any render; exceptions (with their line) and LaTeX errors (with the expression) fail it too, without retries. NoWorkerError when no worker can render Manim now.",
    authScopes: { scope: "videos:write" },
    args: { input: t.arg({ type: RenderManimInput, required: true }) },
    errors: { types: [ValidationError, NoWorkerError], union: { name: "RenderManimResult" } },
    resolve: async (_root, { input }, ctx) => {
      const title = validTitle(input.title);
      if (Buffer.byteLength(input.code) > MAX_SCENE_CODE_BYTES) throw new ValidationError("code", "The scene code is larger than 1 MB");
      if (!input.code.trim()) throw new ValidationError("code", "The scene code is empty");
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(input.sceneName)) throw new ValidationError("sceneName", "Not a Python class name");
      const unserved = await ctx.dispatcher.whyUnserved("manim");
      if (unserved) throw new NoWorkerError("manim", `No worker can render Manim scenes now: ${unserved}`);
      const video = await createRenderedVideo(ctx, {
        title,
        idempotencyKey: validIdempotencyKey(input.idempotencyKey),
        playbackPolicy: input.playbackPolicy ?? "PUBLIC",
        source: "MANIM",
        kind: "RENDER_MANIM",
        capability: "manim",
        input: { code: input.code, sceneName: input.sceneName, quality: input.quality ?? "MEDIUM", renderer: input.renderer ?? "CAIRO" },
      });
      return { video };
    },
  }),
}));
