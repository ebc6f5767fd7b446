import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderManim } from "../../render-worker/handlers/render-manim.ts";
import { probeManim } from "../../render-worker/manim/capability.ts";
import { realFileInside } from "../../render-worker/manim/cache.ts";
import { createManimProgressParser } from "../../render-worker/manim/progress.ts";
import type { SandboxLimits } from "../../render-worker/sandbox/bubblewrap.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { createWorker } from "../../render-worker/worker.ts";
import { type JobEventBody, type RenderManimJobMessage } from "../../src/protocol/messages.ts";
import { fixturesDir } from "./media-fixtures.ts";
import { contractCheckedEmit } from "./job-events.ts";
import { inMemoryTransport } from "./in-memory-transport.ts";

const run = promisify(execFile);
/** fake-manim: a stand-in for Manim's CLI (see its header); Manim itself cannot be installed here. */
const FAKE_MANIM = path.resolve(import.meta.dirname, "../fixtures/manim-standin/manim");
const JOB_ID = "5b0c9f7e-3d1a-4c2b-9e8f-1a2b3c4d5e6f";
const VIDEO_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";

const THREE_ANIMATIONS = `from manim import *

class Demo(Scene):
    def construct(self):
        square = Square()
        self.play(Create(square))
        self.wait(0.5)
        self.play(square.animate.shift(RIGHT), run_time=2)
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

function manimJob(code: string, sceneName = "Demo"): RenderManimJobMessage {
  return {
    v: 1,
    type: "render_manim",
    jobId: JOB_ID,
    attempt: 1,
    videoId: VIDEO_ID,
    tenantId: "tenant-1",
    code,
    sceneName,
    quality: "LOW",
    renderer: "CAIRO",
    outputKey: `videos/${VIDEO_ID}/source/scene.mp4`,
    cachePrefix: "manim-cache/tenant-1",
  };
}

interface RenderOptions {
  limits?: Partial<SandboxLimits>;
  controller?: AbortController;
  onEvent?: (e: JobEventBody) => void;
}

/** Runs the handler as the worker would: a fresh work dir per job, every event parsed by the contract. */
async function render(job: RenderManimJobMessage, bin = FAKE_MANIM, opts: RenderOptions = {}): Promise<{ events: JobEventBody[]; workDir: string; error?: Error }> {
  const workDir = await mkdtemp(path.join(root, "work-"));
  const events: JobEventBody[] = [];
  const emit = contractCheckedEmit(JOB_ID, events, opts.onEvent);
  const signal = (opts.controller ?? new AbortController()).signal;
  try {
    await renderManim(job, { storage: createLocalWorkerStorage(dataDir), emit, signal, workDir, progressIntervalMs: 20, manim: { bin, limits: opts.limits } });
    return { events, workDir };
  } catch (error) {
    return { events, workDir, error: error as Error };
  }
}

type Succeeded = Extract<JobEventBody, { type: "render.succeeded" }>;
type Progress = Extract<JobEventBody, { type: "render.progress" }>;

async function durationOf(file: string): Promise<number> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file]);
  return Number(stdout);
}

describe("Manim progress lines", () => {
  it("reads tqdm bars and cached-data lines as Manim v0.19 prints them", () => {
    const parser = createManimProgressParser();
    parser.write("stdout", "[11/22/26 03:22:34] INFO     Animation 0 : Using cached data (hash : 1009597388_3712911717_3490391424)    cairo_renderer.py:88\n");
    parser.write("stderr", "\rAnimation 0: Create(Square): 100%|██████████| 1/1 [00:00<00:00, 40.1it/s]\r");
    parser.write("stderr", "\rAnimation 1: Transform(Square), etc.:  45%|████▌     | 27/6");
    expect(parser.snapshot()).toMatchObject({ animationIndex: 0, percent: 100, renderedCount: 0, cachedCount: 1 });
    parser.write("stderr", "0 [00:01<00:01, 23.40it/s]\r");
    expect(parser.snapshot()).toEqual({ animationIndex: 1, percent: 45, description: "Transform(Square), etc.", renderedCount: 1, cachedCount: 1 });
    parser.write("stderr", "\rWaiting 2:  12%|#         | 1/8 [00:00<00:00, 5.63it/s]");
    parser.end();
    expect(parser.snapshot()).toMatchObject({ animationIndex: 2, percent: 12, description: "Waiting", renderedCount: 2 });
  });
});

describe("render_manim with the fake-manim stand-in, in the sandbox", () => {
  it("renders the scene, uploads the MP4 with the scene's duration, and reports progress per animation in order", async () => {
    const job = manimJob(THREE_ANIMATIONS);
    const { events, error } = await render(job);
    expect(error).toBeUndefined();

    expect(events[0]).toEqual({ type: "job.started" });
    const succeeded = events.at(-1) as Succeeded;
    expect(succeeded).toMatchObject({ type: "render.succeeded", outputKey: job.outputKey, width: 854, height: 480, animationsRendered: 3, animationsCached: 0 });
    expect(succeeded.fps).toBeCloseTo(15, 1);
    // Create (1 s) + wait(0.5) + shift (run_time=2).
    expect(succeeded.duration).toBeCloseTo(3.5, 1);
    const stored = path.join(dataDir, job.outputKey);
    expect(await durationOf(stored)).toBeCloseTo(3.5, 1);

    const progress = events.filter((e): e is Progress => e.type === "render.progress");
    const indexes = progress.map((p) => p.animationIndex);
    expect([...new Set(indexes)]).toEqual([0, 1, 2]);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(progress.every((p) => p.animationCount === 3)).toBe(true);
    expect(progress.find((p) => p.animationIndex === 1)?.description).toBe("Waiting");
    expect(progress.find((p) => p.animationIndex === 0)?.description).toBe("Create(square)");
    expect(progress.at(-1)).toMatchObject({ animationIndex: 2, percent: 100 });
  });

  it("reports a syntax error with its line number before anything renders", async () => {
    const broken = "from manim import *\n\nclass Demo(Scene):\n    def construct(self)\n        self.play(Create(Square()))\n";
    // A manim that cannot run: a failure that is not about the syntax means the render was tried.
    const { events, error, workDir } = await render(manimJob(broken), "/nonexistent/manim");
    expect(error).toMatchObject({ name: "SceneError", retryable: false, message: "Syntax error in the scene, line 4: expected ':'" });
    expect(events).toEqual([{ type: "job.started" }]);
    expect(existsSync(path.join(workDir, "scene", "media"))).toBe(false);
    // The same scene with the syntax fixed gets past the check and fails on the missing program.
    const fixed = await render(manimJob(broken.replace("construct(self)", "construct(self):")), "/nonexistent/manim");
    expect(fixed.error?.message).toMatch(/ENOENT/);
  });

  it("reports a scene class that is not in the code", async () => {
    const { events, error } = await render(manimJob(THREE_ANIMATIONS, "Intro"), "/nonexistent/manim");
    expect(error).toMatchObject({ name: "SceneError", retryable: false, message: "The code has no class named Intro (classes found: Demo)" });
    expect(events).toEqual([{ type: "job.started" }]);
  });

  it("re-renders only the edited animation: partial movie files come back from the cache", async () => {
    const first = await render(manimJob(THREE_ANIMATIONS));
    expect(first.error).toBeUndefined();
    expect(first.events.at(-1)).toMatchObject({ type: "render.succeeded", animationsRendered: 3, animationsCached: 0 });
    const cacheDir = path.join(dataDir, "manim-cache/tenant-1/cairo/480p15/Demo");
    expect((await readdir(cacheDir)).filter((f) => f.endsWith(".mp4"))).toHaveLength(3);

    const edited = THREE_ANIMATIONS.replace("square.animate.shift(RIGHT), run_time=2", "square.animate.shift(LEFT), run_time=1");
    const second = await render(manimJob(edited));
    expect(second.error).toBeUndefined();
    const succeeded = second.events.at(-1) as Succeeded;
    expect(succeeded).toMatchObject({ type: "render.succeeded", animationsRendered: 1, animationsCached: 2 });
    expect(succeeded.duration).toBeCloseTo(2.5, 1);
    expect(await durationOf(path.join(dataDir, succeeded.outputKey))).toBeCloseTo(2.5, 1);
    expect((await readdir(cacheDir)).filter((f) => f.endsWith(".mp4"))).toHaveLength(4);

    // Without the cache (another tenant's prefix) the same edit renders all three again.
    const uncached = await render({ ...manimJob(edited), cachePrefix: "manim-cache/tenant-2" });
    expect(uncached.events.at(-1)).toMatchObject({ type: "render.succeeded", animationsRendered: 3, animationsCached: 0 });
  });
});

describe("render_manim stops", () => {
  const LONG_SCENE = `from manim import *

