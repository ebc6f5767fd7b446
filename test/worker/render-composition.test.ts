import { execFile } from "node:child_process";
import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { RenderCompositionJobMessage, type QuizQuestion } from "../../src/protocol/source-messages.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { parseQuizCsv } from "../../src/compositions/quiz-csv.ts";
import {
  quizSegmentGraph,
  REVEAL_SECONDS,
  wrapText,
  writeQuestionText,
} from "../../render-worker/composition/quiz-graph.ts";
import { renderComposition } from "../../render-worker/handlers/render-composition.ts";
import { MediaError } from "../../render-worker/media/errors.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { jobDirsPerTest, runFfmpeg } from "../support/media-fixtures.ts";
import { contractCheckedEmit } from "../support/job-events.ts";

const run = promisify(execFile);
const JOB_ID = "5c3e1f0a-9b7d-4e2a-8c61-2f4b6d8e0a13";
const VIDEO_ID = "b7e2c4d6-1a3f-4b5c-9d8e-0f1a2b3c4d5e";
// Small frames keep the renders quick; the layout scales with the frame.
const WIDTH = 640;
const HEIGHT = 360;

const dirs = jobDirsPerTest("composition");

const QUESTIONS: QuizQuestion[] = [
  {
    question: "What is the capital of France?",
    choices: ["Paris", "Lyon", "Marseille", "Nice"],
    answerIndex: 0,
    explanation: "Since 987.",
  },
  { question: "Which planet is red?", choices: ["Venus", "Mars"], answerIndex: 1 },
  { question: "2 + 2 = ?", choices: ["3", "4", "5"], answerIndex: 1 },
];

function job(fields: Partial<Record<string, unknown>>): RenderCompositionJobMessage {
  return RenderCompositionJobMessage.parse({
    v: 1,
    type: "render_composition",
    jobId: JOB_ID,
    attempt: 1,
    videoId: VIDEO_ID,
    template: "QUIZ",
    questions: QUESTIONS,
    secondsPerQuestion: 2,
    narration: null,
    width: WIDTH,
    height: HEIGHT,
    outputKey: `videos/${VIDEO_ID}/source/composition.mp4`,
    ...fields,
  });
}

/** Runs the handler as the worker would, checking every event against the contract. */
async function render(message: RenderCompositionJobMessage): Promise<{ events: JobEventBody[]; output: string }> {
  const events: JobEventBody[] = [];
  await renderComposition(message, {
    storage: createLocalWorkerStorage(dirs.dataDir),
    emit: contractCheckedEmit(JOB_ID, events),
    signal: new AbortController().signal,
    workDir: dirs.workDir,
    progressIntervalMs: 20,
  });
  return { events, output: path.join(dirs.dataDir, message.outputKey) };
}

async function ffprobe(file: string): Promise<{ duration: number; streams: string[] }> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-of", "json", "-show_format", "-show_streams", file]);
  const data = JSON.parse(stdout) as { format: { duration: string }; streams: Array<{ codec_type: string }> };
  return { duration: Number(data.format.duration), streams: data.streams.map((s) => s.codec_type) };
}

/** Times (seconds from the first frame) where ffmpeg's scene detector sees a cut. */
async function sceneCuts(file: string, threshold: number): Promise<number[]> {
  const { stderr } = await run("ffmpeg", [
    "-hide_banner",
    "-nostdin",
    "-i",
    file,
    "-vf",
    `scdet=threshold=${threshold}`,
    "-an",
    "-f",
    "null",
    "-",
  ]);
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-select_streams",
    "v:0",
    "-show_entries",
    "stream=start_time",
    "-of",
    "csv=p=0",
    file,
  ]);
  const start = Number(stdout.trim());
  return [...stderr.matchAll(/lavfi\.scd\.time: ([\d.]+)/g)].map((m) => Number(m[1]) - start);
}

/** RMS level in dB of the audio between `from` and `to` seconds (-Infinity for digital silence). */
async function rmsDb(file: string, from: number, to: number): Promise<number> {
  const { stderr } = await run("ffmpeg", [
    "-hide_banner",
    "-nostdin",
    "-i",
    file,
    "-vn",
    "-af",
    `atrim=${from}:${to},astats=measure_perchannel=none`,
    "-f",
    "null",
    "-",
  ]);
  const level = /Overall[\s\S]*?RMS level dB: (-?[\d.]+|-inf)/.exec(stderr)?.[1];
  if (level === undefined) throw new Error(`astats printed no RMS level:\n${stderr.slice(-2000)}`);
  return level === "-inf" ? -Infinity : Number(level);
}

