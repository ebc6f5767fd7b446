import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { startWorkerProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { graphql, type ResultOf } from "./support/graphql.ts";
import { uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

/** Passes the worker's NVENC probe, fails every encode with h264_nvenc; runs the real ffmpeg otherwise. */
const FAILING_GPU_FFMPEG = path.resolve(import.meta.dirname, "fixtures/stand-in-ffmpeg/failing-nvenc");
const GPU_WORKER_ID = "stand-in-failing-gpu";

const JOBS = graphql(`
  query($id: ID!) { video(id: $id) { jobs(first: 5) { edges { node {
    kind status attempt dispatchedTo routingReason runs { workerId status error } } } } } }`);

type JobView = NonNullable<ResultOf<typeof JOBS>["video"]>["jobs"]["edges"][number]["node"];

let t: TestApp | undefined;
afterEach(async () => {
  await stopAllProcesses();
  await t?.stop();
  t = undefined;
});

let clip: Uint8Array<ArrayBuffer>;
beforeAll(async () => {
  clip = new Uint8Array(await readFile(await makeClip({ width: 320, height: 240, seconds: 2, audio: false })));
});

async function transcodeJob(app: TestApp, id: string): Promise<JobView> {
  const res = await app.gql(JOBS, { id });
  if (res.errors) throw new Error(JSON.stringify(res.errors));
  return res.data.video!.jobs.edges.map((e) => e.node).find((j) => j.kind === "TRANSCODE")!;
}

async function advertised(app: TestApp, workerId: string): Promise<string[] | null> {
  return (await app.app.services.db.worker.findUnique({ where: { id: workerId } }))?.capabilities ?? null;
}

describe("a GPU worker that passes its probe but fails its encodes (stand-in GPU: a stand-in ffmpeg)", () => {
  it(`sends each failed nvenc attempt's retry to the CPU worker (READY, GPU_ENCODE_FAILED), and the stand-in GPU \
worker drops nvenc after NVENC_MAX_CONSECUTIVE_FAILURES failures in a row`, async () => {
    t = await startTestApp({
      env: { GPU_FALLBACK_AFTER_SECONDS: "600" },
      workerEnv: { WORKER_CAPABILITIES: "cpu" },
    });
    const app = t;
    const gpuWorker: ServiceProcess = await startWorkerProcess(GPU_WORKER_ID, {
      TRANSPORT: "postgres",
      DATABASE_URL: app.database.url,
      DATA_DIR: app.dataDir,
      WORKER_CAPABILITIES: "nvenc",
      FFMPEG_PATH: FAILING_GPU_FFMPEG,
      NVENC_MAX_CONSECUTIVE_FAILURES: "2",
      HEARTBEAT_INTERVAL_SECONDS: "1",
      PROGRESS_INTERVAL_MS: "250",
    });
    // The stand-in's probe passed: it advertises nvenc, and the API knows.
    expect(gpuWorker.log()).toContain("NVENC probe encode succeeded");
    const deadline = Date.now() + 15_000;
    while (!(await advertised(app, GPU_WORKER_ID))?.includes("nvenc")) {
      if (Date.now() > deadline) throw new Error("the stand-in GPU worker's heartbeat never reached the API");
      await new Promise((r) => setTimeout(r, 100));
    }

    for (const title of ["first", "second"]) {
      const video = await uploadAndWait(app, clip, title);
      expect(video.status, `${title}: ${video.error}`).toBe("READY");
      const job = await transcodeJob(app, video.id);
      expect(job).toMatchObject({
        status: "SUCCEEDED",
        attempt: 2,
        dispatchedTo: "cpu",
        routingReason: "GPU_ENCODE_FAILED",
      });
      const gpuRuns = job.runs.filter((r) => r.workerId === GPU_WORKER_ID);
      const cpuRuns = job.runs.filter((r) => r.workerId !== GPU_WORKER_ID);
      expect(gpuRuns.map((r) => r.status)).toEqual(["FAILED"]);
      expect(gpuRuns[0]!.error).toMatch(/nvenc|encoder|ffmpeg/i);
      expect(cpuRuns.map((r) => r.status)).toEqual(["SUCCEEDED"]);
    }

    // Two failures in a row: the stand-in stops advertising nvenc, and says why.
    await gpuWorker.waitForLog("NVENC DROPPED", 15_000);
    const dropDeadline = Date.now() + 15_000;
    while ((await advertised(app, GPU_WORKER_ID))?.includes("nvenc")) {
      if (Date.now() > dropDeadline) throw new Error("the stand-in GPU worker still advertises nvenc");
      await new Promise((r) => setTimeout(r, 100));
    }
    // With no worker advertising nvenc, the next upload goes straight to cpu.
    const third = await uploadAndWait(app, clip, "third");
    expect(third.status).toBe("READY");
    expect(await transcodeJob(app, third.id)).toMatchObject({ attempt: 1, routingReason: "NO_GPU_WORKER" });
  });
});
