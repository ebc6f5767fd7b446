import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderManim } from "../../render-worker/handlers/render-manim.ts";
import { locateManim, PROJECT_MANIM_VENV, probeManim } from "../../render-worker/manim/capability.ts";
import { realFileInside } from "../../render-worker/manim/cache.ts";
import { createManimProgressParser } from "../../render-worker/manim/progress-bars.ts";
import type { SandboxLimits } from "../../render-worker/sandbox/bubblewrap.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { startTestWorker } from "./test-worker.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { RenderManimJobMessage } from "../../src/protocol/source-messages.ts";
import { fixturesDir } from "../support/media-fixtures.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { inMemoryTransport } from "./in-memory-transport.ts";

const run = promisify(execFile);
/** Manim Community from `npm run setup:manim` (the pretest step). */
const MANIM = path.join(PROJECT_MANIM_VENV, "bin", "manim");
const JOB_ID = "5b0c9f7e-3d1a-4c2b-9e8f-1a2b3c4d5e6f";
const VIDEO_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";

// Shapes, Text, a Transform and MathTex: Cairo, Pango and LaTeX all take part.
const THREE_ANIMATIONS = `from manim import *

class Demo(Scene):
    def construct(self):
        square = Square()
        self.play(Create(square), Write(Text("Hi")), run_time=0.5)
        self.play(Transform(square, MathTex(r"e^{i\\pi} + 1 = 0")), run_time=0.5)
        self.play(square.animate.shift(RIGHT), run_time=1)
`;

let root: string;
let dataDir: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(fixturesDir(), "manim-"));
  dataDir = path.join(root, "data");
  await mkdir(dataDir);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function manimJob(
  code: string,
  sceneName = "Demo",
  quality: RenderManimJobMessage["quality"] = "LOW",
): RenderManimJobMessage {
  return {
    v: 2,
    type: "render_manim",
    jobId: JOB_ID,
    attempt: 1,
    videoId: VIDEO_ID,
    tenantId: "tenant-1",
    code,
    sceneName,
    quality,
    renderer: "CAIRO",
    outputKey: `videos/${VIDEO_ID}/source/scene.mp4`,
    cachePrefix: "manim-cache/tenant-1",
  };
}

interface RenderOptions {
  limits?: Partial<SandboxLimits>;
  progressIntervalMs?: number;
  controller?: AbortController;
  onEvent?: (e: JobEventBody) => void;
}

const scene = (construct: string) =>
  `from manim import *\n\nclass Demo(Scene):\n    def construct(self):\n${construct}`;

/** Runs the handler as the worker would: a fresh work dir per job, every event parsed by the contract. */
async function render(
  job: RenderManimJobMessage,
  bin = MANIM,
  opts: RenderOptions = {},
): Promise<{ events: JobEventBody[]; workDir: string; error?: Error }> {
  const workDir = await mkdtemp(path.join(root, "work-"));
  const events: JobEventBody[] = [];
  const emit = contractCheckedEmit(JOB_ID, events, opts.onEvent);
  const signal = (opts.controller ?? new AbortController()).signal;
  try {
    await renderManim(job, {
      storage: createLocalWorkerStorage(dataDir),
      emit,
      signal,
      workDir,
      progressIntervalMs: opts.progressIntervalMs ?? 20,
      manim: { bin, limits: opts.limits },
    });
    return { events, workDir };
  } catch (error) {
    return { events, workDir, error: error as Error };
  }
}

type Succeeded = Extract<JobEventBody, { type: "source.ready" }>;
type Progress = Extract<JobEventBody, { type: "step.progress" }>;

async function durationOf(file: string): Promise<number> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file]);
  return Number(stdout);
}

describe("Manim progress lines", () => {
  it("reads tqdm bars and cached-data lines as Manim v0.22 prints them", () => {
    const parser = createManimProgressParser();
    parser.write(
      "stdout",
      "[11/22/26 10:49:54] INFO     Animation 0 : Using cached data (hash : " +
        "d9c9855c418df4959cce0a9252c3d79c900349b3d1d54bc7a3cdd8cd074f9a19)    cairo_renderer.py:106\n",
    );
    parser.write("stderr", "\rAnimation 0: Create(Square): 100%|██████████| 1/1 [00:00<00:00, 40.1it/s]\r");
    parser.write("stderr", "\rAnimation 1: Write(MathTex('e^{i\\\\pi}+1=0')):  45%|████▌     | 27/6");
    expect(parser.snapshot()).toMatchObject({ animationIndex: 0, percent: 100, renderedCount: 0, cachedCount: 1 });
    parser.write("stderr", "0 [00:01<00:01, 23.40it/s]\r");
    expect(parser.snapshot()).toEqual({
      animationIndex: 1,
      percent: 45,
      description: "Write(MathTex('e^{i\\\\pi}+1=0'))",
      renderedCount: 1,
      cachedCount: 1,
    });
    parser.write("stderr", "\rWaiting 2:  12%|#         | 1/8 [00:00<00:00, 5.63it/s]");
    parser.end();
    expect(parser.snapshot()).toMatchObject({
      animationIndex: 2,
      percent: 12,
      description: "Waiting",
      renderedCount: 2,
    });
  });
});

