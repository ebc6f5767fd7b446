/** The job messages that make a video's source: a Manim scene, a quiz composition, a URL import. */
import { z } from "zod";
import { readVersion, Traceparent } from "./version.ts";

/** Manim's quality presets: `-ql` 854x480 15 fps, `-qm` 1280x720 30, `-qh` 1920x1080 60, `-qk` 3840x2160 60. */
export const ManimQuality = z.enum(["LOW", "MEDIUM", "HIGH", "FOURK"]);
export type ManimQuality = z.infer<typeof ManimQuality>;
export const ManimRenderer = z.enum(["CAIRO", "OPENGL"]);
export type ManimRenderer = z.infer<typeof ManimRenderer>;

/**
 * Renders one scene of a Manim (Community Edition) script to an MP4 at `outputKey`, in a sandbox.
 * Partial movie files (one per animation) are kept under `cachePrefix`, so a re-render of an
 * edited scene renders only the animations whose Manim hash changed.
 */
export const RenderManimJobMessage = z.object({
  v: readVersion,
  type: z.literal("render_manim"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  /** Whose cache this is; the API builds `cachePrefix` from it. */
  tenantId: z.string().min(1),
  /** The Python source of the script. */
  code: z.string().min(1).max(1_000_000),
  /** The Scene subclass to render. */
  sceneName: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not a Python class name"),
  quality: ManimQuality,
  renderer: ManimRenderer.default("CAIRO"),
  /** Storage key of the rendered MP4, e.g. `videos/{videoId}/source/scene.mp4`. */
  outputKey: z.string().min(1),
  /** Storage prefix of the tenant's partial movie files, e.g. `manim-cache/{tenantId}`. */
  cachePrefix: z.string().min(1),
});
export type RenderManimJobMessage = z.infer<typeof RenderManimJobMessage>;

/** One quiz question: 2 to 6 choices, `answerIndex` the correct one (0-based). */
export const QuizQuestion = z
  .object({
    question: z.string().trim().min(1).max(500),
    choices: z.array(z.string().trim().min(1).max(200)).min(2).max(6),
    answerIndex: z.number().int().nonnegative(),
    explanation: z.string().max(1000).optional(),
  })
  .refine((q) => q.answerIndex < q.choices.length, {
    message: "answerIndex must point at one of the choices",
    path: ["answerIndex"],
  });
export type QuizQuestion = z.infer<typeof QuizQuestion>;

/** Renders a quiz to one mp4 at `outputKey` (a render job; its transcode is a separate job). */
export const RenderCompositionJobMessage = z.object({
  v: readVersion,
  type: z.literal("render_composition"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  template: z.literal("QUIZ"),
  questions: z.array(QuizQuestion).min(1).max(100),
  /** How long each question shows with its timer, before the answer is revealed. */
  secondsPerQuestion: z.number().min(1).max(60).default(5),
  /** espeak-ng reads each question and its choices; the voice name goes to `espeak-ng -v`. */
  narration: z
    .object({ voice: z.string().regex(/^[A-Za-z0-9_+-]{1,64}$/) })
    .nullable()
    .default(null),
  /** Storage keys of tenant-uploaded assets; each replaces a built-in look or sound. */
  assets: z
    .object({
      backgroundKey: z.string().min(1).optional(),
      timerKey: z.string().min(1).optional(),
      correctSoundKey: z.string().min(1).optional(),
    })
    .default({}),
  width: z.number().int().min(320).max(3840).multipleOf(2).default(1280),
  height: z.number().int().min(240).max(2160).multipleOf(2).default(720),
  /** Storage key of the rendered mp4, e.g. `videos/{videoId}/source/composition.mp4`. */
  outputKey: z.string().min(1),
});
export type RenderCompositionJobMessage = z.infer<typeof RenderCompositionJobMessage>;

/** Downloads a video from a public http(s) URL into storage at `outputKey`. */
export const ImportUrlJobMessage = z.object({
  v: readVersion,
  type: z.literal("import_url"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  url: z.string().min(1).max(8192),
  /** Larger responses are refused, whether they say so in Content-Length or not. */
  maxBytes: z.number().int().positive(),
  outputKey: z.string().min(1),
  /** Test-only: lets the worker fetch loopback and private addresses. Never set it in production. */
  allowPrivateAddresses: z.boolean().default(false),
});
export type ImportUrlJobMessage = z.infer<typeof ImportUrlJobMessage>;
