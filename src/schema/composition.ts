import { builder } from "../builder.ts";
import { tenantOf, type Context } from "../context.ts";
import { NotFoundError, quotedId, ValidationError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { renderComposition } from "../jobs/kinds/render-composition.ts";
import { QuizQuestion } from "../protocol/source-messages.ts";
import { GeminiError, GeminiNotConfiguredError, generateQuizQuestions } from "../quiz/generate-quiz.ts";
import { parseQuizCsv, QuizCsvError } from "../quiz/parse-quiz-csv.ts";
import { ErrorInterface } from "./errors.ts";
import { createRenderedVideo, RenderSuccess } from "./rendered-video.ts";
import { validIdempotencyKey, validTitle } from "../videos/input-rules.ts";
import { creationOptionFields, validCreationOptions } from "./creation-options.ts";
import { PlaybackPolicyEnum } from "./video.ts";
import { mutationWork } from "../jobs/mutation-work.ts";

const CompositionTemplateEnum = builder.enumType("CompositionTemplate", {
  values: {
    QUIZ: {
      description:
        "A narrated quiz: per question the question, a timer bar, the choices, then the answer with a sound cue.",
    },
  } as const,
});

const QuizQuestionInput = builder.inputType("QuizQuestionInput", {
  fields: (t) => ({
    question: t.string({ required: true }),
    choices: t.stringList({ required: true, description: "2 to 6 choices." }),
    answerIndex: t.int({ required: true, description: "The correct choice, from 0." }),
    explanation: t.string(),
  }),
});

const QuizQuestionRef = builder.objectRef<QuizQuestion>("QuizQuestion").implement({
  fields: (t) => ({
    question: t.exposeString("question"),
    choices: t.exposeStringList("choices"),
    answerIndex: t.exposeInt("answerIndex"),
    explanation: t.exposeString("explanation", { nullable: true }),
  }),
});

const RenderCompositionInput = builder.inputType("RenderCompositionInput", {
  fields: (t) => ({
    template: t.field({ type: CompositionTemplateEnum, required: true }),
    questions: t.field({ type: [QuizQuestionInput], description: "The questions; or `csv`." }),
    csv: t.string({
      description:
        "Rows `question,choice1,choice2,choice3,choice4,answer` (answer: A-D, 1-4 or the choice's text); " +
        "or `questions`.",
    }),
    secondsPerQuestion: t.float({ description: "How long each question shows before its answer; default 5." }),
    voice: t.string({
      description:
        "Narrate each question and its choices with this espeak-ng voice (e.g. `en-us`); no narration when absent.",
    }),
    backgroundAssetId: t.id({ description: "A BACKGROUND asset (uploadAsset) instead of the built-in background." }),
    timerAssetId: t.id({ description: "A TIMER asset instead of the built-in timer bar." }),
    correctSoundAssetId: t.id({ description: "A CORRECT_SOUND asset instead of the built-in ding." }),
    width: t.int({ description: "Default 1280." }),
    height: t.int({ description: "Default 720." }),
    title: t.string({ required: true }),
    playbackPolicy: t.field({ type: PlaybackPolicyEnum }),
    idempotencyKey: t.string({
      description: "The same key (per tenant) returns the same video instead of rendering again.",
    }),
    ...creationOptionFields(t),
  }),
});

type AssetField = "backgroundAssetId" | "timerAssetId" | "correctSoundAssetId";
const ASSET_KINDS: Record<AssetField, string> = {
  backgroundAssetId: "BACKGROUND",
  timerAssetId: "TIMER",
  correctSoundAssetId: "CORRECT_SOUND",
};

/** The storage key of the caller's asset `id`, checked to be of the kind the field takes. */
async function assetKey(
  ctx: Context,
  field: AssetField,
  id: string | number | null | undefined,
): Promise<string | undefined> {
  if (id === null || id === undefined) return undefined;
  const asset = isUuid(String(id))
    ? await ctx.db.asset.findFirst({ where: { id: String(id), tenantId: tenantOf(ctx) } })
    : null;
  if (!asset) throw new ValidationError(field, `No asset with id ${quotedId(String(id))}`);
  if (asset.kind !== ASSET_KINDS[field]) {
    const wanted = ASSET_KINDS[field];
    throw new ValidationError(field, `Asset ${asset.name} is a ${asset.kind} asset; this field takes a ${wanted} one`);
  }
  return asset.key;
}

/** Questions from either input, each checked by the contract's own schema. */
function questionsFrom(input: { questions?: readonly unknown[] | null; csv?: string | null }): QuizQuestion[] {
  const given = (input.questions ? 1 : 0) + (input.csv ? 1 : 0);
  if (given !== 1) throw new ValidationError("questions", "Give the questions either as `questions` or as `csv`");
  let questions: QuizQuestion[];
  if (input.csv) {
    try {
      questions = parseQuizCsv(input.csv);
    } catch (err) {
      if (err instanceof QuizCsvError) throw new ValidationError("csv", err.message);
      throw err;
    }
  } else {
    questions = input.questions!.map((q, i) => {
      const parsed = QuizQuestion.safeParse(q);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new ValidationError(`questions[${i}].${issue.path.join(".")}`, `Question ${i + 1}: ${issue.message}`);
      }
      return parsed.data;
    });
  }
  if (questions.length === 0) throw new ValidationError("questions", "At least one question is needed");
  if (questions.length > 100) throw new ValidationError("questions", "At most 100 questions");
  return questions;
}

