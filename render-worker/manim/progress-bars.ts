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
// (manim/scene/scene.py, Scene._get_animation_time_progression). The description holds ": " itself,
// so the greedy match settles on the last ": NN%|". Bars are "#" or block characters depending on
// the terminal's encoding; only the fields around them are read.
const PROGRESS_LINE = /(?:^|\s)(?:Animation (\d+): (.*)|Waiting (\d+)): +(\d{1,3})%\|/;
// Logged by Manim's renderers when an animation's partial movie file exists
// (manim/renderer/cairo_renderer.py, CairoRenderer.play), behind Rich's time and level columns.
const CACHED_LINE = /Animation (\d+) : Using cached data \(hash : ([\w.-]+)\)/;

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
    const hit = CACHED_LINE.exec(line);
    if (hit) {
      const index = Number(hit[1]);
      cached.add(index);
      // Served whole from the cache: it starts and ends here, with no bar.
      started(index, null);
      if (state.animationIndex === index) state.percent = 100;
    } else {
      const bar = PROGRESS_LINE.exec(line);
      if (!bar) return;
      const index = Number(bar[1] ?? bar[3]);
      shown.add(index);
      started(index, bar[2] !== undefined ? bar[2] : "Waiting");
      if (state.animationIndex === index) {
        state.percent = Math.min(100, Number(bar[4]));
        state.description = bar[2] !== undefined ? bar[2] : "Waiting";
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
