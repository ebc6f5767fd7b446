import type { QuizQuestion } from "../../src/protocol/source-messages.ts";
import { concatParts, renderFilterGraph } from "./render-graph.ts";
import { synthesizeSpeech } from "../media/speech.ts";
import {
  narrationText,
  quizSegmentGraph,
  quizSegmentSeconds,
  writeQuestionText,
  type QuizAssets,
  type QuizSegmentSpec,
} from "./quiz-graph.ts";

export interface RenderQuizArgs {
  questions: QuizQuestion[];
  secondsPerQuestion: number;
  width: number;
  height: number;
  /** espeak-ng voice for narration, or null for none. */
  voice: string | null;
  /** Local files of the assets (already fetched from storage). */
  assets: QuizAssets;
  workDir: string;
  /** The mp4 to write, relative to `workDir`. */
  outFile: string;
  signal: AbortSignal;
  /**
   * `segments` renders each question in its own ffmpeg process and joins the parts without
   * re-encoding; `single-graph` renders all of them in one process.
   */
  strategy?: "segments" | "single-graph";
  /** Question `index` (0-based) is being rendered; `fraction` of it is done. */
  onProgress?: (index: number, fraction: number) => void;
}

/** Renders a quiz into one H.264/AAC mp4. */
export async function renderQuiz(args: RenderQuizArgs): Promise<void> {
  const specs: QuizSegmentSpec[] = [];
  for (const [index, question] of args.questions.entries()) {
    let narration: string | null = null;
    if (args.voice !== null) {
      narration = `narration-${index}.wav`;
      const { workDir, signal } = args;
      await synthesizeSpeech({ text: narrationText(question), voice: args.voice, outFile: narration, workDir, signal });
    }
    specs.push({
      question,
      index,
      count: args.questions.length,
      secondsPerQuestion: args.secondsPerQuestion,
      width: args.width,
      height: args.height,
      assets: args.assets,
      narration,
    });
  }
  const texts = await Promise.all(specs.map((spec) => writeQuestionText(spec, args.workDir, `q${spec.index}-`)));

  if ((args.strategy ?? "segments") === "single-graph") {
    let nextInput = 0;
    const graphs = specs.map((spec) => {
      const graph = quizSegmentGraph(spec, texts[spec.index]!, nextInput, `q${spec.index}`);
      nextInput += graph.inputs.length;
      return graph;
    });
    const duration = graphs.reduce((sum, g) => sum + g.durationSeconds, 0);
    const joined = graphs.map((g) => `[${g.videoLabel}][${g.audioLabel}]`).join("");
    const segment = quizSegmentSeconds(args.secondsPerQuestion);
    await renderFilterGraph({
      inputs: graphs.flatMap((g) => g.inputs),
      filterGraph: `${graphs.map((g) => g.filter).join(";")};${joined}concat=n=${graphs.length}:v=1:a=1[quizv][quiza]`,
      videoLabel: "quizv",
      audioLabel: "quiza",
      outFile: args.outFile,
      durationSeconds: duration,
      workDir: args.workDir,
      signal: args.signal,
      onProgress: (seconds) => {
        const index = Math.min(specs.length - 1, Math.floor(seconds / segment));
        args.onProgress?.(index, Math.min(1, seconds / segment - index));
      },
    });
    return;
  }

  const parts: string[] = [];
  for (const spec of specs) {
    const graph = quizSegmentGraph(spec, texts[spec.index]!, 0, "");
    const part = `part-${String(spec.index).padStart(3, "0")}.mp4`;
    args.onProgress?.(spec.index, 0);
    await renderFilterGraph({
      inputs: graph.inputs,
      filterGraph: graph.filter,
      videoLabel: graph.videoLabel,
      audioLabel: graph.audioLabel,
      outFile: part,
      durationSeconds: graph.durationSeconds,
      workDir: args.workDir,
      signal: args.signal,
      onProgress: (seconds) => args.onProgress?.(spec.index, Math.min(1, seconds / graph.durationSeconds)),
    });
    parts.push(part);
  }
  await concatParts({ parts, outFile: args.outFile, workDir: args.workDir, signal: args.signal });
}
