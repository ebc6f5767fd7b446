import { builder } from "../builder.ts";
import { createCompositionVideo } from "../compositions/render-composition.ts";
import { GeminiError, GeminiNotConfiguredError, generateQuizQuestions } from "../compositions/quiz-generation.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { QuizQuestion } from "../protocol/source-messages.ts";
import { ErrorInterface } from "./errors.ts";
import { RenderSuccess } from "./rendered-video.ts";
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
      const options = await validCreationOptions(ctx, input);
      const video = await createCompositionVideo(ctx, input, options);
      return { video };
    },
  }),
}));
