import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { WorkerStorage } from "../../render-worker/storage/types.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { ENCODE_MANIFEST } from "../../src/protocol/storage-layout.ts";
import { fixturesDir, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";

/** The storage, counting its reads of the encode manifest. */
function countingManifestReads(storage: WorkerStorage): { storage: WorkerStorage; reads: () => number } {
  let reads = 0;
  return {
    storage: {
      ...storage,
      readText: async (key) => {
        if (key.endsWith(`/${ENCODE_MANIFEST}`)) reads++;
        return storage.readText(key);
      },
    },
    reads: () => reads,
  };
}

describe("a transcode run (real ffmpeg)", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(fixturesDir(), "manifest-reads-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("reads the encode manifest once, whether it starts, resumes with loudness, or finds the job done", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 6, audio: true });
    const dataDir = path.join(root, "data");
    const ids = { jobId: "5c3e8f7a-1b2d-4c6e-8f0a-9b8c7d6e5f4a", videoId: "0f1e2d3c-4b5a-4697-8877-665544332211" };
    const staged = await stageTranscodeJob(dataDir, clip, ids, 2);
    const job = {
      ...staged,
      options: { ...staged.options, loudness: { integratedLufs: -20, truePeakDb: -1.5, lra: 11 } },
    };
    const local = createLocalWorkerStorage(dataDir);
    const runOnce = async (attempt: number, stopAfterSegments?: number) => {
      const { storage, reads } = countingManifestReads(local);
      const controller = new AbortController();
      const events: JobEventBody[] = [];
      await transcode(
        { ...job, attempt },
        {
          storage,
          signal: controller.signal,
          workDir: await mkdtemp(path.join(root, "work-")),
          progressIntervalMs: 100,
          emit: async (e) => {
            events.push(e);
            if (
              stopAfterSegments !== undefined &&
              e.type === "job.progress" &&
              e.variants.length > 0 &&
              e.variants.every((v) => v.segmentCount >= stopAfterSegments)
            )
              controller.abort(new Error("worker killed"));
          },
        },
      ).catch((err: unknown) => {
        if (stopAfterSegments === undefined) throw err;
      });
      return { reads: reads(), events };
    };

    const first = await runOnce(1, 1);
    expect(first.reads).toBe(1);
    const resumed = await runOnce(2);
    expect(resumed.events.find((e) => e.type === "job.probed")).toMatchObject({ resumed: expect.anything() });
    expect(resumed.events.some((e) => e.type === "job.succeeded")).toBe(true);
    expect(resumed.reads).toBe(1);
    const done = await runOnce(3);
    expect(done.events.find((e) => e.type === "job.succeeded")).toMatchObject({ alreadyDone: true });
    expect(done.reads).toBe(1);
  });

  it(`reads what an earlier run left while it finds and probes the source, and reports a finished job \
though its source is gone`, async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const dataDir = path.join(root, "data");
    const ids = { jobId: "7d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a", videoId: "1a2b3c4d-5e6f-4789-8abc-def012345678" };
    const job = await stageTranscodeJob(dataDir, clip, ids, 2);
    const local = createLocalWorkerStorage(dataDir);
    let sourceLookedUp = false;
    let overlapped: boolean | null = null;
    // The manifest's read holds until the source is looked up (at most 2 s): a run that read it
    // first, and looked the source up only after, waits the 2 s and is caught.
    const storage: WorkerStorage = {
      ...local,
      inputFor: (key) => {
        sourceLookedUp = true;
        return local.inputFor(key);
      },
      readText: async (key) => {
        if (!key.endsWith(`/${ENCODE_MANIFEST}`)) return local.readText(key);
        for (const started = Date.now(); !sourceLookedUp && Date.now() - started < 2000; )
          await new Promise((r) => setTimeout(r, 10));
        overlapped ??= sourceLookedUp;
        return local.readText(key);
      },
    };
    const run = async () => {
      const events: JobEventBody[] = [];
      await transcode(job, {
        storage,
        signal: new AbortController().signal,
        workDir: await mkdtemp(path.join(root, "work-")),
        progressIntervalMs: 100,
        emit: async (e) => void events.push(e),
      });
      return events;
    };
    expect((await run()).some((e) => e.type === "job.succeeded")).toBe(true);
    expect(overlapped).toBe(true);
    // The source deleted after the job finished (a retention rule): a redelivery still finds it done.
    await rm(path.join(dataDir, job.sourceKey));
    const again = await run();
    expect(again.find((e) => e.type === "job.succeeded")).toMatchObject({ alreadyDone: true });
    expect(again.some((e) => e.type === "job.failed")).toBe(false);
  });
});