describe("Manim progress lines", () => {
  it("an animation that printed no bar (a wait on a still frame) is started all the same; an index far ahead \
(the scene prints what it likes) fills at most the pending list", () => {
    const parser = createManimProgressParser();
    parser.write("stderr", "\rAnimation 0: Create(Square):   0%|          | 0/3\r");
    parser.write("stderr", "\rAnimation 2: FadeOut(Square):  50%|#####     | 2/3\r");
    expect(parser.takeStarts()).toEqual([
      { index: 0, description: "Create(Square)" },
      { index: 1, description: null },
      { index: 2, description: "FadeOut(Square)" },
    ]);
    parser.end({ completed: true, animationCount: 4 });
    expect(parser.takeStarts()).toEqual([{ index: 3, description: null }]);
    expect(parser.snapshot()).toMatchObject({ animationIndex: 3, percent: 100 });

    const hostile = createManimProgressParser();
    hostile.write("stdout", "Animation 999999999: x:  5%|\n");
    expect(hostile.takeStarts()).toHaveLength(1000);
  });
});

describe("render_manim with real Manim, in the sandbox", () => {
  it(`renders shapes, Text, a Transform and MathTex, uploads the MP4, and reports progress per animation from \
Manim's own bars`, async () => {
    const job = manimJob(THREE_ANIMATIONS);
    const { events, error } = await render(job);
    expect(error).toBeUndefined();

    expect(events[0]).toEqual({ type: "job.started" });
    const succeeded = events.at(-1) as Succeeded;
    expect(succeeded).toMatchObject({
      type: "source.ready",
      outputKey: job.outputKey,
      width: 854,
      height: 480,
      renderedCount: 3,
      cachedCount: 0,
    });
    expect(succeeded.fps).toBeCloseTo(15, 1);
    expect(succeeded.duration).toBeCloseTo(2, 0);
    expect(await durationOf(path.join(dataDir, job.outputKey))).toBeCloseTo(2, 0);

    const progress = events.filter((e): e is Progress => e.type === "step.progress");
    const indexes = progress.map((p) => p.index);
    expect([...new Set(indexes)]).toEqual([0, 1, 2]);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(progress.every((p) => p.count === 3)).toBe(true);
    expect(progress.find((p) => p.index === 0)?.description).toMatch(/^Create\(Square\), etc\./);
    expect(progress.find((p) => p.index === 1)?.description).toBe("Transform(Square)");
    expect(progress.at(-1)).toMatchObject({ index: 2, percent: 100, renderedCount: 3, cachedCount: 0 });
  });

  it(`reports every animation's start and end, in order, however fast: five animations (two still waits, which \
print no bar) in less time than one sample`, async () => {
    const five = scene(
      "        square = Square()\n" +
        "        self.play(Create(square), run_time=0.1)\n" +
        "        self.play(square.animate.shift(RIGHT), run_time=0.1)\n" +
        "        self.wait(0.1)\n" +
        "        self.play(square.animate.scale(0.5), run_time=0.1)\n" +
        "        self.wait(0.1)\n",
    );
    // One sample for the whole render (the worker's default is 1 s; the render takes seconds here).
    const { events, error } = await render(manimJob(five), MANIM, { progressIntervalMs: 600_000 });
    expect(error).toBeUndefined();
    const progress = events.filter((e): e is Progress => e.type === "step.progress");
    const steps = progress.map((p) => `${p.index}:${p.percent}`);
    for (let i = 0; i < 5; i++) {
      expect(steps, `animation ${i}'s start`).toContain(`${i}:0`);
      expect(steps, `animation ${i}'s end`).toContain(`${i}:100`);
    }
    // In order: the index never goes back, nor the percent within an animation.
    const order = progress.map((p) => p.index * 1000 + p.percent);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(progress.every((p) => p.count === 5)).toBe(true);
    expect(progress.find((p) => p.index === 0)?.description).toBe("Create(Square)");
    // A wait on a still frame prints no bar: it is reported all the same, undescribed.
    expect(progress.filter((p) => p.index === 4).map((p) => [p.percent, p.description])).toEqual([
      [0, null],
      [100, null],
    ]);
  });

  it(`re-renders only the edited animation of three: Manim's partial movie files come back \
from the cache`, async () => {
    const started = Date.now();
    const first = await render(manimJob(THREE_ANIMATIONS));
    const firstMs = Date.now() - started;
    expect(first.error).toBeUndefined();
    expect(first.events.at(-1)).toMatchObject({ type: "source.ready", renderedCount: 3, cachedCount: 0 });
    const cacheDir = path.join(dataDir, "manim-cache/tenant-1/cairo/480p15/Demo");
    expect((await readdir(cacheDir)).filter((f) => f.endsWith(".mp4"))).toHaveLength(3);

    // The last animation: the two before it start from the same state, so their hashes hold.
    const edited = THREE_ANIMATIONS.replace(
      "square.animate.shift(RIGHT), run_time=1",
      "square.animate.shift(LEFT * 2), run_time=1.5",
    );
    const again = Date.now();
    const second = await render(manimJob(edited));
    const secondMs = Date.now() - again;
    expect(second.error).toBeUndefined();
    const succeeded = second.events.at(-1) as Succeeded;
    expect(succeeded).toMatchObject({ type: "source.ready", renderedCount: 1, cachedCount: 2 });
    expect(succeeded.duration).toBeCloseTo(2.5, 0);
    expect((await readdir(cacheDir)).filter((f) => f.endsWith(".mp4"))).toHaveLength(4);
    console.info(
      `manim cache: 3 animations rendered in ${firstMs} ms; after editing one, 1 rendered + 2 cached in ${secondMs} ms`,
    );

    // Without the cache (another tenant's prefix) the same edit renders all three again.
    const uncached = await render({ ...manimJob(edited), cachePrefix: "manim-cache/tenant-2" });
    expect(uncached.events.at(-1)).toMatchObject({ type: "source.ready", renderedCount: 3, cachedCount: 0 });
  });

  it("renders each quality preset at its size and frame rate", async () => {
    const still = scene("        self.add(Square())\n        self.wait(0.2)\n");
    const expected = { MEDIUM: [1280, 720, 30], HIGH: [1920, 1080, 60], FOURK: [3840, 2160, 60] } as const;
    for (const [quality, [width, height, fps]] of Object.entries(expected)) {
      const { events, error } = await render(manimJob(still, "Demo", quality as keyof typeof expected));
      expect(error, quality).toBeUndefined();
      const succeeded = events.at(-1) as Succeeded;
      expect(succeeded, quality).toMatchObject({ width, height });
      expect(succeeded.fps, quality).toBeCloseTo(fps, 0);
    }
  });

  it("renders with the OpenGL renderer, headless", async () => {
    const job = {
      ...manimJob(scene("        self.play(Create(Circle()), run_time=0.5)\n")),
      renderer: "OPENGL" as const,
    };
    const { events, error } = await render(job);
    expect(error).toBeUndefined();
    expect(events.at(-1)).toMatchObject({ type: "source.ready", width: 854, height: 480, renderedCount: 1 });
    expect(await readdir(path.join(dataDir, "manim-cache/tenant-1/opengl/480p15/Demo"))).toHaveLength(1);
  });
});

