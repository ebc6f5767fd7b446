import { existsSync } from "node:fs";
import { mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { log } from "../log.ts";
import { DEFAULT_SANDBOX_PATH, runSandboxed } from "../sandbox/bubblewrap.ts";

/** Where `npm run setup:manim` installs Manim (scripts/setup-manim.sh). */
export const PROJECT_MANIM_VENV = path.resolve(import.meta.dirname, "../../.tools/manim");
/**
 * Outside /usr but read by every render: TeX's format files (latex.fmt) and font maps, and
 * fontconfig's cache (without it Pango scans every font on each run).
 */
const TEX_AND_FONT_PATHS = ["/var/lib/texmf", "/var/cache/fontconfig"];

/** Manim as the sandbox runs it. */
export interface ManimInstall {
  /** The manim program: a path, or a name on the sandbox's PATH. */
  command: string;
  /** The Python that runs Manim, for the scene check. */
  python: string;
  /** Host paths the sandbox sees read-only at the same place. */
  readOnlyPaths: string[];
  /** How it was found, for logs. */
  foundBy: "MANIM_BIN" | "project virtualenv" | "sandbox PATH";
}

/**
 * Finds Manim: MANIM_BIN when set (a path, or a name on the sandbox's PATH), else the project's
 * virtualenv (.tools/manim), else `manim` on the sandbox's PATH. A program inside a virtualenv
 * brings the virtualenv and the Python it was made from into the sandbox. Rejects when a path
 * does not exist.
 */
export async function locateManim(configured?: string): Promise<ManimInstall> {
  const systemPaths = TEX_AND_FONT_PATHS.filter((p) => existsSync(p));
  const bin =
    configured ??
    (existsSync(path.join(PROJECT_MANIM_VENV, "bin", "manim"))
      ? path.join(PROJECT_MANIM_VENV, "bin", "manim")
      : "manim");
  const foundBy = configured ? "MANIM_BIN" : bin === "manim" ? "sandbox PATH" : "project virtualenv";
  if (!bin.includes("/")) return { command: bin, python: "python3", readOnlyPaths: systemPaths, foundBy };

  const real = await realpath(bin);
  // A virtualenv's scripts start with `#!<venv>/bin/python`, a symlink to the base Python. The
  // sandbox mounts the venv where it really is (.tools may be a link to a shared directory).
  const venv = await realpath(path.dirname(path.dirname(path.resolve(bin))));
  const cfg = await readFile(path.join(venv, "pyvenv.cfg"), "utf8").catch(() => null);
  if (cfg === null)
    return { command: real, python: "python3", readOnlyPaths: [path.dirname(real), ...systemPaths], foundBy };
  const home = /^home\s*=\s*(.+)$/m.exec(cfg)?.[1]?.trim();
  const basePrefix = home ? path.dirname(await realpath(home)) : null;
  return {
    command: path.join(venv, "bin", path.basename(bin)),
    python: path.join(venv, "bin", "python"),
    readOnlyPaths: [venv, ...(basePrefix && basePrefix !== "/" ? [basePrefix] : []), ...systemPaths],
    foundBy,
  };
}

/**
 * Whether a Manim program is there to test: the path `locateManim` found, or its name in a
 * directory of the sandbox's PATH. Says nothing of whether it renders (`probeManim` does).
 */
async function manimInstalled(install: Promise<ManimInstall>, sandboxPath?: string): Promise<boolean> {
  const manim = await install.catch(() => null);
  if (!manim) return false;
  if (manim.command.includes("/")) return existsSync(manim.command);
  const dirs = (sandboxPath ?? DEFAULT_SANDBOX_PATH).split(":").filter(Boolean);
  return dirs.some((dir) => existsSync(path.join(dir, manim.command)));
}

// Shapes, Pango text and LaTeX: what a render of a user's scene needs, at a few frames.
const PROBE_SCENE = `from manim import *

class Probe(Scene):
    def construct(self):
        self.add(Square(), Text("ok"), MathTex(r"x^2"))
        self.wait(0.2)
`;

/**
 * Whether this machine can render Manim scenes: a tiny real render (a shape, Text, MathTex) run
 * the way renders run, inside the sandbox, which covers bubblewrap, Manim, Pango and LaTeX. Never
 * rejects: any failure is `false`, and `onFailure` gets the reason.
 */
export async function probeManim(
  install: ManimInstall | Promise<ManimInstall>,
  opts: { onFailure?: (reason: string) => void; tmpDir?: string; sandboxPath?: string } = {},
): Promise<boolean> {
  let manim: ManimInstall;
  try {
    manim = await install;
  } catch (err) {
    opts.onFailure?.((err as Error).message);
    return false;
  }
  const workDir = await mkdtemp(path.join(opts.tmpDir ?? tmpdir(), "videograph-manim-probe-"));
  try {
    await writeFile(path.join(workDir, "probe.py"), PROBE_SCENE);
    const result = await runSandboxed({
      command: [
        manim.command,
        "render",
        "-ql",
        "--resolution",
        "160,90",
        "--frame_rate",
        "5",
        "--media_dir",
        "media",
        "--progress_bar",
        "none",
        "probe.py",
        "Probe",
      ],
      workDir,
      readOnlyPaths: manim.readOnlyPaths,
      env: { PYTHONDONTWRITEBYTECODE: "1", ...(opts.sandboxPath ? { PATH: opts.sandboxPath } : {}) },
      limits: {
        cpuSeconds: 60,
        wallMs: 120_000,
        memoryBytes: 4 * 1024 ** 3,
        processes: 256,
        outputBytes: 256 * 1024 ** 2,
        logBytes: 4 * 1024 ** 2,
      },
    });
    if (result.exitCode === 0 && existsSync(path.join(workDir, "media/videos/probe/90p5/Probe.mp4"))) return true;
    const said = `${result.stderrTail}\n${result.stdout}`
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !/^[│╭╰]/.test(l))
      .slice(-3)
      .join(" | ");
    const how =
      result.exitCode === 127
        ? "Manim is not installed (exit code 127: not found in the sandbox)"
        : `exited with ${result.signal ?? result.exitCode}`;
    opts.onFailure?.(
      `a test render with ${manim.command} (found ` +
        `by ${manim.foundBy}) ${how}${result.limit ? ` (${result.limit} limit)` : ""}${said ? `: ${said}` : ""}`,
    );
    return false;
  } catch (err) {
    opts.onFailure?.((err as Error).message);
    return false;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Where Manim is and what the sandbox may see, as the worker is configured. */
interface ManimLocation {
  /** MANIM_BIN; default: see locateManim. */
  bin?: string;
  sandboxPath?: string;
}

/**
 * Whether Manim is installed here for WORKER_DETECT_MANIM to test; says so when it is not
 * (a detected capability that is missing is no error).
 */
export async function manimDetected(where: ManimLocation): Promise<boolean> {
  if (await manimInstalled(locateManim(where.bin), where.sandboxPath)) return true;
  log.info("Manim is not installed here (`npm run setup:manim` installs it): not taking manim jobs");
  return false;
}

/**
 * Whether to take manim jobs: a tiny real render must pass in the sandbox (it fails without
 * Manim, LaTeX, bubblewrap or namespaces for it), or the worker would take scene jobs only to
 * fail each one. Asked for (WORKER_CAPABILITIES), a failure is loud; detected
 * (WORKER_DETECT_MANIM), it is a warning. Returns why not, or null when manim renders.
 */
export async function checkManimAtStart(
  where: ManimLocation & {
    asked: boolean;
    tmpDir: string;
    /** What the worker serves besides manim, for the log. */
    capabilities: readonly string[];
    probe?: typeof probeManim;
  },
): Promise<string | null> {
  let reason = "no reason given";
  const install = locateManim(where.bin);
  if (
    await (where.probe ?? probeManim)(install, {
      onFailure: (r) => (reason = r),
      tmpDir: where.tmpDir,
      sandboxPath: where.sandboxPath,
    })
  ) {
    const { command, foundBy } = await install;
    log.info("a test render with manim succeeded in the sandbox: taking manim jobs", { manim: command, foundBy });
    return null;
  }
  const failure = {
    manimBin: where.bin ?? null,
    reason,
    capabilities: where.capabilities,
    hint:
      "run `npm run setup:manim` (Manim in .tools/manim), or set MANIM_BIN; needs the Debian packages of " +
      "scripts/manim-debian-packages.txt, bubblewrap (`bwrap`), and either root with CAP_SYS_ADMIN or " +
      "unprivileged user namespaces",
  };
  if (where.asked)
    log.error(
      "MANIM IS NOT AVAILABLE: a test render failed in the sandbox, so this worker will NOT take manim jobs",
      failure,
    );
  else log.warn("Manim is installed but its test render failed in the sandbox: not taking manim jobs", failure);
  return reason;
}
