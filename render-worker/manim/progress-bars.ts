/** What Manim's output says about the render so far. */
export interface ManimProgress {
  /** The animation of the latest progress line, from 0; null before the first. */
  animationIndex: number | null;
  percent: number;
  description: string | null;
  /** Animations that showed a progress bar without being served from the cache. */
  renderedCount: number;
  /** Animations Manim took from its partial movie files. */
  cachedCount: number;
}

// tqdm's default bar, "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} […]" (tqdm.github.io/docs/tqdm),
// with Manim's descriptions "Animation {n}: {animation}[, etc.]" and "Waiting {n}"
// (manim/scene/scene.py, Scene._get_animation_time_progression), at the line's start or after a blank.
// The description holds ": " itself, so the bar is the last ": NN%|" of the line. Bars are "#" or block
// characters depending on the terminal's encoding; only the fields around them are read. The lines are
// the scene's to write and unbounded, so they are read by scans that look at each character a bounded
// number of times, not by a backtracking pattern (docs/security.md).

/** A tqdm bar of Manim's: the animation's index, its description ("Waiting" for a wait) and percent. */
interface ProgressBar {
  index: number;
  description: string;
  percent: number;
}

const isDigit = (code: number): boolean => code >= 48 && code <= 57;
// What `\s` matches in a JavaScript pattern.
const isBlank = (code: number): boolean =>
  (code >= 9 && code <= 13) ||
  code === 32 ||
  code === 0xa0 ||
  code === 0x1680 ||
  (code >= 0x2000 && code <= 0x200a) ||
  code === 0x2028 ||
  code === 0x2029 ||
  code === 0x202f ||
  code === 0x205f ||
  code === 0x3000 ||
  code === 0xfeff;
// Where a description ends: what `.` does not match.
const isLineEnd = (code: number): boolean => code === 10 || code === 13 || code === 0x2028 || code === 0x2029;

/** The end of the run of ASCII digits from `from`. */
function digitsEnd(line: string, from: number): number {
  let at = from;
  while (at < line.length && isDigit(line.charCodeAt(at))) at++;
  return at;
}

/**
 * The percent of a bar's tail ": +NN%|" at `at` (one to three digits), or null. The blanks read here
 * follow this colon and end before any later one, so reading every colon's tail reads each character
 * at most twice.
 */
function barTailAt(line: string, at: number): number | null {
  if (line.charCodeAt(at) !== 58 /* : */ || line.charCodeAt(at + 1) !== 32) return null;
  let digits = at + 2;
  while (line.charCodeAt(digits) === 32) digits++;
  const end = digitsEnd(line, digits);
  const count = end - digits;
  if (count < 1 || count > 3 || !line.startsWith("%|", end)) return null;
  return Number(line.slice(digits, end));
}

/** The last bar tail that starts in [from, to), or null: one pass from the end. */
function lastBarTail(line: string, from: number, to: number): { at: number; percent: number } | null {
  for (let at = line.lastIndexOf(":", to - 1); at >= from; at = at === 0 ? -1 : line.lastIndexOf(":", at - 1)) {
    const percent = barTailAt(line, at);
    if (percent !== null) return { at, percent };
  }
  return null;
}

/**
 * Manim's progress bar in one line of its output, or null: the first "Animation N: " or "Waiting N"
 * (at the start or after a blank) that a bar's tail follows, and for an animation the line's last tail
 * before the next line end. Linear in the line's length.
 */
export function readProgressBar(line: string): ProgressBar | null {
  // The last tail of the stretch of line holding `from`, found once per stretch.
  let stretchEnd = -1;
  let lastTail: { at: number; percent: number } | null = null;
  for (let start = 0; start < line.length; start++) {
    if (start > 0 && !isBlank(line.charCodeAt(start - 1))) continue;
    if (line.startsWith("Animation ", start)) {
      const number = start + "Animation ".length;
      const numberEnd = digitsEnd(line, number);
      if (numberEnd > number && line.startsWith(": ", numberEnd)) {
        const from = numberEnd + 2;
        if (from > stretchEnd) {
          stretchEnd = from;
          while (stretchEnd < line.length && !isLineEnd(line.charCodeAt(stretchEnd))) stretchEnd++;
          lastTail = lastBarTail(line, from, stretchEnd);
        }
        if (lastTail && lastTail.at >= from) {
          return {
            index: Number(line.slice(number, numberEnd)),
            description: line.slice(from, lastTail.at),
            percent: lastTail.percent,
          };
        }
      }
    } else if (line.startsWith("Waiting ", start)) {
      const number = start + "Waiting ".length;
      const numberEnd = digitsEnd(line, number);
      const percent = numberEnd > number ? barTailAt(line, numberEnd) : null;
      if (percent !== null) return { index: Number(line.slice(number, numberEnd)), description: "Waiting", percent };
    }
  }
  return null;
}

const CACHED_TEXT = " : Using cached data (hash : ";

