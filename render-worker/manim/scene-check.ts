import { runSandboxed, type SandboxLimits } from "../sandbox/bubblewrap.ts";
import { abortError } from "../media/errors.ts";
import { SCENE_FILE } from "./command.ts";

/**
 * A scene that cannot render whatever the worker does: the message is for the author, and the job
 * is not retried.
 */
export class SceneError extends Error {
  readonly retryable = false;
  command?: string;
  stderrTail?: string;
  exitCode?: number | null;

  constructor(message: string, details: { command?: string; stderrTail?: string; exitCode?: number | null } = {}) {
    super(message);
    this.name = "SceneError";
    Object.assign(this, details);
  }
}

/** What the check found: how many animations the scene plays, when that can be counted without running it. */
export interface SceneCheck {
  animationCount: number | null;
}

// Runs in the sandbox on the same Python as Manim: compile() also reports what ast.parse lets
// through ('return' outside a function, say). The animation count is given only when every
// self.play/self.wait is a statement of construct() itself, so loops and helpers cannot make it wrong.
const CHECK_SCRIPT = String.raw`
import ast, json, sys
path, scene = sys.argv[1], sys.argv[2]
def answer(o):
    print(json.dumps(o))
    sys.exit(0)
try:
    source = open(path, encoding="utf-8").read()
    tree = ast.parse(source, path)
    compile(tree, path, "exec")
except SyntaxError as e:
    answer({"error": "syntax", "line": e.lineno, "message": e.msg})
except (ValueError, RecursionError, MemoryError) as e:
    answer({"error": "unreadable", "message": str(e) or type(e).__name__})
classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
target = next((c for c in classes if c.name == scene), None)
if target is None:
    answer({"error": "missing_scene", "classes": [c.name for c in classes][:20]})
def is_animation(node):
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("play", "wait", "pause")
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self")
construct = next((f for f in target.body if isinstance(f, ast.FunctionDef) and f.name == "construct"), None)
count = None
if construct is not None:
    direct = [s for s in construct.body if isinstance(s, ast.Expr) and is_animation(s.value)]
    everywhere = [n for n in ast.walk(construct) if is_animation(n)]
    if direct and len(direct) == len(everywhere):
        count = len(direct)
answer({"ok": True, "animationCount": count})
`;

const CHECK_LIMITS: SandboxLimits = {
  cpuSeconds: 10,
  wallMs: 30_000,
  memoryBytes: 1024 * 1024 * 1024,
  processes: 16,
  outputBytes: 16 * 1024 * 1024,
  logBytes: 256 * 1024,
};

/**
 * Parses the scene file in `workDir` inside the sandbox, before anything renders: a syntax error
 * becomes "line N: message", a missing scene class names the classes there are. Both throw a
 * SceneError. `python` is Manim's (its readOnlyPaths bound), so the grammar is the one the render has.
 */
export async function checkScene(
  workDir: string,
  sceneName: string,
  opts: { python?: string; readOnlyPaths?: string[]; env?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<SceneCheck> {
  const { signal } = opts;
  const result = await runSandboxed({
    command: [opts.python ?? "python3", "-c", CHECK_SCRIPT, SCENE_FILE, sceneName],
    workDir,
    limits: CHECK_LIMITS,
    readOnlyPaths: opts.readOnlyPaths,
    env: opts.env,
    signal,
  });
  const details = {
    command: `${opts.python ?? "python3"} -c <scene check> scene.py ${sceneName}`,
    stderrTail: result.stderrTail || undefined,
    exitCode: result.exitCode,
  };
  if (signal?.aborted) throw abortError(signal);
  let answer: { error?: string; line?: number; message?: string; classes?: string[]; animationCount?: number | null };
  try {
    answer = JSON.parse(result.stdout);
  } catch {
    const why = result.limit
      ? `it hit the sandbox's ${result.limit} limit`
      : `the check exited with ${result.exitCode}`;
    throw Object.assign(new Error(`The scene could not be checked: ${why}`), {
      retryable: result.limit === null,
      ...details,
    });
  }
  if (answer.error === "syntax")
    throw new SceneError(`Syntax error in the scene, line ${answer.line ?? "?"}: ${answer.message}`, details);
  if (answer.error === "unreadable")
    throw new SceneError(`The scene's code cannot be read: ${answer.message}`, details);
  if (answer.error === "missing_scene") {
    const found = answer.classes?.length ? `classes found: ${answer.classes.join(", ")}` : "the code defines no class";
    throw new SceneError(`The code has no class named ${sceneName} (${found})`, details);
  }
  return { animationCount: answer.animationCount ?? null };
}
