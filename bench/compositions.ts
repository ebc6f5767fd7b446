// Composition throughput (`npm run bench:compositions`): S1's videos, narrated quiz compositions
// (questions in, espeak-ng narration, 1080p out), made as the worker makes them: `renderQuiz` (the
// RENDER_COMPOSITION job) then `encodeLadder` with the shipped tuning on its output (the TRANSCODE
// job that follows it). Prints the CPU seconds of each part, quiz videos per core-hour, the CPU cost
// of one at the cost model's vCPU price, and the 4-vCPU workers 80,000 a day keep busy, beside an
// upload of the same length and frame size through the same ladder in the same run
// (docs/performance.md, "Compositions").
//   npm run bench:compositions                          S1's shape: 10 questions, 4 choices, narrated, 1080p
//   npm run bench:compositions -- --questions=3 --runs=1   a quick look
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const USAGE = `usage: npm run bench:compositions -- [--questions=N] [--height=H] [--runs=R] [--voice=V]
Renders a quiz of N questions (4 choices each, narrated with espeak-ng voice V; --voice=none for
none) at H (16:9) R times as the worker does, encodes each render's ladder with the shipped tuning,
and prints per part (narration, composition, ladder) the CPU seconds (median of R), quiz videos per
core-hour, the CPU cost per video, and the 4-vCPU workers 80,000 a day take; beside it, the same
ladder on an upload of the same length and frame size (lavfi testsrc2 and a tone), in the same run.
Defaults: 10 questions, 1080, 3 runs, en-us.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    questions: { type: "string", default: "10" },
    height: { type: "string", default: "1080" },
    runs: { type: "string", default: "3" },
    voice: { type: "string", default: "en-us" },
  },
});
const count = Number(flags.questions);
const height = Number(flags.height);
const runs = Number(flags.runs);
if (!Number.isInteger(count) || count < 1 || count > 100) usageError(USAGE, "--questions must be 1 to 100");
if (![360, 720, 1080].includes(height)) usageError(USAGE, "--height must be 360, 720 or 1080");
if (!Number.isInteger(runs) || runs < 1 || runs > 20) usageError(USAGE, "--runs must be 1 to 20");
const voice = flags.voice === "none" ? null : flags.voice;

// The bench's machinery is imported once the command line is read: --help needs none of it.
const { execFile } = await import("node:child_process");
const { promisify } = await import("node:util");
const { renderQuiz } = await import("../render-worker/composition/render-quiz.ts");
const { narrationText, quizSegmentSeconds } = await import("../render-worker/composition/quiz-graph.ts");
const { synthesizeSpeech } = await import("../render-worker/media/speech.ts");
const { encodeLadder, runEncodeSettings } = await import("../render-worker/media/encode-ladder.ts");
const { planLadder } = await import("../render-worker/media/ladder.ts");
const { probeSource } = await import("../render-worker/media/probe.ts");
const { segmentPlan } = await import("../render-worker/media/segments.ts");
const { processTreeCpuSeconds } = await import("../render-worker/cpu-meter.ts");
const { DEFAULT_COST_SETTINGS } = await import("../src/costs/cost-model.ts");
const { loadEnv } = await import("../src/config.ts");

const width = (height * 16) / 9;
const SECONDS_PER_QUESTION = 5;
const VIDEOS_A_DAY = 80_000;
const WORKER_VCPUS = 4;
/** What one 4-vCPU worker delivers: 80 % of its vCPUs kept busy (deploy/CAPACITY.md, "CPU workers"). */
const WORKER_CPU_PER_SECOND = 3.2;
const signal = new AbortController().signal;
const segmentSeconds = loadEnv({}).HLS_SEGMENT_SECONDS;

/** S1-like questions: a sentence of a question and four short choices, each different. */
const questions = Array.from({ length: count }, (_, i) => ({
  question: `Question ${i + 1}: which of these rivers flows through the capital city named in chapter ${i + 3}?`,
  choices: [`The Danube (${i})`, `The Thames (${i})`, `The Seine (${i})`, `The Tiber (${i})`],
  answerIndex: i % 4,
}));

/** Runs `work` in a fresh dir and returns its wall and CPU seconds (this process and its reaped children). */
async function measured<T>(work: (dir: string) => Promise<T>): Promise<{ wall: number; cpu: number; value: T }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-compositions-"));
  try {
    const cpu0 = processTreeCpuSeconds();
    const wall0 = performance.now();
    const value = await work(dir);
    return { wall: (performance.now() - wall0) / 1000, cpu: processTreeCpuSeconds() - cpu0, value };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The TRANSCODE job's ladder on `file`, as the worker encodes it (shipped tuning, its segments). */
async function ladderOf(file: string, dir: string): Promise<void> {
  const { input, probe } = await probeSource(file);
  const plan = segmentPlan(segmentSeconds);
  const ladder = planLadder(probe, { segmentSeconds, segmentFormat: "TS" });
  await encodeLadder({ input, probe, ladder, workDir: dir, ...runEncodeSettings({}, plan, "TS", signal) }).done;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!;
};
const videoSeconds = count * quizSegmentSeconds(SECONDS_PER_QUESTION);

console.log(
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? "CPU"}; load average ${os.loadavg()[0]!.toFixed(1)}; ` +
    `${new Date().toISOString()}`,
);
console.log(
  `a quiz of ${count} questions, ${voice ? `narrated (${voice})` : "no narration"}, ${width}x${height}: ` +
    `${videoSeconds} s of video; ${runs} run(s), medians`,
);