class Demo(Scene):
    def construct(self):
        self.play(Create(Square()))
        self.wait(30)
`;

  it("at the wall limit, with a message for the author and nothing stored", async () => {
    const job = manimJob(LONG_SCENE);
    const started = Date.now();
    const { error } = await render(job, FAKE_MANIM, { limits: { wallMs: 2000 } });
    expect(error).toMatchObject({ name: "SceneError", retryable: false, message: "The render took longer than its limit of 2 s" });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(path.join(dataDir, job.outputKey))).toBe(false);
    // Under a longer limit the same scene is still rendering at 3 s (the test cancels it then).
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("test done")), 3000);
    const longer = await render(job, FAKE_MANIM, { limits: { wallMs: 60_000 }, controller });
    clearTimeout(timer);
    expect(longer.error?.name).toBe("AbortError");
  });

  it("at the memory limit of the render as a whole: six children of 200 MiB under 256 MiB fail it, for good, with the reason", async () => {
    const binDir = path.join(root, "bin");
    await mkdir(binDir, { mode: 0o755 });
    await chmod(root, 0o755);
    const sixChildren = path.join(binDir, "manim");
    await writeFile(sixChildren, `#!/usr/bin/env python3
import os, time
for _ in range(6):
    if os.fork() == 0:
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(30)
        os._exit(0)