/**
 * Logged by Manim's renderers when an animation's partial movie file exists
 * (manim/renderer/cairo_renderer.py, CairoRenderer.play), behind Rich's time and level columns:
 * "Animation N : Using cached data (hash : H)", H of word characters, dots and dashes. The first such
 * text in the line, or null; each "Animation " is looked at once, and the runs read after them do not
 * overlap.
 */
export function readCachedAnimation(line: string): { index: number } | null {
  for (let start = line.indexOf("Animation "); start >= 0; start = line.indexOf("Animation ", start + 1)) {
    const number = start + "Animation ".length;
    const numberEnd = digitsEnd(line, number);
    if (numberEnd === number || !line.startsWith(CACHED_TEXT, numberEnd)) continue;
    const hash = numberEnd + CACHED_TEXT.length;
    let hashEnd = hash;
    while (hashEnd < line.length && isHashChar(line.charCodeAt(hashEnd))) hashEnd++;
    if (hashEnd > hash && line.charCodeAt(hashEnd) === 41 /* ) */)
      return { index: Number(line.slice(number, numberEnd)) };
  }
  return null;
}

// `[\w.-]`: ASCII letters, digits, "_", "." and "-".
const isHashChar = (code: number): boolean =>
  isDigit(code) ||
  (code >= 65 && code <= 90) ||
  (code >= 97 && code <= 122) ||
  code === 95 ||
  code === 46 ||
  code === 45;

/** An animation Manim started (its first bar or its cached-data line), in the order it started. */
export interface AnimationStart {
  index: number;
  description: string | null;
}

/**
 * Starts kept between two samples at most: a scene of thousands of instant animations keeps this
 * many, and the sampler still sends the start and end of each animation it knows of (the rest end
 * at once, in one step).
 */
const MAX_PENDING_STARTS = 1000;

/**
 * Reads Manim's stdout and stderr as they arrive (tqdm redraws its bar with `\r`, so both `\r`
 * and `\n` end a line) and keeps the latest state; the caller samples it on its own timer, and
 * takes the animations that started since its last sample (`takeStarts`), so an animation that
 * began and ended between two samples is still reported.
 */
export function createManimProgressParser() {
  const partial = { stdout: "", stderr: "" };
  const shown = new Set<number>();
  const cached = new Set<number>();
  let starts: AnimationStart[] = [];
  const state: ManimProgress = {
    animationIndex: null,
    percent: 0,
    description: null,
    renderedCount: 0,
    cachedCount: 0,
  };

  function started(index: number, description: string | null): void {
    const previous = state.animationIndex ?? -1;
    if (index <= previous) return;
    // Animations that printed nothing (a wait on a still frame shows no bar) started and ended
    // before this one. The lines are the scene's to write, so an index far ahead fills only the
    // pending list's room.
    for (let skipped = previous + 1; skipped < index && starts.length < MAX_PENDING_STARTS; skipped++) {
      starts.push({ index: skipped, description: null });
    }
    state.animationIndex = index;
    state.description = description;
    if (starts.length < MAX_PENDING_STARTS) starts.push({ index, description });
  }

  function readLine(line: string): void {
    const hit = readCachedAnimation(line);
    if (hit) {
      const index = hit.index;
      cached.add(index);
      // Served whole from the cache: it starts and ends here, with no bar.
      started(index, null);
      if (state.animationIndex === index) state.percent = 100;
    } else {
      const bar = readProgressBar(line);
      if (!bar) return;
      shown.add(bar.index);
      started(bar.index, bar.description);
      if (state.animationIndex === bar.index) {
        state.percent = Math.min(100, bar.percent);
        state.description = bar.description;
      }
    }
    state.cachedCount = cached.size;
    state.renderedCount = [...shown].filter((i) => !cached.has(i)).length;
  }

  return {
    write(stream: "stdout" | "stderr", text: string): void {
      const lines = (partial[stream] + text).split(/\r\n|\r|\n/);
      partial[stream] = lines.pop() ?? "";
      // A single unterminated line would otherwise grow without bound.
      if (partial[stream].length > 4096) partial[stream] = partial[stream].slice(-4096);
      for (const line of lines) readLine(line);
    },
    /**
     * Reads what is left after the process ended. Manim's bars vanish when they finish (tqdm's
     * leave=False), often before one shows 100%: a render that `completed` has finished its last.
     */
    end(opts: { completed: boolean; animationCount?: number | null } = { completed: false }): void {
      for (const stream of ["stdout", "stderr"] as const) {
        readLine(partial[stream]);
        partial[stream] = "";
      }
      if (!opts.completed) return;
      // Animations after the last bar printed nothing (a closing wait on a still frame): done too.
      const count = opts.animationCount ?? 0;
      if (count > 0 && (state.animationIndex ?? -1) < count - 1) started(count - 1, null);
      if (state.animationIndex !== null) state.percent = 100;
    },
    snapshot(): ManimProgress {
      return { ...state };
    },
    /** The animations that started since the last call, in order. */
    takeStarts(): AnimationStart[] {
      const taken = starts;
      starts = [];
      return taken;
    },
  };
}