describe("render_manim: the mistakes scene authors make come back readable and are not retried", () => {
  it("a syntax error, with its line, before anything renders", async () => {
    const broken =
      "from manim import *\n\nclass Demo(Scene):\n    def construct(self)\n        self.play(Create(Square()))\n";
    const { events, error, workDir } = await render(manimJob(broken));
    expect(error).toMatchObject({
      name: "SceneError",
      retryable: false,
      message: "Syntax error in the scene, line 4: expected ':'",
    });
    expect(events).toEqual([{ type: "job.started" }]);
    expect(existsSync(path.join(workDir, "scene", "media"))).toBe(false);
  });

  it("a scene class that is not in the code", async () => {
    const { events, error } = await render(manimJob(THREE_ANIMATIONS, "Intro"));
    expect(error).toMatchObject({
      name: "SceneError",
      retryable: false,
      message: "The code has no class named Intro (classes found: Demo)",
    });
    expect(events).toEqual([{ type: "job.started" }]);
  });

  it("an exception inside construct(), with its line", async () => {
    const { error } = await render(manimJob(scene("        self.add(Square())\n        ratio = 1 / 0\n")));
    expect(error).toMatchObject({
      name: "SceneError",
      retryable: false,
      message: "The scene failed at line 6: ZeroDivisionError: division by zero",
    });
  });

  it("a LaTeX error, naming the expression", async () => {
    const { error } = await render(manimJob(scene('        self.add(MathTex(r"\\frac{1}{2} + \\notacommand"))\n')));
    expect(error).toMatchObject({
      name: "SceneError",
      retryable: false,
      message: 'LaTeX error in "\\frac{1}{2} + \\notacommand": Undefined control sequence. (scene line 5)',
    });
  });
});

