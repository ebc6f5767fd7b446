import { SCENE_FILE } from "./command.ts";

/** What Manim's output says went wrong, read as it arrives (the sandbox keeps only a tail). */
export interface ManimFailure {
  /** The last line of the Python traceback, "SomeError: reason". */
  exception: string | null;
  /** The deepest line of the scene file in the traceback. */
  sceneLine: number | null;
  /** LaTeX's own message, from Manim's "LaTeX compilation error: …". */
  latexError: string | null;
  /** The TeX source of the expression LaTeX was compiling last. */
  latexExpression: string | null;
}

// Rich's traceback frames: "│ /job/scene.py:6 in construct   │".
const SCENE_FRAME = new RegExp(`/${SCENE_FILE.replace(".", "\\.")}:(\\d+) in `);
// Manim logs each expression before compiling it (manim/utils/tex_file_writing.py), wrapped in
// dvisvgm specials that name its parts.
const WRITING_TEX = /INFO\s+Writing (.*) to media\/Tex\/\w+\.tex/;
const DVISVGM_SPECIAL = /\\special\{dvisvgm:raw [^}]*\}/g;
const LATEX_ERROR = /ERROR\s+LaTeX compilation error: (.*?)\s{2,}|ERROR\s+LaTeX compilation error: (.*)$/;
const EXCEPTION = /^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b.*)$/;

export function createManimFailureReader() {
  const partial = { stdout: "", stderr: "" };
  const state: ManimFailure = { exception: null, sceneLine: null, latexError: null, latexExpression: null };

  function readLine(raw: string): void {
    const line = raw.trim();
    const frame = SCENE_FRAME.exec(line);
    if (frame) state.sceneLine = Number(frame[1]);
    const tex = WRITING_TEX.exec(line);
    if (tex) state.latexExpression = tex[1]!.replace(DVISVGM_SPECIAL, "").trim();
    const latex = LATEX_ERROR.exec(line);
    if (latex) state.latexError = (latex[1] ?? latex[2] ?? "").trim();
    const exception = EXCEPTION.exec(line);
    if (exception) state.exception = exception[1]!;
  }

  return {
    write(stream: "stdout" | "stderr", text: string): void {
      const lines = (partial[stream] + text).split(/\r\n|\r|\n/);
      partial[stream] = lines.pop() ?? "";
      if (partial[stream].length > 8192) partial[stream] = partial[stream].slice(-8192);
      for (const line of lines) readLine(line);
    },
    end(): ManimFailure {
      for (const stream of ["stdout", "stderr"] as const) {
        readLine(partial[stream]);
        partial[stream] = "";
      }
      return { ...state };
    },
  };
}

/** The author's message for a failed render, or null when the output names no cause. */
export function describeManimFailure(f: ManimFailure): string | null {
  const at = f.sceneLine !== null ? ` (scene line ${f.sceneLine})` : "";
  if (f.latexError !== null) {
    const expression = f.latexExpression !== null ? ` in "${f.latexExpression}"` : "";
    return `LaTeX error${expression}: ${f.latexError}${at}`;
  }
  if (f.exception !== null) {
    return f.sceneLine !== null
      ? `The scene failed at line ${f.sceneLine}: ${f.exception}`
      : `The scene failed: ${f.exception}`;
  }
  return null;
}
