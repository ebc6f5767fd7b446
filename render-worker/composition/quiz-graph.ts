import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { QuizQuestion } from "../../src/protocol/source-messages.ts";
import { COMPOSED_FPS, type GraphInput } from "./render-graph.ts";
import { ownMediaFile, type ProbedInput } from "../media/media-input.ts";

/** How long the answer stays revealed after each question's countdown. */
export const REVEAL_SECONDS = 3;

const FONT_DIR = process.env.QUIZ_FONT_DIR || "/usr/share/fonts/truetype/dejavu";
const BOLD_FONT = path.join(FONT_DIR, "DejaVuSans-Bold.ttf");
const REGULAR_FONT = path.join(FONT_DIR, "DejaVuSans.ttf");

/** Background gradients, one pair per question in turn, so each question looks different from the last. */
const PALETTE: Array<[string, string]> = [
  ["0x1e3a8a", "0x7c3aed"],
  ["0x065f46", "0x0e7490"],
  ["0x9a3412", "0xbe123c"],
  ["0x312e81", "0x0f766e"],
];

/** The tenant's assets, each probed: ffmpeg opens it as the container its probe found. */
export interface QuizAssets {
  /** A video shown (looped, scaled and cropped to the frame) behind every question. */
  background?: ProbedInput;
  /** A timer animation, stretched to the countdown and fitted into the timer bar's place. */
  timer?: { input: ProbedInput; durationSeconds: number };
  /** A sound played when the answer is revealed. */
  correctSound?: ProbedInput;
}

export interface QuizSegmentSpec {
  question: QuizQuestion;
  /** 0-based position of the question in the quiz. */
  index: number;
  count: number;
  secondsPerQuestion: number;
  width: number;
  height: number;
  assets: QuizAssets;
  /** WAV of the question read aloud, or null. */
  narration: string | null;
}

/** One question's part of a filter graph: its inputs, its filters, and its output labels. */
export interface QuizSegmentGraph {
  inputs: GraphInput[];
  filter: string;
  videoLabel: string;
  audioLabel: string;
  durationSeconds: number;
}

export function quizSegmentSeconds(secondsPerQuestion: number): number {
  return secondsPerQuestion + REVEAL_SECONDS;
}

