import path from "node:path";
import type { RenderCompositionJobMessage } from "../../src/protocol/source-messages.ts";
import { estimateJobMemoryBytes } from "../admission.ts";
import type { QuizAssets } from "../composition/quiz-graph.ts";
import { renderQuiz } from "../composition/render-quiz.ts";
import { MediaError } from "../media/errors.ts";
import { probeContainer, probeSource } from "../media/probe.ts";
import { reportQuizProgress } from "../progress/job-progress.ts";
import type { WorkerStorage } from "../storage/types.ts";
import { sourceReady, storeSource } from "./rendered-source.ts";
import type { JobContext } from "./types.ts";

const OUTPUT_FILE = "composition.mp4";

/**
 * Renders a quiz composition to one mp4 at `outputKey`. Emits started, step.progress (per
 * question) and source.ready (the transcode of the output is its own job).
 */
export async function renderComposition(job: RenderCompositionJobMessage, ctx: JobContext): Promise<void> {
  const { signal } = ctx;
  await ctx.emit({ type: "job.started" });
  const assets = await resolveAssets(job, ctx.storage, signal);
  const releaseMemory = ctx.reserveMemory?.(estimateJobMemoryBytes(job)) ?? (() => {});
  const progress = reportQuizProgress(ctx, job.questions);
  try {
    await renderQuiz({
      questions: job.questions,
      secondsPerQuestion: job.secondsPerQuestion,
      width: job.width,
      height: job.height,
      voice: job.narration?.voice ?? null,
      assets,
      workDir: ctx.workDir,
      outFile: OUTPUT_FILE,
      signal,
      onProgress: progress.update,
    });
  } finally {
    await progress.stop();
    releaseMemory();
  }
  const outFile = path.join(ctx.workDir, OUTPUT_FILE);
  const probe = await storeSource(ctx, outFile, job.outputKey);
  await progress.finished();
  await ctx.emit(sourceReady(job.outputKey, probe, { rendered: job.questions.length, cached: 0 }));
}

/** Where ffmpeg reads each asset from, checked to be the kind of media its place needs. */
async function resolveAssets(
  job: RenderCompositionJobMessage,
  storage: WorkerStorage,
  signal: AbortSignal,
): Promise<QuizAssets> {
  const assets: QuizAssets = {};
  const { backgroundKey, timerKey, correctSoundKey } = job.assets;
  if (backgroundKey) {
    const location = await assetInput(storage, "backgroundKey", backgroundKey);
    const background = await probeAsset("backgroundKey", backgroundKey, location, signal);
    assets.background = background.input;
  }
  if (timerKey) {
    const timer = await probeAsset("timerKey", timerKey, await assetInput(storage, "timerKey", timerKey), signal);
    if (timer.probe.duration <= 0) throw assetError("timerKey", timerKey, "it has no duration");
    assets.timer = { input: timer.input, durationSeconds: timer.probe.duration };
  }
  if (correctSoundKey) {
    const location = await assetInput(storage, "correctSoundKey", correctSoundKey);
    const sound = await probeContainer(location, { signal }).catch((err: Error) => {
      if (err instanceof MediaError && err.retryable) throw err;
      throw assetError("correctSoundKey", correctSoundKey, err.message);
    });
    if (!sound.data.streams?.some((s) => s.codec_type === "audio")) {
      throw assetError("correctSoundKey", correctSoundKey, "it has no audio stream");
    }
    assets.correctSound = sound.input;
  }
  return assets;
}

async function assetInput(storage: WorkerStorage, field: string, key: string): Promise<string> {
  try {
    return await storage.inputFor(key);
  } catch (err) {
    throw assetError(field, key, (err as Error).message);
  }
}

async function probeAsset(field: string, key: string, input: string, signal: AbortSignal) {
  try {
    return await probeSource(input, { signal });
  } catch (err) {
    if (err instanceof MediaError && err.retryable) throw err;
    throw assetError(field, key, (err as Error).message);
  }
}

function assetError(field: string, key: string, reason: string): MediaError {
  const message = `The composition's ${field} asset ${path.basename(key)} cannot be used: ${reason}`;
  return new MediaError(message, { retryable: false });
}
