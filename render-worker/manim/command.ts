import type { ManimQuality, ManimRenderer } from "../../src/protocol/source-messages.ts";

/** The scene file's name in the sandbox's work dir; Manim names its output dirs after the module. */
export const SCENE_FILE = "scene.py";
const SCENE_MODULE = "scene";
/** Manim's media dir, relative to the work dir. */
const MEDIA_DIR = "media";

/**
 * Manim's quality presets and the dir each writes to, `{height}p{fps}`
 * (docs.manim.community/en/stable/tutorials/output_and_config.html).
 */
export const MANIM_QUALITY: Record<ManimQuality, { flag: string; width: number; height: number; fps: number }> = {
  LOW: { flag: "-ql", width: 854, height: 480, fps: 15 },
  MEDIUM: { flag: "-qm", width: 1280, height: 720, fps: 30 },
  HIGH: { flag: "-qh", width: 1920, height: 1080, fps: 60 },
  FOURK: { flag: "-qk", width: 3840, height: 2160, fps: 60 },
};

export function qualityDir(quality: ManimQuality): string {
  const q = MANIM_QUALITY[quality];
  return `${q.height}p${q.fps}`;
}

/** `{media}/videos/scene/{quality}`, relative to the work dir. */
function videoDir(quality: ManimQuality): string {
  return `${MEDIA_DIR}/videos/${SCENE_MODULE}/${qualityDir(quality)}`;
}

/** Where Manim writes the scene's movie, relative to the work dir. */
export function sceneMoviePath(quality: ManimQuality, sceneName: string): string {
  return `${videoDir(quality)}/${sceneName}.mp4`;
}

/** Where Manim keeps one file per animation, named by the animation's hash; relative to the work dir. */
export function partialMovieDir(quality: ManimQuality, sceneName: string): string {
  return `${videoDir(quality)}/partial_movie_files/${sceneName}`;
}

/**
 * `manim render` with the flags of Manim Community v0.22 (`manim render --help`). Caching stays
 * on: the partial movie files restored from storage are what lets Manim skip unchanged
 * animations. `--progress_bar display` keeps tqdm's bars, which the progress parser reads. The
 * OpenGL renderer runs headless on Mesa's EGL (software rendering when there is no GPU).
 */
export function manimRenderArgs(opts: { quality: ManimQuality; renderer: ManimRenderer; sceneName: string }): string[] {
  const renderer = opts.renderer === "OPENGL" ? "opengl" : "cairo";
  return [
    "render",
    MANIM_QUALITY[opts.quality].flag,
    `--renderer=${renderer}`,
    "--media_dir",
    MEDIA_DIR,
    "--progress_bar",
    "display",
    "--format",
    "mp4",
    SCENE_FILE,
    opts.sceneName,
  ];
}