/** Text as drawtext should show it: one line of printable characters, whitespace collapsed. */
function normalizeText(text: string): string {
  return text
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/** Full-width characters (CJK, Hangul, full-width forms) take about one em; the rest about 0.6. */
function charWidthEm(char: string): number {
  const code = char.codePointAt(0) ?? 0;
  const wide =
    (code >= 0x1100 && code <= 0x115f) ||
    (code >= 0x2e80 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) ||
    (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0x1f300 && code <= 0x1faff) ||
    (code >= 0x20000 && code <= 0x3fffd);
  return wide ? 1 : 0.62;
}

function textWidthEm(text: string): number {
  let width = 0;
  for (const char of text) width += charWidthEm(char);
  return width;
}

/**
 * Word-wraps text into at most `maxLines` lines of at most `maxEm` font-size units each (drawtext
 * does not wrap). A word longer than a line is split; text beyond the last line ends in "…".
 */
export function wrapText(text: string, maxEm: number, maxLines: number): string[] {
  const lines: string[] = [];
  let line = "";
  const pieces = normalizeText(text)
    .split(" ")
    .filter((w) => w !== "");
  const push = (piece: string): boolean => {
    const candidate = line === "" ? piece : `${line} ${piece}`;
    if (textWidthEm(candidate) <= maxEm) {
      line = candidate;
      return true;
    }
    if (line !== "") lines.push(line);
    line = "";
    if (textWidthEm(piece) <= maxEm) {
      line = piece;
      return true;
    }
    // A word wider than a line is cut where it fills one.
    for (const char of piece) {
      if (textWidthEm(line + char) > maxEm) {
        lines.push(line);
        line = "";
      }
      line += char;
    }
    return true;
  };
  for (const piece of pieces) push(piece);
  if (line !== "") lines.push(line);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  let last = kept[maxLines - 1]!;
  while (last.length > 0 && textWidthEm(`${last}…`) > maxEm) last = [...last].slice(0, -1).join("");
  kept[maxLines - 1] = `${last.trimEnd()}…`;
  return kept;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Where everything goes, in pixels, for a frame of `width`x`height`; the layout is designed at 1280x720. */
function quizLayout(width: number, height: number, choiceCount: number) {
  const s = Math.min(width / 1280, height / 720);
  const px = (n: number) => Math.round(n * s);
  const margin = Math.round((width - px(1120)) / 2);
  const columns = 2;
  const rows = Math.ceil(choiceCount / columns);
  const gap = px(20);
  const choiceW = Math.floor((width - 2 * margin - gap) / columns);
  const choicesTop = px(300);
  const choiceH = Math.min(px(90), Math.floor((height - choicesTop - px(110) - (rows - 1) * gap) / rows));
  const choices: Box[] = Array.from({ length: choiceCount }, (_, i) => ({
    x: margin + (i % columns) * (choiceW + gap),
    y: choicesTop + Math.floor(i / columns) * (choiceH + gap),
    w: choiceW,
    h: choiceH,
  }));
  return {
    counter: { x: margin, y: px(24), fontSize: px(24) },
    question: { top: px(70), fontSize: px(40), lineHeight: px(52), maxLines: 3, maxWidth: width - 2 * margin },
    timer: { x: margin, y: px(250), w: width - 2 * margin, h: px(16) },
    choices,
    choice: {
      fontSize: px(28),
      lineHeight: px(36),
      maxLines: Math.max(1, Math.floor((choiceH - px(16)) / px(36))),
      padding: px(24),
    },
    explanation: {
      top: choicesTop + rows * choiceH + (rows - 1) * gap + px(24),
      fontSize: px(26),
      lineHeight: px(34),
      maxLines: 2,
      maxWidth: width - 2 * margin,
    },
  };
}

const LETTERS = "ABCDEF";

/** A text line to draw: its file (in the work dir) and where. */
interface TextLine {
  file: string;
  text: string;
  font: string;
  fontSize: number;
  /** An x expression of drawtext (may use text_w). */
  x: string;
  y: number;
  color: string;
  /** Shown only from the reveal on (the answer's explanation), not while the question is asked. */
  afterReveal?: true;
}

/**
 * Writes every line of one question's text to its own file in `workDir` and returns the lines. User
 * text reaches ffmpeg only through these files, read with `expansion=none`: quotes, colons,
 * percent signs and backslashes are never parsed as filter syntax or drawtext expansions.
 */
export async function writeQuestionText(spec: QuizSegmentSpec, workDir: string, prefix: string): Promise<TextLine[]> {
  const layout = quizLayout(spec.width, spec.height, spec.question.choices.length);
  const lines: TextLine[] = [];
  lines.push({
    file: `${prefix}counter.txt`,
    text: `Question ${spec.index + 1}/${spec.count}`,
    font: REGULAR_FONT,
    fontSize: layout.counter.fontSize,
    x: String(layout.counter.x),
    y: layout.counter.y,
    color: "white@0.8",
  });
  const q = layout.question;
  for (const [i, text] of wrapText(spec.question.question, q.maxWidth / q.fontSize, q.maxLines).entries()) {
    lines.push({
      file: `${prefix}question-${i}.txt`,
      text,
      font: BOLD_FONT,
      fontSize: q.fontSize,
      x: "(w-text_w)/2",
      y: q.top + i * q.lineHeight,
      color: "white",
    });
  }
  const c = layout.choice;
  spec.question.choices.forEach((choice, k) => {
    const box = layout.choices[k]!;
    const wrapped = wrapText(`${LETTERS[k]}.  ${choice}`, (box.w - 2 * c.padding) / c.fontSize, c.maxLines);
    const blockTop =
      box.y + Math.round((box.h - wrapped.length * c.lineHeight) / 2) + Math.round((c.lineHeight - c.fontSize) / 2);
    for (const [i, text] of wrapped.entries()) {
      lines.push({
        file: `${prefix}choice-${k}-${i}.txt`,
        text,
        font: BOLD_FONT,
        fontSize: c.fontSize,
        x: String(box.x + c.padding),
        y: blockTop + i * c.lineHeight,
        color: "white",
      });
    }
  });
  const explanation = spec.question.explanation ? normalizeText(spec.question.explanation) : "";
  if (explanation !== "") {
    const e = layout.explanation;
    for (const [i, text] of wrapText(explanation, e.maxWidth / e.fontSize, e.maxLines).entries()) {
      lines.push({
        file: `${prefix}explanation-${i}.txt`,
        text,
        font: REGULAR_FONT,
        fontSize: e.fontSize,
        x: "(w-text_w)/2",
        y: e.top + i * e.lineHeight,
        color: "white",
        afterReveal: true,
      });
    }
  }
  await Promise.all(lines.map((l) => writeFile(path.join(workDir, l.file), l.text)));
  return lines;
}

/**
 * The filter graph of one question: background, counter, question, countdown bar, choices, and
 * after `secondsPerQuestion` the correct choice turned green with a sound; narration under it all.
 * Input indexes start at `firstInput`; labels start with `prefix`.
 */
export function quizSegmentGraph(
  spec: QuizSegmentSpec,
  lines: TextLine[],
  firstInput: number,
  prefix: string,
): QuizSegmentGraph {
  const { width: W, height: H, secondsPerQuestion: S } = spec;
  const D = quizSegmentSeconds(S);
  const layout = quizLayout(W, H, spec.question.choices.length);
  const inputs: GraphInput[] = [];
  const addInput = (input: ProbedInput, loop: boolean): number => {
    inputs.push({ input, loop });
    return firstInput + inputs.length - 1;
  };
  const chains: string[] = [];
  const L = (name: string) => `${prefix}${name}`;

  // What is drawn over the background, in this order: the choices' boxes, the correct one marked from
  // the reveal on, then the text over them (the explanation from the reveal on).
  const boxAt = (box: ReturnType<typeof quizLayout>["choices"][number]) =>
    `drawbox=x=${box.x}:y=${box.y}:w=${box.w}:h=${box.h}`;
  const boxes = layout.choices.map((box) => `${boxAt(box)}:color=black@0.55:t=fill`);
  const correct = layout.choices[spec.question.answerIndex]!;
  const marked = [
    `${boxAt(correct)}:color=0x16a34a:t=fill`,
    `${boxAt(correct)}:color=white:t=${Math.max(2, Math.round(layout.timer.h / 4))}`,
  ];
  const text = (shown: (line: TextLine) => boolean) =>
    lines
      .filter(shown)
      .map(
        (line) =>
          `drawtext=fontfile=${line.font}:textfile=${line.file}:expansion=none:` +
          `fontsize=${line.fontSize}:fontcolor=${line.color}:x=${line.x}:y=${line.y}`,
      );
  const askedText = text((line) => !line.afterReveal);
  const revealedText = text((line) => line.afterReveal === true);

  if (spec.assets.background) {
    const bg = addInput(spec.assets.background, true);
    const fromReveal = (draw: string) => `${draw}:enable='gte(t,${S})'`;
    const draw = [...boxes, ...marked.map(fromReveal), ...askedText, ...revealedText.map(fromReveal)];
    chains.push(
      `[${bg}:v:0]scale=${W}:${H}:force_original_aspect_ratio=increase,crop=${W}:${H},setsar=1,` +
        `fps=${COMPOSED_FPS},trim=duration=${D},setpts=PTS-STARTPTS,` +
        // Darkened so white text stays readable on any background.
        `colorlevels=romax=0.55:gomax=0.55:bomax=0.55,format=yuv420p,${draw.join(",")}[${L("drawn")}]`,
    );
  } else {
    const [c0, c1] = PALETTE[spec.index % PALETTE.length]!;
    // Nothing under the countdown moves: the question's frame and the answer's are each drawn once and
    // looped. Drawn for every frame, the gradient, boxes and text were most of a question's filtering
    // (docs/manim-and-compositions.md, "What a composition costs").
    const still = (draw: string[], seconds: number, label: string) =>
      `[${L(`${label}bg`)}]${draw.join(",")},loop=loop=-1:size=1,trim=duration=${seconds},setpts=PTS-STARTPTS[${L(label)}]`;
    chains.push(
      `gradients=s=${W}x${H}:r=${COMPOSED_FPS}:c0=${c0}:c1=${c1}:x0=0:y0=0:x1=${W}:y1=${H}:speed=0.00001,` +
        `trim=end_frame=1,format=yuv420p,split[${L("askedbg")}][${L("answeredbg")}]`,
    );
    chains.push(still([...boxes, ...askedText], S, "asked"));
    chains.push(still([...boxes, ...marked, ...askedText, ...revealedText], D - S, "answered"));
    chains.push(`[${L("asked")}][${L("answered")}]concat=n=2:v=1:a=0[${L("drawn")}]`);
  }

  const t = layout.timer;
  if (spec.assets.timer) {
    const timer = addInput(spec.assets.timer.input, false);
    const stretch = S / spec.assets.timer.durationSeconds;
    chains.push(
      `[${timer}:v:0]setpts=(PTS-STARTPTS)*${stretch.toFixed(6)},fps=${COMPOSED_FPS},trim=duration=${S},` +
        `scale=${t.w}:${t.h * 3}:force_original_aspect_ratio=decrease,setsar=1,format=yuva420p[${L("timer")}]`,
    );
  } else {
    chains.push(`color=c=0x334155:s=${t.w}x${t.h}:r=${COMPOSED_FPS}:d=${S}[${L("track")}]`);
    chains.push(`color=c=0xf59e0b:s=${t.w}x${t.h}:r=${COMPOSED_FPS}:d=${S}[${L("bar")}]`);
    // The bar slides out of its track, which clips it: its visible width shrinks to 0 at S.
    chains.push(`[${L("track")}][${L("bar")}]overlay=x='-w*t/${S}':y=0:eval=frame[${L("timer")}]`);
  }

  const timerX = spec.assets.timer ? `${t.x}+(${t.w}-w)/2` : String(t.x);
  // eof_action=pass: once the countdown's stream ends, the frame shows without it.
  chains.push(`[${L("drawn")}][${L("timer")}]overlay=x=${timerX}:y=${t.y}:eof_action=pass,format=yuv420p[${L("v")}]`);

  const stereo = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo";
  const delayMs = Math.round(S * 1000);
  const audio: string[] = [`[${L("silence")}]`];
  chains.push(`anullsrc=r=48000:cl=stereo,atrim=duration=${D}[${L("silence")}]`);
  if (spec.assets.correctSound) {
    const sound = addInput(spec.assets.correctSound, false);
    chains.push(`[${sound}:a:0]${stereo},atrim=duration=${REVEAL_SECONDS},adelay=${delayMs}|${delayMs}[${L("ding")}]`);
  } else {
    chains.push(
      `sine=f=880:r=48000:d=0.6,${stereo},volume=2,afade=t=out:st=0.15:d=0.45,` +
        `adelay=${delayMs}|${delayMs}[${L("ding")}]`,
    );
  }
  audio.push(`[${L("ding")}]`);
  if (spec.narration) {
    const voice = addInput(ownMediaFile(spec.narration, "wav"), false);
    chains.push(`[${voice}:a:0]${stereo}[${L("voice")}]`);
    audio.push(`[${L("voice")}]`);
  }
  // duration=first: the silence sets the length; normalize=0 keeps each source at its own level.
  chains.push(`${audio.join("")}amix=inputs=${audio.length}:duration=first:normalize=0[${L("a")}]`);

  return { inputs, filter: chains.join(";"), videoLabel: L("v"), audioLabel: L("a"), durationSeconds: D };
}

/** What the narration reads: the question, then each choice with its letter. */
export function narrationText(question: QuizQuestion): string {
  const choices = question.choices.map((c, i) => `${LETTERS[i]}: ${normalizeText(c)}.`).join(" ");
  return `${normalizeText(question.question)} ${choices}`;
}
