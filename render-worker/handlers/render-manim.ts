import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { RenderManimJobMessage } from "../../src/protocol/source-messages.ts";
import { estimateJobMemoryBytes } from "../admission.ts";
import { log } from "../log.ts";
import { restorePartialMovies, realFileInside, uploadNewPartialMovies } from "../manim/cache.ts";
import { locateManim, type ManimInstall } from "../manim/capability.ts";
import { createManimFailureReader, describeManimFailure, type ManimFailure } from "../manim/failure.ts";
import {
  MANIM_QUALITY,
  manimRenderArgs,
  partialMovieDir,
  qualityDir,
  SCENE_FILE,
  sceneMoviePath,
} from "../manim/command.ts";
import { createManimProgressParser } from "../manim/progress-bars.ts";
import { checkScene, SceneError } from "../manim/scene-check.ts";
import { abortError } from "../media/errors.ts";
import { reportManimProgress } from "../progress/job-progress.ts";
import { runSandboxed, type SandboxLimits, type SandboxResult } from "../sandbox/bubblewrap.ts";
import { sourceReady, storeSource } from "./rendered-source.ts";
import type { JobContext } from "./types.ts";

/** Limits of one render when the worker sets none (see ManimSettings). */
export const DEFAULT_MANIM_LIMITS: SandboxLimits = {
  cpuSeconds: 30 * 60,
  wallMs: 15 * 60_000,
  memoryBytes: 4 * 1024 ** 3,
  processes: 512,
  cpus: 1,
  outputBytes: 2 * 1024 ** 3,
  logBytes: 16 * 1024 ** 2,
};

/**
 * Renders a Manim scene in the sandbox and stores the MP4 at `outputKey`. The scene is checked
 * first (syntax, scene class), the scene's partial movie files are restored from `cachePrefix`
 * so Manim skips unchanged animations, progress comes from Manim's own bars, and the new partial
 * movie files go back to the cache. Emits started, step.progress and source.ready;
 * failures are thrown (a SceneError when the scene itself is at fault).
 */
export async function renderManim(job: RenderManimJobMessage, ctx: JobContext): Promise<void> {
  const { storage, signal } = ctx;
  const limits = { ...DEFAULT_MANIM_LIMITS, ...ctx.manim?.limits };
  await ctx.emit({ type: "job.started" });

  const sceneDir = path.join(ctx.workDir, "scene");
  await mkdir(sceneDir, { recursive: true });
  await writeFile(path.join(sceneDir, SCENE_FILE), job.code);
  const manim = await findManim(ctx.manim?.bin);
  const sandboxEnv: Record<string, string> = ctx.manim?.sandboxPath ? { PATH: ctx.manim.sandboxPath } : {};
  const { animationCount } = await checkScene(sceneDir, job.sceneName, {
    python: manim.python,
    readOnlyPaths: manim.readOnlyPaths,
    env: sandboxEnv,
    signal,
  });

  const q = MANIM_QUALITY[job.quality];
  const releaseMemory = ctx.reserveMemory?.(estimateJobMemoryBytes(q)) ?? (() => {});
  try {
    const renderer = job.renderer.toLowerCase();
    const cacheKeyPrefix = `${job.cachePrefix}/${renderer}/${qualityDir(job.quality)}/${job.sceneName}/`;
    const partialDir = path.join(sceneDir, partialMovieDir(job.quality, job.sceneName));
    const restored = await restorePartialMovies(storage, cacheKeyPrefix, partialDir);

    const parser = createManimProgressParser();
    const failure = createManimFailureReader();
    const progress = reportManimProgress(ctx, parser, animationCount);
    let result: SandboxResult;
    let completed = false;
    try {
      result = await runSandboxed({
        command: [manim.command, ...manimRenderArgs(job)],
        workDir: sceneDir,
        limits,
        readOnlyPaths: manim.readOnlyPaths,
        // Rich wraps log lines at the console width, which would split the "Using cached data" line.
        env: { COLUMNS: "400", PYTHONDONTWRITEBYTECODE: "1", ...sandboxEnv },
        signal,
        onOutput: (stream, text) => {
          parser.write(stream, text);
          failure.write(stream, text);
        },
      });
      completed = result.exitCode === 0 && result.limit === null;
    } finally {
      parser.end({ completed, animationCount });
      await progress.stop();
    }
    if (signal.aborted) throw abortError(signal);
    if (result.limit !== null || result.exitCode !== 0) throw renderFailure(result, limits, failure.end());

    const movie = await realFileInside(sceneDir, path.join(sceneDir, sceneMoviePath(job.quality, job.sceneName)));
    if (movie === null) {
      const message = `Manim wrote no movie for ${job.sceneName}: a scene needs at least one self.play or self.wait`;
      throw new SceneError(message, { command: result.command });
    }
    const probe = await storeSource(ctx, movie, job.outputKey);
    try {
      const added = await uploadNewPartialMovies(storage, cacheKeyPrefix, sceneDir, partialDir, restored);
      log.info("manim cache updated", { jobId: job.jobId, restored: restored.size, added: added.length });
    } catch (err) {
      // The render is done; a missing cache entry only costs the next render time.
      log.warn("manim cache not updated", { jobId: job.jobId, err });
    }
    const final = parser.snapshot();
    await ctx.emit(sourceReady(job.outputKey, probe, { rendered: final.renderedCount, cached: final.cachedCount }));
  } finally {
    releaseMemory();
  }
}