describe("render_manim stops", () => {
  // It waits rather than spins: the wall limit is what ends it, and a busy loop only burned the CPU
  // of the limit (about 6 s of it).
  const NEVER_ENDS = scene(
    "        import time\n        self.add(Square())\n        while True:\n            time.sleep(0.05)\n",
  );

  it("a scene that never ends, at the wall limit, with a message for the author and nothing stored", async () => {
    const job = manimJob(NEVER_ENDS);
    const started = Date.now();
    const { error } = await render(job, MANIM, { limits: { wallMs: 8000 } });
    expect(error).toMatchObject({
      name: "SceneError",
      retryable: false,
      message: "The render took longer than its limit of 8 s",
    });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(existsSync(path.join(dataDir, job.outputKey))).toBe(false);
  });

  it(`at the memory limit of the render as a whole: six children of 200 MiB under 256 MiB fail it, for good, \
with the reason`, async () => {
    const binDir = path.join(root, "bin");
    await mkdir(binDir, { mode: 0o755 });
    await chmod(root, 0o755);
    const sixChildren = path.join(binDir, "manim");
    await writeFile(
      sixChildren,
      `#!/usr/bin/env python3
import os, time
for _ in range(6):
    if os.fork() == 0:
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(30)
        os._exit(0)
os.wait()
`,
    );
    await chmod(sixChildren, 0o755);
    const job = manimJob(THREE_ANIMATIONS);
    const started = Date.now();
    const { error } = await render(job, sixChildren, { limits: { memoryBytes: 256 * 1024 ** 2, wallMs: 60_000 } });
    expect(error).toMatchObject({
      name: "SceneError",
      retryable: false,
      message: "The scene used more than 256 MB of memory (memory limit)",
    });
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(existsSync(path.join(dataDir, job.outputKey))).toBe(false);
  });

  it("when the job is canceled: the sandbox is killed and the handler rejects with an AbortError", async () => {
    const controller = new AbortController();
    const job = manimJob(scene("        self.play(Create(Square()))\n        self.wait(60)\n"));
    let started = 0;
    const { error, events } = await render(job, MANIM, {
      controller,
      onEvent: (e) => {
        if (e.type === "step.progress" && !started) {
          started = Date.now();
          controller.abort(new Error("job canceled"));
        }
      },
    });
    expect(error?.name).toBe("AbortError");
    expect(events.some((e) => e.type === "step.progress")).toBe(true);
    expect(events.some((e) => e.type === "source.ready")).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(existsSync(path.join(dataDir, job.outputKey))).toBe(false);
  });
});