os.wait()
`);
    await chmod(sixChildren, 0o755);
    const job = manimJob(THREE_ANIMATIONS);
    const started = Date.now();
    const { error } = await render(job, sixChildren, { limits: { memoryBytes: 256 * 1024 ** 2, wallMs: 60_000 } });
    expect(error).toMatchObject({ name: "SceneError", retryable: false, message: "The scene used more than 256 MB of memory (memory limit)" });
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(existsSync(path.join(dataDir, job.outputKey))).toBe(false);
  });

  it("when the job is canceled: the sandbox is killed and the handler rejects with an AbortError", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const job = manimJob(LONG_SCENE);
    const { error, events } = await render(job, FAKE_MANIM, { controller, onEvent: (e) => e.type === "render.progress" && controller.abort(new Error("job canceled")) });
    expect(error?.name).toBe("AbortError");
    expect(events.some((e) => e.type === "render.progress")).toBe(true);
    expect(events.some((e) => e.type === "render.succeeded")).toBe(false);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(path.join(dataDir, job.outputKey))).toBe(false);
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
  it("finds a manim program that lives under /tmp (a checkout there), which the sandbox's own /tmp would hide", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "manim-under-tmp-"));
    // As a checkout's directories are: readable by others (mkdtemp makes 0700).
    await chmod(dir, 0o755);
    try {
      await copyFile(FAKE_MANIM, path.join(dir, "manim"));
      await chmod(path.join(dir, "manim"), 0o755);
      let reason = "";
      expect(await probeManim(path.join(dir, "manim"), { onFailure: (r) => (reason = r) }), reason).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is there when `manim --version` runs in the sandbox, and not when it does not", async () => {
    expect(await probeManim(FAKE_MANIM)).toBe(true);
    let reason = "";
    expect(await probeManim("/nonexistent/manim", { onFailure: (r) => (reason = r) })).toBe(false);
    expect(reason).toMatch(/ENOENT/);
    expect(await probeManim("manim-not-installed", { onFailure: (r) => (reason = r) })).toBe(false);
    expect(reason).toMatch(/manim-not-installed --version exited with/);
  });

  it("a worker without manim drops the capability; one with it renders jobs from the manim queue", async () => {
    const start = async (bin: string) => {
      const memory = inMemoryTransport();
      const worker = createWorker({
        workerId: `manim-${randomUUID()}`,
        capabilities: ["cpu", "manim"],
        concurrency: 1,
        transport: memory.transport,
        storage: createLocalWorkerStorage(dataDir),
        tmpDir: root,
        progressIntervalMs: 50,
        heartbeatIntervalSeconds: 60,
        manim: { bin },
      });
      await worker.start();
      return { worker, memory };
    };
    const without = await start("/nonexistent/manim");
    expect(without.memory.events.find((e) => e.type === "worker.heartbeat")).toMatchObject({ capabilities: ["cpu"] });
    await without.worker.shutdown(0);

    const withManim = await start(FAKE_MANIM);
    try {
      expect(withManim.memory.events.find((e) => e.type === "worker.heartbeat")).toMatchObject({ capabilities: ["cpu", "manim"] });
      const job = { ...manimJob(THREE_ANIMATIONS), jobId: randomUUID() };
      await withManim.memory.deliver(job, "manim");
      expect(withManim.memory.events.find((e) => e.type === "render.succeeded" && e.jobId === job.jobId)).toMatchObject({ outputKey: job.outputKey });
      const syntax = { ...manimJob("class Demo(:\n"), jobId: randomUUID() };
      await withManim.memory.deliver(syntax, "manim");
      expect(withManim.memory.events.find((e) => e.type === "job.failed" && e.jobId === syntax.jobId)).toMatchObject({ retryable: false, error: expect.stringMatching(/^Syntax error in the scene, line 1: /) });
    } finally {
      await withManim.worker.shutdown(0);
    }
  });
});