/** Average RGB of a w x h region of the frame at `at` seconds. */
async function regionColor(
  file: string,
  at: number,
  region: { x: number; y: number; w: number; h: number },
): Promise<[number, number, number]> {
  const { stdout } = await run(
    "ffmpeg",
    [
      "-v",
      "error",
      "-ss",
      String(at),
      "-i",
      file,
      "-frames:v",
      "1",
      "-vf",
      `crop=${region.w}:${region.h}:${region.x}:${region.y},scale=1:1:flags=area`,
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-",
    ],
    { encoding: "buffer" },
  );
  return [stdout[0]!, stdout[1]!, stdout[2]!];
}

describe("render_composition (QUIZ)", () => {
  it(`renders three questions with the expected length, audio, progress per question and a cut at each \
question boundary`, async () => {
    const { events, output } = await render(job({}));
    const segment = 2 + REVEAL_SECONDS;

    const media = await ffprobe(output);
    expect(media.duration).toBeGreaterThan(3 * segment - 0.2);
    expect(media.duration).toBeLessThan(3 * segment + 0.2);
    expect(media.streams.sort()).toEqual(["audio", "video"]);

    // Each question has its own background, so the detector sees a cut at each boundary and nowhere else
    // (the answer reveal and the shrinking timer bar change too little of the frame).
    const cuts = await sceneCuts(output, 4);
    expect(cuts).toHaveLength(2);
    expect(cuts[0]).toBeCloseTo(segment, 1);
    expect(cuts[1]).toBeCloseTo(2 * segment, 1);

    const types = events.map((e) => e.type);
    expect(types[0]).toBe("job.started");
    expect(types.at(-1)).toBe("source.ready");
    const progress = events.filter((e) => e.type === "step.progress");
    expect(new Set(progress.map((p) => p.index))).toEqual(new Set([0, 1, 2]));
    expect(progress.every((p) => p.count === 3)).toBe(true);
    // Question by question, each from 0 to 100 % (percent is of the current question, as for Manim's animations).
    const order = progress.map((p) => p.index * 1000 + p.percent);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(progress.at(-1)).toMatchObject({ index: 2, percent: 100, renderedCount: 3 });
    const out = events.find((e) => e.type === "source.ready");
    expect(out).toMatchObject({ outputKey: job({}).outputKey, width: WIDTH, height: HEIGHT, renderedCount: 3 });
    expect(out?.type === "source.ready" && Math.abs(out.duration - 3 * segment)).toBeLessThan(0.2);
  });

  it("mixes the espeak-ng narration under the question when asked", async () => {
    const one = [QUESTIONS[0]!];
    const silent = await render(job({ questions: one, outputKey: "videos/x/silent.mp4" }));
    const narrated = await render(
      job({ questions: one, narration: { voice: "en-us" }, outputKey: "videos/x/narrated.mp4" }),
    );
    // The countdown before the reveal's sound: only the narration can be heard there.
    const withoutVoice = await rmsDb(silent.output, 0, 2);
    const withVoice = await rmsDb(narrated.output, 0, 2);
    expect(withoutVoice).toBeLessThan(-60);
    expect(withVoice).toBeGreaterThan(-35);
  });

  it("fails without retrying when espeak-ng does not know the voice", async () => {
    const error = await render(job({ questions: [QUESTIONS[0]!], narration: { voice: "xx-nosuchvoice" } })).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MediaError);
    expect((error as MediaError).retryable).toBe(false);
    expect((error as MediaError).message).toMatch(/xx-nosuchvoice/);
  });

  it("uses the background, timer and sound assets from storage", async () => {
    const assetDir = path.join(dirs.dataDir, "tenants", "t1", "assets");
    await mkdir(assetDir, { recursive: true });
    await runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      "color=c=0xff0000:s=320x180:r=25:d=1",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      path.join(assetDir, "1.mp4"),
    ]);
    await runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      "color=c=0x00ffff:s=320x20:r=25:d=1",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      path.join(assetDir, "timer.mp4"),
    ]);
    await runFfmpeg(["-f", "lavfi", "-i", "sine=f=1500:r=48000:d=3", path.join(assetDir, "ding.wav")]);
    const { output } = await render(
      job({
        questions: [QUESTIONS[0]!],
        assets: {
          backgroundKey: "tenants/t1/assets/1.mp4",
          timerKey: "tenants/t1/assets/timer.mp4",
          correctSoundKey: "tenants/t1/assets/ding.wav",
        },
      }),
    );
    // Bottom-left corner: the (darkened) red background video, where the built-in look is a blue gradient.
    const [r, g, b] = await regionColor(output, 0.5, { x: 0, y: HEIGHT - 16, w: 16, h: 16 });
    expect(r).toBeGreaterThan(100);
    expect(g).toBeLessThan(40);
    expect(b).toBeLessThan(40);
    // The middle of the timer bar shows the cyan timer video, where the built-in bar is amber.
    const [tr, tg, tb] = await regionColor(output, 0.5, { x: WIDTH / 2 - 4, y: 125, w: 8, h: 6 });
    expect(tr).toBeLessThan(80);
    expect(tg).toBeGreaterThan(180);
    expect(tb).toBeGreaterThan(180);
    // A second after the reveal the built-in ding (0.6 s) is over; the 3 s sound asset still plays.
    expect(await rmsDb(output, 3.2, 4.8)).toBeGreaterThan(-30);
  });

  it("plays the built-in ding at the reveal and nothing after it", async () => {
    const { output } = await render(job({ questions: [QUESTIONS[1]!] }));
    expect(await rmsDb(output, 2, 2.5)).toBeGreaterThan(-30);
    expect(await rmsDb(output, 3.2, 4.8)).toBeLessThan(-60);
  });

  it("refuses an asset that is not a video, naming it, without retrying", async () => {
    await mkdir(path.join(dirs.dataDir, "assets"), { recursive: true });
    await run("sh", ["-c", `echo 'not a video' > ${path.join(dirs.dataDir, "assets", "bg.mp4")}`]);
    const error = await render(job({ assets: { backgroundKey: "assets/bg.mp4" } })).catch((e: unknown) => e);
    expect((error as MediaError).message).toMatch(/^The composition's backgroundKey asset bg\.mp4 cannot be used: /);
    expect((error as MediaError).retryable).toBe(false);
    const missing = await render(job({ assets: { correctSoundKey: "assets/none.wav" } })).catch((e: unknown) => e);
    expect((missing as MediaError).message).toMatch(/correctSoundKey asset none\.wav cannot be used: .*does not exist/);
  });

  it(`renders hostile text literally: quotes, colons, %, backslashes, newlines, filter syntax, long and \
non-Latin text`, async () => {
    const hostile: QuizQuestion[] = [
      {
        question:
          `It's "quoted": 100% sure? C:\\path\\to\\file; %{localtime} %{pts} [out]; ` +
          `drawtext=text='x'\nsecond line\r\n\ttab`,
        choices: ["a:b", "50% \\", "'", "[0:v]null[v]", "Ünïcødé — Ελληνικά", "Русский, عربى, 中文"],
        answerIndex: 5,
        explanation: "%{eif:1/0:d} \\\\ ''' ,,, ;;;",
      },
      {
        question: `${"Very long question text ".repeat(40)}${"x".repeat(300)}`.slice(0, 500),
        choices: ["y".repeat(200), "z ".repeat(100)],
        answerIndex: 0,
      },
    ];
    const message = job({ questions: hostile });
    const { output } = await render(message);
    const media = await ffprobe(output);
    expect(media.duration).toBeCloseTo(2 * (2 + REVEAL_SECONDS), 0);

    // The text reached drawtext only through files, unchanged but for whitespace.
    const files = await readdir(dirs.workDir);
    const question = await readFile(path.join(dirs.workDir, files.find((f) => f === "q0-question-0.txt")!), "utf8");
    expect(question.startsWith(`It's "quoted": 100% sure? C:\\path\\to\\file;`)).toBe(true);
    expect(files.filter((f) => /^q1-question-\d\.txt$/.test(f))).toHaveLength(3);
    expect(await readFile(path.join(dirs.workDir, "q1-question-2.txt"), "utf8")).toMatch(/…$/);
  });

  it("never puts user text in the filter graph, and reads every text file with expansion=none", async () => {
    const spec = {
      question: { question: "Q: 'a' % b", choices: ["c:d", "e,f"], answerIndex: 0, explanation: "g;h" },
      index: 0,
      count: 1,
      secondsPerQuestion: 5,
      width: 1280,
      height: 720,
      assets: {},
      narration: null,
    };
    const lines = await writeQuestionText(spec, dirs.workDir, "q0-");
    const graph = quizSegmentGraph(spec, lines, 0, "");
    for (const text of ["Q: 'a' % b", "c:d", "e,f", "g;h"]) expect(graph.filter).not.toContain(text);
    const drawtexts = graph.filter.match(/drawtext=[^,;]*/g) ?? [];
    // Every line is drawn (the question's on both the asked and the answered frame), each from its file.
    const files = new Set(drawtexts.map((d) => /:textfile=([^:]+):/.exec(d)?.[1]));
    expect(files).toEqual(new Set(lines.map((l) => l.file)));
    expect(drawtexts.every((d) => /:textfile=q0-[a-z0-9-]+\.txt:expansion=none:/.test(d))).toBe(true);
  });

  it("wraps text to the width, splits words longer than a line, and ends cut text with an ellipsis", () => {
    // 0.62 em a Latin character: 4.5 em hold 7 of them.
    expect(wrapText("one two three four", 4.5, 3)).toEqual(["one two", "three", "four"]);
    expect(wrapText("abcdefghijklmnopqrstuvwxyz", 4.5, 10)).toEqual(["abcdefg", "hijklmn", "opqrstu", "vwxyz"]);
    expect(wrapText("one two three four five six", 4.5, 2)).toEqual(["one two", "three…"]);
    expect(wrapText("中文中文中文", 4.5, 3)).toEqual(["中文中文", "中文"]);
    expect(wrapText("a\nb\r\nc\u0000d", 20, 1)).toEqual(["a b c d"]);
  });
});

