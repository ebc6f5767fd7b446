import { execFile } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { mkdir } from "node:fs/promises";
import { probeSource } from "../../render-worker/media/probe.ts";
import { MAX_STORYBOARD_TILES, makeStoryboardSheets, planStoryboard } from "../../render-worker/media/storyboard.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEventBody } from "../../src/protocol/messages.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { fixturesDir, jobDirsPerTest, makeClip, runFfmpeg, stageTranscodeJob } from "../support/media-fixtures.ts";

const run = promisify(execFile);
const JOB_ID = "5b0e6f0e-2c1d-4d55-9a43-6a1f5f1b2c77";
const VIDEO_ID = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f";
const dirs = jobDirsPerTest("storyboard");

async function transcodeClip(clip: string): Promise<JobEventBody[]> {
  const job = await stageTranscodeJob(dirs.dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
  const events: JobEventBody[] = [];
  await transcode(job, {
    storage: createLocalWorkerStorage(dirs.dataDir),
    emit: contractCheckedEmit(JOB_ID, events),
    signal: new AbortController().signal,
    workDir: dirs.workDir,
    progressIntervalMs: 200,
  });
  return events;
}

const succeededOf = (events: JobEventBody[]) =>
  events.find((e) => e.type === "job.succeeded") as Extract<JobEventBody, { type: "job.succeeded" }>;

describe("storyboard", () => {
  it("keeps the tile count bounded whatever the duration, on round intervals", () => {
    for (const duration of [0.2, 1, 59.9, 200, 201, 3600, 3 * 3600, 24 * 3600, 1000 * 3600]) {
      const plan = planStoryboard({ duration, width: 1920, height: 1080 });
      expect(plan.tileCount, `${duration}`).toBeLessThanOrEqual(MAX_STORYBOARD_TILES);
      expect(plan.tileCount * plan.intervalSeconds, `${duration}`).toBeGreaterThanOrEqual(duration);
      expect((plan.tileCount - 1) * plan.intervalSeconds, `${duration}`).toBeLessThan(duration);
      expect(plan.sheetCount * plan.columns * plan.rows).toBeGreaterThanOrEqual(plan.tileCount);
      expect(plan.sheetCount).toBeLessThanOrEqual(2);
    }
    expect(planStoryboard({ duration: 0.2, width: 640, height: 360 })).toMatchObject({ tileCount: 1, columns: 1 });
    expect(planStoryboard({ duration: 3600, width: 640, height: 360 }).intervalSeconds).toBe(20);
    // Portrait: the long side gets the tile's 160 px.
    expect(planStoryboard({ duration: 5, width: 360, height: 640 })).toMatchObject({ tileWidth: 90, tileHeight: 160 });
  });

  it("makes the sheets of a portrait video in the worker, beside the encode", async () => {
    const clip = await makeClip({ width: 180, height: 320, seconds: 3, audio: false });
    const events = await transcodeClip(clip);
    const types = events.map((e) => e.type);
    expect(types.indexOf("video.playable")).toBeLessThan(types.indexOf("job.succeeded"));
    const { storyboard } = succeededOf(events);
    expect(storyboard).toMatchObject({ intervalSeconds: 1, tileCount: 3, tileWidth: 90, tileHeight: 160, columns: 3 });
    const sheet = path.join(dirs.dataDir, storyboard!.sheetKeys[0]!);
    const { stdout } = await run("ffprobe", [
      "-v",
      "error",
      "-show_entries",
      "stream=width,height",
      "-of",
      "json",
      sheet,
    ]);
    expect(JSON.parse(stdout).streams[0]).toEqual({ width: 270, height: 160 });
    const vtt = await readFile(path.join(dirs.dataDir, storyboard!.vttKey), "utf8");
    expect(vtt).toBe(
      "WEBVTT\n\n" +
        "00:00:00.000 --> 00:00:01.000\nsheet-0.jpg#xywh=0,0,90,160\n\n" +
        "00:00:01.000 --> 00:00:02.000\nsheet-0.jpg#xywh=90,0,90,160\n\n" +
        "00:00:02.000 --> 00:00:03.000\nsheet-0.jpg#xywh=180,0,90,160\n",
    );
    // The encode's manifest remembers it, so a finished job delivered again reports it too.
    const manifest = JSON.parse(await readFile(path.join(dirs.dataDir, `videos/${VIDEO_ID}/hls/encode.json`), "utf8"));
    expect(manifest.complete.storyboard).toEqual(storyboard);
    const again = await transcodeClip(clip);
    expect(succeededOf(again)).toMatchObject({ alreadyDone: true, storyboard });
  });

  it("decoding only the keyframes (a live recording's) gives the same tiles when a keyframe starts every interval, other ones when not", async () => {
    // 12 s at 25 fps, tiles every 2 s: keyframes every 2 s fall on every tile's time, every 3 s they do not.
    const sheetsOf = async (keyframeSeconds: number, keyframesOnly: boolean) => {
      const dir = path.join(fixturesDir(), `storyboard-keyframes-${keyframeSeconds}-${keyframesOnly}`);
      await mkdir(dir, { recursive: true });
      const source = path.join(dir, "source.mp4");
      const gop = String(25 * keyframeSeconds);
      await runFfmpeg([
        ...["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=12"],
        ...[
          "-c:v",
          "libx264",
          "-preset",
          "ultrafast",
          "-g",
          gop,
          "-keyint_min",
          gop,
          "-sc_threshold",
          "0",
          "-y",
          source,
        ],
      ]);
      const { input, probe } = await probeSource(source);
      const plan = { ...planStoryboard({ duration: 12, width: 320, height: 180 }), intervalSeconds: 2, tileCount: 6 };
      const [sheet] = await makeStoryboardSheets({
        input,
        probe,
        plan: { ...plan, columns: 6, rows: 1, sheetCount: 1 },
        outDir: dir,
        keyframesOnly,
      });
      return readFile(sheet!);
    };
    expect((await sheetsOf(2, true)).equals(await sheetsOf(2, false))).toBe(true);
    expect((await sheetsOf(3, true)).equals(await sheetsOf(3, false))).toBe(false);
  });

  it("a storyboard that cannot be made leaves the video without one, not failed", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    // A file where the storyboard's work dir goes: making the sheets fails.
    await writeFile(path.join(dirs.workDir, "storyboard"), "in the way");
    const events = await transcodeClip(clip);
    const succeeded = succeededOf(events);
    expect(succeeded.storyboard).toBeNull();
    expect(succeeded.posterKey).toBe(`videos/${VIDEO_ID}/thumbnails/poster.jpg`);
    expect(events.filter((e) => e.type === "variant.ready").length).toBeGreaterThan(0);
    await expect(stat(path.join(dirs.dataDir, `videos/${VIDEO_ID}/storyboard/storyboard.vtt`))).rejects.toThrow();
  });
});
