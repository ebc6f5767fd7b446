import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import {
  encodeManifestText,
  planResume,
  readEarlierEncode,
  type EncodeManifest,
} from "../../render-worker/media/resume.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { hlsLayout } from "../../src/protocol/storage-layout.ts";
import { greyFrames, sourceFrameShown } from "../support/frames.ts";
import { fixturesDir, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";

const run = promisify(execFile);
const JOB_ID = "7d7a3c52-58a4-4c1e-9a43-0f8f5f1b2c77";
const VIDEO_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c77";
const FPS = 25;

describe("a clip's transcode encodes only the trim, frame-accurately (real ffmpeg)", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(fixturesDir(), "clip-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("a trimmed run stopped after some segments resumes the same range; the ladder lasts the range", async () => {
    const source = await makeClip({ width: 320, height: 180, seconds: 12, audio: true });
    const dataDir = path.join(root, "data");
    const staged = await stageTranscodeJob(dataDir, source, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
    // Frame 53 (2.12 s) is the first at or after 2.1 s; the clip ends before 10.3 s: frames 53..257.
    const job = { ...staged, options: { ...staged.options, trim: { start: 2.1, end: 10.3 } } };
    const storage = createLocalWorkerStorage(dataDir);
    const hlsDir = path.join(dataDir, job.outputPrefix, "hls");

    const first = new AbortController();
    const stopped = await transcode(job, {
      storage,
      signal: first.signal,
      workDir: await mkdtemp(path.join(root, "work-")),
      progressIntervalMs: 100,
      emit: async (e) => {
        if (e.type === "job.progress" && e.variants.length > 0 && e.variants.every((v) => v.segmentCount >= 2))
          first.abort(new Error("worker killed"));
      },
    }).catch((err: unknown) => err);
    expect(stopped).toMatchObject({ name: "AbortError" });
    const manifest = JSON.parse(await readFile(path.join(hlsDir, "encode.json"), "utf8")) as EncodeManifest;
    // From the first frame at or after the start: 2.12 s.
    expect(manifest.trim).toEqual({ start: 2.12, end: 10.3 });
    const kept = (await stat(path.join(hlsDir, "180p", "seg_00001.ts"))).mtimeMs;

    // Another range never resumes this one's segments.
    const hls = hlsLayout(job.outputPrefix);
    const otherRange = await planResume({
      storage,
      hls,
      earlier: await readEarlierEncode(storage, hls),
      manifest: { ...manifest, trim: { start: 3, end: 10.3 } },
      rungs: manifest.ladder,
      duration: 7.3,
      fps: FPS,
    });
    expect(otherRange.resume).toBeNull();
    expect(encodeManifestText({ ...manifest, trim: { start: 3, end: 10.3 } })).not.toBe(encodeManifestText(manifest));

    const events: JobEventBody[] = [];
    await transcode(
      { ...job, attempt: 2 },
      {
        storage,
        signal: new AbortController().signal,
        workDir: await mkdtemp(path.join(root, "work-")),
        progressIntervalMs: 100,
        emit: async (e) => {
          events.push(e);
        },
      },
    );
    const probed = events.find((e) => e.type === "job.probed") as Extract<JobEventBody, { type: "job.probed" }>;
    expect(probed.probe.duration).toBeCloseTo(8.2, 5);
    expect(probed.resumed!.segments).toBeGreaterThanOrEqual(2);
    expect((await stat(path.join(hlsDir, "180p", "seg_00001.ts"))).mtimeMs).toBe(kept);
    expect(events.at(-1)).toMatchObject({ type: "job.succeeded" });

    const playlist = path.join(hlsDir, "180p", "index.m3u8");
    const durations = [...(await readFile(playlist, "utf8")).matchAll(/^#EXTINF:([\d.]+)/gm)].map((m) => Number(m[1]));
    expect(Math.abs(durations.reduce((a, b) => a + b, 0) - 8.2)).toBeLessThanOrEqual(1 / FPS + 0.001);
    const frames = await greyFrames(playlist, 100_000);
    expect(frames.length).toBe(205);
    // Frames 53, 54… 257 of the source, none repeated.
    expect(await sourceFrameShown(frames[0]!, source, 53)).toBe(53);
    expect(await sourceFrameShown(frames[1]!, source, 54)).toBe(54);
    expect(await sourceFrameShown(frames.at(-1)!, source, 257)).toBe(257);
    // The last kept run's segment and the resumed run's first join without a repeated or lost frame.
    const { stderr } = await run("ffmpeg", ["-v", "error", "-i", playlist, "-f", "null", "-"]);
    expect(stderr).toBe("");
  });

  it("a range that starts after the source's end fails the job without a retry", async () => {
    const source = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const dataDir = path.join(root, "data");
    const staged = await stageTranscodeJob(dataDir, source, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
    const job = { ...staged, options: { ...staged.options, trim: { start: 5, end: 8 } } };
    const failed = await transcode(job, {
      storage: createLocalWorkerStorage(dataDir),
      signal: new AbortController().signal,
      workDir: await mkdtemp(path.join(root, "work-")),
      progressIntervalMs: 100,
      emit: async () => {},
    }).catch((err: unknown) => err);
    expect(failed).toMatchObject({ retryable: false, message: expect.stringMatching(/outside the source/) });
  });
});