const parts = { narration: [] as number[], composition: [] as number[], ladder: [] as number[], wall: [] as number[] };
const upload = { ladder: [] as number[] };
for (let run = 0; run < runs; run++) {
  // Narration alone (the render below speaks again): its share of the render's CPU.
  if (voice) {
    const speech = await measured(async (dir) => {
      for (const [i, q] of questions.entries())
        await synthesizeSpeech({ text: narrationText(q), voice, outFile: `n${i}.wav`, workDir: dir, signal });
    });
    parts.narration.push(speech.cpu);
  } else parts.narration.push(0);
  const made = await measured(async (dir) => {
    const render = await measured(() =>
      renderQuiz({
        questions,
        secondsPerQuestion: SECONDS_PER_QUESTION,
        width,
        height,
        voice,
        assets: {},
        workDir: dir,
        outFile: "composition.mp4",
        signal,
      }),
    );
    const ladder = await measured((ladderDir) => ladderOf(path.join(dir, "composition.mp4"), ladderDir));
    return { render: render.cpu, ladder: ladder.cpu };
  });
  parts.composition.push(made.value.render - parts.narration.at(-1)!);
  parts.ladder.push(made.value.ladder);
  parts.wall.push(made.wall);

  // The anchor: an upload of the same length and size through the same ladder.
  const anchor = await measured(async (dir) => {
    const file = path.join(dir, "upload.mp4");
    await promisify(execFile)("ffmpeg", [
      ...["-v", "error", "-f", "lavfi", "-i", `testsrc2=size=${width}x${height}:rate=25:duration=${videoSeconds}`],
      ...["-f", "lavfi", "-i", `sine=frequency=440:duration=${videoSeconds}`],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-c:a", "aac", "-shortest", file],
    ]);
    return (await measured((ladderDir) => ladderOf(file, ladderDir))).cpu;
  });
  upload.ladder.push(anchor.value);
  console.log(
    `run ${run + 1}: narration ${parts.narration.at(-1)!.toFixed(1)} CPU s, composition ` +
      `${parts.composition.at(-1)!.toFixed(1)}, ladder ${parts.ladder.at(-1)!.toFixed(1)}; ` +
      `the upload's ladder ${anchor.value.toFixed(1)}; wall ${made.wall.toFixed(1)} s`,
  );
}

const narration = median(parts.narration);
const composition = median(parts.composition);
const ladder = median(parts.ladder);
const total = narration + composition + ladder;
const uploadLadder = median(upload.ladder);
const vcpuSecondUsd = DEFAULT_COST_SETTINGS.prices.vcpuSecondUsd;
const workers = (cpuSeconds: number) => (VIDEOS_A_DAY * cpuSeconds) / (86_400 * WORKER_CPU_PER_SECOND);
const row = (name: string, cpu: number) =>
  `${name.padEnd(34)}${cpu.toFixed(1).padStart(8)}${((100 * cpu) / total).toFixed(0).padStart(6)} %`;
console.log(`\n${"part".padEnd(34)}${"CPU s".padStart(8)}${"share".padStart(8)}`);
console.log(row("narration (espeak-ng)", narration));
console.log(row("composition (drawing, its encode)", composition));
console.log(row("ladder (the TRANSCODE job)", ladder));
console.log(row("a quiz video", total));
console.log(
  `\nquiz videos per core-hour: ${(3600 / total).toFixed(1)}; CPU cost per video: $${(total * vcpuSecondUsd).toFixed(5)} ` +
    `(at $${vcpuSecondUsd}/vCPU-s); ${VIDEOS_A_DAY.toLocaleString("en")} a day: ${workers(total).toFixed(1)} ` +
    `${WORKER_VCPUS}-vCPU workers busy on average (${WORKER_CPU_PER_SECOND} CPU s a second each, deploy/CAPACITY.md)`,
);
console.log(
  `anchor, the same run: an upload of ${videoSeconds} s at ${width}x${height} through the same ladder: ` +
    `${uploadLadder.toFixed(1)} CPU s (${(3600 / uploadLadder).toFixed(1)} a core-hour, ${workers(uploadLadder).toFixed(1)} workers ` +
    `for ${VIDEOS_A_DAY.toLocaleString("en")} a day); a quiz video costs ${(total / uploadLadder).toFixed(2)} × it`,
);