describe("render_manim without Manim", () => {
  it(`exit code 127 (no such program in the sandbox) is reported as Manim not installed, and \
retried elsewhere`, async () => {
    const { error } = await render(manimJob(THREE_ANIMATIONS), "manim-not-installed");
    expect(error).toMatchObject({ retryable: true, exitCode: 127 });
    expect(error?.message).toMatch(/^Manim is not installed on this worker \(exit code 127/);
  });

  it("a MANIM_BIN path that does not exist is reported the same way", async () => {
    const { error } = await render(manimJob(THREE_ANIMATIONS), "/nonexistent/manim");
    expect(error).toMatchObject({ retryable: true });
    expect(error?.message).toMatch(
      /^Manim is not installed on this worker \(\/nonexistent\/manim cannot be used: ENOENT/,
    );
  });
});

describe("files the sandbox leaves", () => {
  it("are followed only to regular files inside the work dir: a symlink out is refused", async () => {
    const workDir = await mkdtemp(path.join(root, "work-"));
    const secret = path.join(root, "worker-secret.json");
    await writeFile(secret, "{}");
    await writeFile(path.join(workDir, "Demo.mp4"), "movie");
    await symlink(secret, path.join(workDir, "Linked.mp4"));
    await symlink(path.join(workDir, "Demo.mp4"), path.join(workDir, "Inside.mp4"));
    expect(await realFileInside(workDir, path.join(workDir, "Demo.mp4"))).toBe(path.join(workDir, "Demo.mp4"));
    expect(await realFileInside(workDir, path.join(workDir, "Inside.mp4"))).toBe(path.join(workDir, "Demo.mp4"));
    expect(await realFileInside(workDir, path.join(workDir, "Linked.mp4"))).toBeNull();
    expect(await realFileInside(workDir, path.join(workDir, "missing.mp4"))).toBeNull();
  });
});

describe("the manim capability", () => {
  it(`finds the project's virtualenv when MANIM_BIN is unset, with the base Python and the TeX \
tree readable`, async () => {
    const found = await locateManim();
    // Where the virtualenv really is: .tools may be a link to a shared directory the sandbox mounts.
    const venv = realpathSync(PROJECT_MANIM_VENV);
    expect(found).toMatchObject({
      command: path.join(venv, "bin", "manim"),
      python: path.join(venv, "bin", "python"),
      foundBy: "project virtualenv",
    });
    expect(found.readOnlyPaths).toContain(venv);
    expect(found.readOnlyPaths).toContain("/var/lib/texmf");
    expect(await locateManim("manim")).toMatchObject({ command: "manim", foundBy: "MANIM_BIN" });
  });

  it(`is there after a tiny real render succeeds in the sandbox, and not when Manim is missing, \
with the reason`, async () => {
    let reason = "";
    expect(await probeManim(locateManim(), { onFailure: (r) => (reason = r) }), reason).toBe(true);
    expect(await probeManim(locateManim("/nonexistent/manim"), { onFailure: (r) => (reason = r) })).toBe(false);
    expect(reason).toMatch(/ENOENT/);
    expect(await probeManim(locateManim("manim-not-installed"), { onFailure: (r) => (reason = r) })).toBe(false);
    expect(reason).toMatch(/Manim is not installed \(exit code 127/);
  });

  it(`a worker tests manim after it connects (its heartbeats say so meanwhile); without Manim it drops the \
capability, with it it renders jobs from the manim queue`, async () => {
    const start = async (bin: string | undefined) => {
      const memory = inMemoryTransport();
      const worker = await startTestWorker({
        workerId: `manim-${randomUUID()}`,
        capabilities: ["cpu", "manim"],
        transport: memory.transport,
        storage: createLocalWorkerStorage(dataDir),
        tmpDir: root,
        progressIntervalMs: 50,
        manim: { bin },
      });
      return { worker, memory };
    };
    const heartbeats = (memory: ReturnType<typeof inMemoryTransport>) =>
      memory.events.filter((e) => e.type === "worker.heartbeat");
    const without = await start("/nonexistent/manim");
    expect(heartbeats(without.memory)[0]).toMatchObject({ capabilities: ["cpu"], probing: ["manim"] });
    expect(heartbeats(without.memory).at(-1)).toMatchObject({ capabilities: ["cpu"], probing: [] });
    await without.worker.shutdown(0);

    const withManim = await start(undefined);
    try {
      expect(heartbeats(withManim.memory)[0]).toMatchObject({ capabilities: ["cpu"], probing: ["manim"] });
      expect(heartbeats(withManim.memory).at(-1)).toMatchObject({ capabilities: ["cpu", "manim"], probing: [] });
      const job = { ...manimJob(scene("        self.play(Create(Square()), run_time=0.5)\n")), jobId: randomUUID() };
      await withManim.memory.deliver(job, "manim");
      expect(withManim.memory.events.find((e) => e.type === "source.ready" && e.jobId === job.jobId)).toMatchObject({
        outputKey: job.outputKey,
      });
      const syntax = { ...manimJob("class Demo(:\n"), jobId: randomUUID() };
      await withManim.memory.deliver(syntax, "manim");
      expect(withManim.memory.events.find((e) => e.type === "job.failed" && e.jobId === syntax.jobId)).toMatchObject({
        retryable: false,
        error: expect.stringMatching(/^Syntax error in the scene, line 1: /),
      });
    } finally {
      await withManim.worker.shutdown(0);
    }
  });
});
