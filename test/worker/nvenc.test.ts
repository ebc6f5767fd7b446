import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { presetTuning } from "../../render-worker/media/encode-ladder.ts";
import { videoEncoderOptions } from "../../render-worker/media/rung-encoding.ts";
import { probeNvenc, rungEncoder } from "../../render-worker/media/nvenc.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { parseWorkerEvent, type WorkerEvent } from "../../src/protocol/worker-messages.ts";
import type { JobEvent } from "../../src/protocol/job-events.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { createPostgresTransport } from "../../src/transport/postgres.ts";
import { createTestDatabase } from "../support/db.ts";
import { fixturesDir, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";
import { inMemoryTransport } from "./in-memory-transport.ts";
import { startTestWorker } from "./test-worker.ts";

const run = promisify(execFile);
const WORKER_ENTRY = path.resolve(import.meta.dirname, "../../render-worker/main.ts");
// A machine with the NVIDIA driver's device nodes may well encode; these tests are about one without.
const hasNvidiaDevice = existsSync("/dev/nvidiactl");

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const ladder1080 = planLadder({
  duration: 10,
  width: 1920,
  height: 1080,
  fps: 30,
  rotation: 0,
  hasAudio: false,
  videoCodec: "h264",
  audioCodec: null,
});
const rung1080 = ladder1080[0]!;
const video1080 = ladder1080.filter((r) => r.kind === "VIDEO");

/** A transcode job whose source (a generated clip) is in `dataDir`. */
async function transcodeJob(dataDir: string): Promise<TranscodeJobMessage> {
  const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
  return stageTranscodeJob(dataDir, clip, { jobId: randomUUID(), videoId: randomUUID() }, 2);
}

async function waitFor<T>(what: string, find: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("h264_nvenc (no GPU here: command line only)", () => {
  it("encodes a rung with VBR at the rung's rates, high profile, and IDR frames only at segment boundaries", () => {
    expect(videoEncoderOptions("h264_nvenc", rung1080, 4, 30, video1080)).toEqual([
      "-c:v",
      "h264_nvenc",
      "-preset",
      "p4",
      "-tune",
      "hq",
      "-rc",
      "vbr",
      "-profile:v",
      "high",
      "-level:v",
      "4.0",
      "-b:v",
      "5000000",
      "-maxrate",
      "5500000",
      "-bufsize",
      "7500000",
      "-force_key_frames",
      "expr:gte(t,n_forced*4)",
      "-forced-idr",
      "1",
      "-g",
      "240",
      "-bf",
      "3",
      "-rc-lookahead",
      "20",
      "-no-scenecut",
      "1",
    ]);
    // An unknown frame rate is taken as 30 fps for the GOP length.
    expect(videoEncoderOptions("h264_nvenc", rung1080, 2, 0, video1080)).toContain("120");
  });

  it("uses only option names and values that this ffmpeg's h264_nvenc has", async () => {
    const { stdout } = await run("ffmpeg", ["-hide_banner", "-h", "encoder=h264_nvenc"]);
    const options = videoEncoderOptions("h264_nvenc", rung1080, 4, 30, video1080);
    const encoderOptions = ["-preset", "-tune", "-rc", "-forced-idr", "-rc-lookahead", "-no-scenecut"];
    for (const name of encoderOptions) expect(stdout, name).toMatch(new RegExp(`^\\s+${name}\\s`, "m"));
    const named: Record<string, string> = {
      "-preset": "p4",
      "-tune": "hq",
      "-rc": "vbr",
      "-profile:v": "high",
      "-level:v": "4.0",
    };
    for (const [name, value] of Object.entries(named)) {
      expect(options[options.indexOf(name) + 1]).toBe(value);
      expect(stdout, `${name} ${value}`).toMatch(
        new RegExp(`^\\s+${value.replace(".", "\\.")}\\s+\\d+\\s+E\\.\\.V`, "m"),
      );
    }
  });

  it("encodes rungs under 145 px on a side with libx264, since NVENC refuses them", () => {
    expect(ladder1080.map((r) => `${r.name}:${rungEncoder("h264_nvenc", r)}`)).toEqual([
      "1080p:h264_nvenc",
      "720p:h264_nvenc",
      "540p:h264_nvenc",
      "480p:h264_nvenc",
      "360p:h264_nvenc",
      "240p:h264_nvenc",
      "144p:libx264",
    ]);
    const portrait = planLadder({
      duration: 10,
      width: 1080,
      height: 1920,
      fps: 30,
      rotation: 0,
      hasAudio: false,
      videoCodec: "h264",
      audioCodec: null,
    });
    expect(portrait.find((r) => r.name === "144p")).toMatchObject({ width: 144, height: 256 });
    expect(rungEncoder("h264_nvenc", portrait.find((r) => r.name === "144p")!)).toBe("libx264");
    expect(ladder1080.every((r) => rungEncoder("libx264", r) === "libx264")).toBe(true);
  });

  it("gives libx264 rungs their per-size settings: veryfast, a cheaper search from 540p to 360p", () => {
    expect(videoEncoderOptions("libx264", rung1080, 4, 30, video1080)).toEqual([
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-profile:v",
      "high",
      "-level:v",
      "4.0",
      "-b:v",
      "5000000",
      "-maxrate",
      "5500000",
      "-bufsize",
      "7500000",
      "-force_key_frames",
      "expr:gte(t,n_forced*4)",
      "-sc_threshold",
      "0",
    ]);
    const search = (r: (typeof video1080)[number]) =>
      videoEncoderOptions("libx264", r, 4, 30, video1080).slice(2, 6).join(" ");
    expect(video1080.map((r) => `${r.name}: ${search(r)}`)).toEqual([
      "1080p: -preset veryfast -profile:v high",
      "720p: -preset veryfast -profile:v high",
      "540p: -preset veryfast -x264-params subme=1:b-adapt=0",
      "480p: -preset veryfast -x264-params subme=1:b-adapt=0",
      "360p: -preset veryfast -x264-params subme=1:b-adapt=0",
      "240p: -preset veryfast -profile:v high",
      "144p: -preset veryfast -profile:v high",
    ]);
  });

  it("X264_PRESET gives every libx264 rung that one preset, with no per-rung search settings", () => {
    const { x264Options } = presetTuning("ultrafast");
    const search = (r: (typeof video1080)[number]) =>
      videoEncoderOptions("libx264", r, 4, 30, video1080, x264Options).slice(2, 6).join(" ");
    expect(video1080.map(search)).toEqual(video1080.map(() => "-preset ultrafast -profile:v high"));
  });
});

describe.skipIf(hasNvidiaDevice)("probeNvenc (no GPU here)", () => {
  it("returns false with ffmpeg's reason after a real probe encode", async () => {
    const reasons: string[] = [];
    expect(await probeNvenc({ onFailure: (r) => reasons.push(r) })).toBe(false);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/cuda|nvenc|nvidia/i);
  });
});

describe.skipIf(hasNvidiaDevice)("a worker asked for nvenc on a machine without NVENC", () => {
  it("started with WORKER_CAPABILITIES=cpu,nvenc, drops nvenc, says so loudly and still serves cpu jobs", async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const api = createPostgresTransport({ connectionString: db.url, stallSeconds: 30 });
    await api.start();
    cleanups.push(() => api.stop());
    const events: WorkerEvent[] = [];
    await api.consumeEvents(async (batch) => {
      events.push(...batch.map(parseWorkerEvent));
    });

    const dataDir = await mkdtemp(path.join(fixturesDir(), "nvenc-worker-"));
    const nvencJob = await transcodeJob(dataDir);
    const cpuJob = await transcodeJob(dataDir);
    await api.publishJob("nvenc", nvencJob);

    let stderr = "";
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of ["PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "WORKER_ID", "WORKER_TMP_DIR"])
      delete env[name];
    const child = spawn(process.execPath, [WORKER_ENTRY], {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...env,
        TRANSPORT: "postgres",
        DATABASE_URL: db.url,
        DATA_DIR: dataDir,
        WORKER_ID: "nvenc-test-worker",
        WORKER_CAPABILITIES: "cpu,nvenc",
        HEARTBEAT_INTERVAL_SECONDS: "1",
        LOG_LEVEL: "info",
      },
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });

    const heartbeat = await waitFor("a heartbeat", () => events.find((e) => e.type === "worker.heartbeat"));
    expect(heartbeat.workerId).toBe("nvenc-test-worker");
    expect(heartbeat.capabilities).toEqual(["cpu"]);
    // The first heartbeat goes out just before "worker ready" is logged.
    await waitFor("the worker ready line", () => stderr.includes('"message":"worker ready"') || undefined);
    const logLines = stderr
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { severity: string; message: string; reason?: string; capabilities?: string[] });
    const loud = logLines.find((l) => l.message.startsWith("NVENC IS NOT AVAILABLE"));
    expect(loud).toMatchObject({ severity: "ERROR", capabilities: ["cpu"] });
    expect(loud?.reason).toMatch(/cuda|nvenc|nvidia/i);
    expect(logLines.find((l) => l.message === "worker ready")).toMatchObject({ capabilities: ["cpu"] });

    await api.publishJob("cpu", cpuJob);
    const jobEvents = () => events.filter((e): e is JobEvent => e.type !== "worker.heartbeat");
    await waitFor("the cpu job to succeed", () =>
      jobEvents().find((e) => e.jobId === cpuJob.jobId && e.type === "job.succeeded"),
    );
    expect(existsSync(path.join(dataDir, cpuJob.outputPrefix, "hls", "master.m3u8"))).toBe(true);
    // The nvenc job was published first and is still waiting for a worker that can take it.
    expect(jobEvents().filter((e) => e.jobId === nvencJob.jobId)).toEqual([]);

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("started with WORKER_CAPABILITIES=nvenc alone, exits with a clear error before connecting", async () => {
    const child = spawn(process.execPath, [WORKER_ENTRY], {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        TRANSPORT: "postgres",
        // Nothing listens here: the worker must give up before it tries to connect.
        DATABASE_URL: "postgresql://nobody@127.0.0.1:1/none",
        WORKER_CAPABILITIES: "nvenc",
        LOG_LEVEL: "info",
      },
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/NVENC IS NOT AVAILABLE/);
    expect(stderr).toMatch(
      new RegExp(
        String.raw`WORKER_CAPABILITIES asks only for nvenc, but NVENC does not work on this machine \(.+\);` +
          " no capability left to serve",
      ),
    );
    expect(stderr).not.toMatch(/ECONNREFUSED/);
  });
});

describe("the queue a job came from picks its encoder", () => {
  it("encodes nvenc-queue jobs with h264_nvenc and cpu-queue jobs with libx264", async () => {
    const root = await mkdtemp(path.join(fixturesDir(), "encoder-choice-"));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const memory = inMemoryTransport();
    const worker = await startTestWorker({
      workerId: "encoder-choice",
      capabilities: ["cpu", "nvenc"],
      transport: memory.transport,
      storage: createLocalWorkerStorage(root),
      tmpDir: root,
      // Stands in for a GPU that passed the probe; the encode below is real and fails here.
      probeNvenc: async () => true,
    });
    cleanups.push(() => worker.shutdown(0));
    expect(memory.consumed()).toEqual(["cpu", "nvenc"]);
    expect(memory.events.find((e) => e.type === "worker.heartbeat")).toMatchObject({ capabilities: ["cpu", "nvenc"] });

    const onGpuQueue = await transcodeJob(root);
    await memory.deliver(onGpuQueue, "nvenc");
    const failed = memory.events.find((e) => e.type === "job.failed" && e.jobId === onGpuQueue.jobId);
    expect(failed).toMatchObject({ type: "job.failed", retryable: true });
    const failure = failed as Extract<JobEvent, { type: "job.failed" }>;
    // The 320x180 source's ladder: 180p on NVENC, 144p (under NVENC's minimum) on x264.
    expect(failure.command).toMatch(
      new RegExp(
        String.raw`-map \[v0\] (?:-fpsmax \S+ )?-c:v h264_nvenc -preset p4 .*-forced-idr 1 .*180p/seg_%05d\.ts` +
          String.raw` -map \[v1\] (?:-fpsmax \S+ )?-c:v libx264 .*144p/seg_%05d\.ts` +
          // The storyboard's sheets and the poster, from the same decode.
          String.raw` -map \[storyboard\] -q:v 4 .*sheet-%d\.jpg -map \[poster\] -q:v 3 .*poster\.jpg$`,
      ),
    );

    const onCpuQueue = await transcodeJob(root);
    await memory.deliver(onCpuQueue, "cpu");
    expect(memory.events.find((e) => e.type === "job.succeeded" && e.jobId === onCpuQueue.jobId)).toBeDefined();
  });
});
