import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import type { EncodeManifest } from "../../render-worker/media/resume.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import { ENCODE_MANIFEST } from "../../src/protocol/storage-layout.ts";
import { fixturesDir, makeClip, runFfmpeg, stageTranscodeJob } from "../support/media-fixtures.ts";

const run = promisify(execFile);
const JOB_ID = "5b0e8f3c-4a1d-4c55-9d0e-2f7b8a6c1d10";
const VIDEO_ID = "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f";

describe("a resumed run applies the loudness and watermark of the run before it (real ffmpeg)", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(fixturesDir(), "media-filters-resume-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("reuses the measurement kept in encode.json, keeps the published segments and reaches the target", async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 12, audio: true });
    const dataDir = path.join(root, "data");
    const staged = await stageTranscodeJob(dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
    const imageKey = "tenants/t/assets/logo.png";
    await mkdir(path.join(dataDir, "tenants/t/assets"), { recursive: true });
    await runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      "color=white:size=32x32",
      "-frames:v",
      "1",
      "-y",
      path.join(dataDir, imageKey),
    ]);
    const job = {
      ...staged,
      options: {
        ...staged.options,
        loudness: { integratedLufs: -20, truePeakDb: -1.5, lra: 11 },
        watermark: {
          key: imageKey,
          format: "png" as const,
          position: "BOTTOM_LEFT" as const,
          widthFraction: 0.1,
          margin: { value: 2, unit: "PERCENT" as const },
          opacity: 0.9,
        },
      },
    };
    const storage = createLocalWorkerStorage(dataDir);
    const hlsDir = path.join(dataDir, job.outputPrefix, "hls");
    const context = async (events: JobEventBody[], signal: AbortSignal, onEvent?: (e: JobEventBody) => void) => ({
      storage,
      signal,
      workDir: await mkdtemp(path.join(root, "work-")),
      progressIntervalMs: 100,
      emit: async (e: JobEventBody) => {
        events.push(e);
        onEvent?.(e);
      },
    });

    const first = new AbortController();
    const firstEvents: JobEventBody[] = [];
    const stopped = await transcode(
      job,
      await context(firstEvents, first.signal, (e) => {
        if (e.type === "job.progress" && e.variants.length > 0 && e.variants.every((v) => v.segmentCount >= 3))
          first.abort(new Error("worker killed"));
      }),
    ).catch((err: unknown) => err);
    expect(stopped).toMatchObject({ name: "AbortError" });
    expect(firstEvents.some((e) => e.type === "step.progress" && e.description === "Measuring loudness")).toBe(true);
    const manifestFile = path.join(hlsDir, ENCODE_MANIFEST);
    const written = JSON.parse(await readFile(manifestFile, "utf8")) as EncodeManifest;
    expect(written.finishing?.loudness?.measured?.integratedLufs).toEqual(expect.any(Number));
    expect(written.finishing?.watermark).toEqual(job.options.watermark);

    const events: JobEventBody[] = [];
    await transcode({ ...job, attempt: 2 }, await context(events, new AbortController().signal));
    const probed = events.find((e) => e.type === "job.probed") as Extract<JobEventBody, { type: "job.probed" }>;
    expect(probed.resumed?.segments).toBeGreaterThanOrEqual(3);
    // No second measuring pass: the earlier run's measurement, so the same gain on both sides of the resume.
    expect(events.some((e) => e.type === "step.progress")).toBe(false);
    const finished = JSON.parse(await readFile(manifestFile, "utf8")) as EncodeManifest;
    expect(finished.finishing).toEqual(written.finishing);

    // The whole audio rung (kept segments and the resumed run's) is at the target.
    const { stderr } = await run("ffmpeg", [
      ...["-hide_banner", "-nostats", "-i", path.join(hlsDir, "audio", "index.m3u8")],
      ...["-af", "ebur128", "-f", "null", "-"],
    ]);
    const integrated = Number(/I:\s+(-?[\d.]+) LUFS/.exec(stderr.slice(stderr.lastIndexOf("Summary:")))![1]);
    expect(Math.abs(integrated - -20)).toBeLessThanOrEqual(1);
  });
});
