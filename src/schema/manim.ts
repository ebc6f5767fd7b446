import { builder } from "../builder.ts";
import { NoWorkerError, NotFoundError, ValidationError } from "../errors.ts";
import { renderManim } from "../jobs/kinds/render-manim.ts";
import { createRenderedVideo } from "../videos/create-rendered-video.ts";
import { RenderSuccess } from "./rendered-video.ts";
import { validIdempotencyKey, validTitle } from "../videos/input-rules.ts";
import { creationOptionFields, validCreationOptions } from "./creation-options.ts";
import { PlaybackPolicyEnum } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const MAX_SCENE_CODE_BYTES = 1_000_000;

const ManimQualityEnum = builder.enumType("ManimQuality", {
  values: {
    LOW: { description: "854x480, 15 fps (`-ql`)" },
    MEDIUM: { description: "1280x720, 30 fps (`-qm`)" },
    HIGH: { description: "1920x1080, 60 fps (`-qh`)" },
    FOURK: { description: "3840x2160, 60 fps (`-qk`)" },
  } as const,
});
const ManimRendererEnum = builder.enumType("ManimRenderer", { values: ["CAIRO", "OPENGL"] as const });

const RenderManimInput = builder.inputType("RenderManimInput", {
  fields: (t) => ({
    code: t.string({ required: true, description: "The Python source of a Manim Community script (at most 1 MB)." }),
    sceneName: t.string({ required: true, description: "The Scene subclass to render." }),
    quality: t.field({ type: ManimQualityEnum, description: "Default MEDIUM." }),
    renderer: t.field({ type: ManimRendererEnum, description: "Default CAIRO." }),
    title: t.string({ required: true }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum }),
    idempotencyKey: t.string({
      description: "The same key (per tenant) returns the same video instead of rendering again.",
    }),
    ...creationOptionFields(t),
  }),
});

builder.mutationFields((t) => ({
  renderManim: t.field({
    type: RenderSuccess,
    description:
      "Renders a Manim scene in a sandboxed worker with the `manim` capability (RENDER_MANIM job), then transcodes " +
      "it into the ladder (its child TRANSCODE job). `videoEvents` streams the render's progress per animation " +
      "first. Syntax errors (with line numbers) and a missing scene class fail the video before any render; " +
      "exceptions (with their line) and LaTeX errors (with the expression) fail it too, without retries. " +
      "NoWorkerError when no worker can render Manim now.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["RENDER_MANIM", "TRANSCODE"] }),
    args: { input: t.arg({ type: RenderManimInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError, NoWorkerError], union: { name: "RenderManimResult" } },
    resolve: async (_root, { input }, ctx) => {
      const title = validTitle(input.title);
      if (Buffer.byteLength(input.code) > MAX_SCENE_CODE_BYTES) {
        throw new ValidationError("code", "The scene code is larger than 1 MB");
      }
      if (!input.code.trim()) throw new ValidationError("code", "The scene code is empty");
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(input.sceneName)) {
        throw new ValidationError("sceneName", "Not a Python class name");
      }
      const unserved = await ctx.dispatcher.whyUnserved(renderManim.capability);
      if (unserved) throw new NoWorkerError("manim", `No worker can render Manim scenes now: ${unserved}`);
      const options = await validCreationOptions(ctx, input);
      const video = await createRenderedVideo(ctx, {
        title,
        idempotencyKey: validIdempotencyKey(input.idempotencyKey),
        playbackPolicy: input.playbackPolicy ?? "PUBLIC",
        options,
        source: "MANIM",
        kind: "RENDER_MANIM",
        input: {
          code: input.code,
          sceneName: input.sceneName,
          quality: input.quality ?? "MEDIUM",
          renderer: input.renderer ?? "CAIRO",
        },
      });
      return { video };
    },
  }),
}));