/** Manim as locateManim finds it; a configured path that does not exist is "not installed" too. */
async function findManim(configured: string | undefined): Promise<ManimInstall> {
  try {
    return await locateManim(configured);
  } catch (err) {
    throw notInstalled(`${configured} cannot be used: ${(err as Error).message}`);
  }
}

/** Another worker may have Manim, so the job is retried. */
function notInstalled(why: string, details: object = {}): Error {
  return Object.assign(new Error(`Manim is not installed on this worker (${why})`), { retryable: true, ...details });
}

/** The readable reason a render failed, and whether another attempt could help. */
function renderFailure(result: SandboxResult, limits: SandboxLimits, said: ManimFailure): Error {
  const details = { command: result.command, stderrTail: result.stderrTail || undefined, exitCode: result.exitCode };
  const mb = (bytes: number) => `${Math.round(bytes / 1024 ** 2)} MB`;
  switch (result.limit) {
    case "wall":
      return new SceneError(`The render took longer than its limit of ${limits.wallMs / 1000} s`, details);
    case "cpu":
      return new SceneError(`The render used more than its limit of ${limits.cpuSeconds} s of CPU time`, details);
    case "memory":
      return new SceneError(`The scene used more than ${mb(limits.memoryBytes)} of memory (memory limit)`, details);
    case "output":
      return new SceneError(`The render wrote more than its limit of ${mb(limits.outputBytes)}`, details);
    case "log":
      return new SceneError(`The render printed more than its limit of ${mb(limits.logBytes)}`, details);
  }
  // prlimit, like a shell, exits 127 when the program it should run is not in the sandbox.
  if (result.exitCode === 127 && !result.stdout.includes("Manim Community")) {
    return notInstalled("exit code 127: the program is not in the sandbox", details);
  }
  const reason = describeManimFailure(said);
  if (reason) return new SceneError(reason, details);
  const logged = `${result.stdout}\n${result.stderrTail}`
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .reverse()
    .find((l) => /^ERROR\s/.test(l));
  if (logged) {
    const reason = logged.replace(/^ERROR\s+/, "").replace(/\s{2,}\S+\.py:\d+$/, "");
    return new SceneError(`The scene failed: ${reason}`, details);
  }
  // No reason from the scene: killed from outside (the machine's OOM killer, say) or a crash.
  const exit = result.signal ?? `code ${result.exitCode}`;
  return Object.assign(new Error(`Manim exited with ${exit} without saying why`), { retryable: true, ...details });
}