describe("parseQuizCsv", () => {
  it("reads rows with or without a header, quoted commas, and answers as letter, number or text", () => {
    const csv = [
      "question,choice1,choice2,choice3,choice4,answer",
      `"Capital of France, today?",Paris,Lyon,Nice,Lille,A`,
      "Red planet?,Venus,Mars,,,2",
      `"He said ""hi""",yes,no,maybe,,maybe`,
    ].join("\n");
    expect(parseQuizCsv(csv)).toEqual([
      { question: "Capital of France, today?", choices: ["Paris", "Lyon", "Nice", "Lille"], answerIndex: 0 },
      { question: "Red planet?", choices: ["Venus", "Mars"], answerIndex: 1 },
      { question: `He said "hi"`, choices: ["yes", "no", "maybe"], answerIndex: 2 },
    ]);
    expect(parseQuizCsv("Q?,a,b,c,d,d")).toEqual([{ question: "Q?", choices: ["a", "b", "c", "d"], answerIndex: 3 }]);
  });

  it("names the row of each mistake", () => {
    const header = "question,choice1,choice2,choice3,choice4,answer";
    expect(() => parseQuizCsv(`${header}\nQ1,a,b,c,d,A\nQ2,a,b,c,d`)).toThrow(
      /^Row 3: expected 6 columns \(question,choice1,choice2,choice3,choice4,answer\), found 5$/,
    );
    expect(() => parseQuizCsv(`Q1,a,b,c,d,A\nQ2,a,b,,,C`)).toThrow(
      /^Row 2: answer "C" is not one of A-B, 1-2 or the text of a choice$/,
    );
    expect(() => parseQuizCsv(`${header}\nQ1,a,,c,,A`)).toThrow(/^Row 2: choice2 is empty but a later choice is not$/);
    expect(() => parseQuizCsv(`Q1,a,,,,A`)).toThrow(/^Row 1: a question needs at least two choices, found 1$/);
    expect(() => parseQuizCsv(`Q1,a,b,c,d,A\n,a,b,c,d,A`)).toThrow(/^Row 2: question: /);
    expect(() => parseQuizCsv(`Q1,a,b,c,d,A\n"Q2,a,b,c,d,A`)).toThrow(/^The CSV cannot be read at row 2/);
    expect(() => parseQuizCsv(header)).toThrow(/^The CSV has no question rows$/);
  });
});