const QuizDifficultyEnum = builder.enumType("QuizDifficulty", { values: ["EASY", "MEDIUM", "HARD"] as const });

/** The service cannot do this here (generateQuiz without GEMINI_API_KEY). */
builder.objectType(GeminiNotConfiguredError, {
  name: "NotConfiguredError",
  interfaces: [ErrorInterface],
  fields: () => ({}),
});

/** Gemini failed or answered something unusable; the message says which. */
builder.objectType(GeminiError, {
  name: "GenerationError",
  interfaces: [ErrorInterface],
  fields: () => ({}),
});

const GenerateQuizSuccess = builder.objectRef<{ questions: QuizQuestion[] }>("GenerateQuizSuccess").implement({
  fields: (t) => ({ questions: t.field({ type: [QuizQuestionRef], resolve: (r) => r.questions }) }),
});

builder.mutationFields((t) => ({
  generateQuiz: t.field({
    type: GenerateQuizSuccess,
    description:
      "Asks Gemini (structured output) for quiz questions to pass to renderComposition. Needs GEMINI_API_KEY on the " +
      "API; without it the answer is a NotConfiguredError saying so.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: [], points: 10 }),
    args: {
      topic: t.arg.string({ required: true }),
      count: t.arg.int({ required: true, description: "1 to 20." }),
      difficulty: t.arg({ type: QuizDifficultyEnum, required: true }),
    },
    errors: { types: [ValidationError, GeminiNotConfiguredError, GeminiError], union: { name: "GenerateQuizResult" } },
    resolve: async (_root, { topic, count, difficulty }, ctx) => {
      if (!topic.trim() || topic.length > 300) throw new ValidationError("topic", "A topic has 1 to 300 characters");
      if (count < 1 || count > 20) throw new ValidationError("count", "Between 1 and 20 questions");
      return { questions: await generateQuizQuestions({ topic: topic.trim(), count, difficulty }, ctx.gemini) };
    },
  }),
  renderComposition: t.field({
    type: RenderSuccess,
    description:
      "Renders a template composition (a narrated QUIZ) in a worker (RENDER_COMPOSITION job), then transcodes it " +
      "into the ladder. `videoEvents` streams the render's progress per question first.",
    authScopes: { scope: "videos:write" },
    extensions: mutationWork({ jobs: ["RENDER_COMPOSITION", "TRANSCODE"] }),
    args: { input: t.arg({ type: RenderCompositionInput, required: true }) },
    errors: { types: [ValidationError, NotFoundError], union: { name: "RenderCompositionResult" } },
    resolve: async (_root, { input }, ctx) => {
      const title = validTitle(input.title);
      const questions = questionsFrom(input);
      const assets = {
        backgroundKey: await assetKey(ctx, "backgroundAssetId", input.backgroundAssetId),
        timerKey: await assetKey(ctx, "timerAssetId", input.timerAssetId),
        correctSoundKey: await assetKey(ctx, "correctSoundAssetId", input.correctSoundAssetId),
      };
      const settings = {
        secondsPerQuestion: input.secondsPerQuestion ?? 5,
        narration: input.voice ? { voice: input.voice } : null,
        width: input.width ?? 1280,
        height: input.height ?? 720,
      };
      // createJob (and the worker) would refuse these too; refused here, the error names the field.
      const check = renderComposition.input
        .pick({
          secondsPerQuestion: true,
          narration: true,
          width: true,
          height: true,
        })
        .safeParse(settings);
      if (!check.success) {
        const issue = check.error.issues[0]!;
        const field = issue.path[0] === "narration" ? "voice" : String(issue.path[0]);
        throw new ValidationError(field, `${field}: ${issue.message}`);
      }
      const options = await validCreationOptions(ctx, input);
      const video = await createRenderedVideo(ctx, {
        title,
        idempotencyKey: validIdempotencyKey(input.idempotencyKey),
        playbackPolicy: input.playbackPolicy ?? "PUBLIC",
        options,
        source: "COMPOSITION",
        kind: "RENDER_COMPOSITION",
        input: { template: input.template, questions, assets, ...settings },
      });
      return { video };
    },
  }),
}));
