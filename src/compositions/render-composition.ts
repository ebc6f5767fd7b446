import { tenantOf, type Context } from "../context.ts";
import { quotedId, ValidationError } from "../errors.ts";
import type { Video } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { renderComposition } from "../jobs/kinds/render-composition.ts";
import { QuizQuestion } from "../protocol/source-messages.ts";
import { createRenderedVideo } from "../videos/create-rendered-video.ts";
import type { CreationOptions } from "../videos/creation-options.ts";
import { validIdempotencyKey, validTitle } from "../videos/input-rules.ts";
import { parseQuizCsv, QuizCsvError } from "./quiz-csv.ts";

/** What `renderComposition` asks for, as its input type reads it. */
export interface CompositionRequest {
  template: "QUIZ";
  questions?: readonly unknown[] | null;
  csv?: string | null;
  secondsPerQuestion?: number | null;
  voice?: string | null;
  backgroundAssetId?: string | number | null;
  timerAssetId?: string | number | null;
  correctSoundAssetId?: string | number | null;
  width?: number | null;
  height?: number | null;
  title: string;
  playbackPolicy?: "PUBLIC" | "SIGNED" | null;
  idempotencyKey?: string | null;
}

type AssetField = "backgroundAssetId" | "timerAssetId" | "correctSoundAssetId";
const ASSET_KINDS: Record<AssetField, string> = {
  backgroundAssetId: "BACKGROUND",
  timerAssetId: "TIMER",
  correctSoundAssetId: "CORRECT_SOUND",
};
const MAX_QUESTIONS = 100;

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
  if (questions.length > MAX_QUESTIONS) throw new ValidationError("questions", `At most ${MAX_QUESTIONS} questions`);
  return questions;
}

/** The render's settings with their defaults, refused here (naming the field) where the job would refuse them. */
function renderSettings(input: CompositionRequest) {
  const settings = {
    secondsPerQuestion: input.secondsPerQuestion ?? 5,
    narration: input.voice ? { voice: input.voice } : null,
    width: input.width ?? 1280,
    height: input.height ?? 720,
  };
  const check = renderComposition.input
    .pick({ secondsPerQuestion: true, narration: true, width: true, height: true })
    .safeParse(settings);
  if (!check.success) {
    const issue = check.error.issues[0]!;
    const field = issue.path[0] === "narration" ? "voice" : String(issue.path[0]);
    throw new ValidationError(field, `${field}: ${issue.message}`);
  }
  return settings;
}

/**
 * A video rendered from a template composition and its data (today the QUIZ template: questions
 * from a list or CSV, the tenant's assets, narration), its RENDER_COMPOSITION job queued.
 */
export async function createCompositionVideo(
  ctx: Context,
  input: CompositionRequest,
  options: CreationOptions,
): Promise<Video> {
  const title = validTitle(input.title);
  const questions = questionsFrom(input);
  const assets = {
    backgroundKey: await assetKey(ctx, "backgroundAssetId", input.backgroundAssetId),
    timerKey: await assetKey(ctx, "timerAssetId", input.timerAssetId),
    correctSoundKey: await assetKey(ctx, "correctSoundAssetId", input.correctSoundAssetId),
  };
  const settings = renderSettings(input);
  return createRenderedVideo(ctx, {
    title,
    idempotencyKey: validIdempotencyKey(input.idempotencyKey),
    playbackPolicy: input.playbackPolicy ?? "PUBLIC",
    options,
    source: "COMPOSITION",
    kind: "RENDER_COMPOSITION",
    input: { template: input.template, questions, assets, ...settings },
  });
}
