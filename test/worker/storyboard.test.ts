import { execFile } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { mkdir } from "node:fs/promises";
import { encodeLadder } from "../../render-worker/media/encode-ladder.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { extractPoster } from "../../render-worker/media/poster.ts";
import { type ProbedSource, probeSource } from "../../render-worker/media/probe.ts";
import { trimProbedSource } from "../../render-worker/media/trim.ts";
import { MAX_STORYBOARD_TILES, makeStoryboardSheets, planStoryboard } from "../../render-worker/media/storyboard.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { recordingFfmpeg } from "../support/recording-ffmpeg.ts";
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

  /** Runs `job` in a process of its own (FFMPEG_PATH is read at import) whose ffmpeg records each start. */
  async function transcodeRecorded(job: TranscodeJobMessage) {
    const recorder = await recordingFfmpeg(dirs.root);
    const script = `
      import { transcode } from ${JSON.stringify(path.resolve("render-worker/handlers/transcode.ts"))};
      import { createLocalWorkerStorage } from ${JSON.stringify(path.resolve("render-worker/storage/local.ts"))};
      const [job, dataDir, workDir] = [JSON.parse(process.argv[1]), process.argv[2], process.argv[3]];
      const events = [];
      const storage = createLocalWorkerStorage(dataDir);
      const signal = new AbortController().signal;
      await transcode(job, { storage, emit: async (e) => void events.push(e), signal, workDir, progressIntervalMs: 200 });
      process.stdout.write(JSON.stringify(events.find((e) => e.type === "job.succeeded")));`;
    const { stdout } = await run(
      process.execPath,
      ["--input-type=module", "-e", script, JSON.stringify(job), dirs.dataDir, dirs.workDir],
      { env: { ...process.env, FFMPEG_PATH: recorder.path } },
    );
    const succeeded = JSON.parse(stdout) as Extract<JobEventBody, { type: "job.succeeded" }>;
    return { succeeded, calls: await recorder.calls() };
  }

  /** Whether the published poster is byte for byte what a run of its own makes of the probed clip. */
  async function posterAsApart({ input, probe }: ProbedSource, posterKey: string): Promise<boolean> {
    const apart = path.join(dirs.root, "poster-apart.jpg");
    await extractPoster({ input, probe, outFile: apart });
    return (await readFile(path.join(dirs.dataDir, posterKey))).equals(await readFile(apart));
  }

  it("a whole run makes the sheets and the poster in its ladder's decode: no ffmpeg run of their own, the bytes a run of their own writes", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const job = await stageTranscodeJob(dirs.dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
    const { succeeded, calls } = await transcodeRecorded(job);
    const { storyboard, posterKey } = succeeded;
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatch(/-f (segment|hls) /); // the ladder's run
    expect(calls[0]).toContain("tile=");
    expect(calls[0]).toContain("[poster]");
    const probed = await probeSource(clip);
    expect(await posterAsApart(probed, posterKey!)).toBe(true);
    const { input, probe } = probed;
    const apart = path.join(dirs.root, "apart");
    await mkdir(apart);
    const plan = planStoryboard({ duration: probe.duration, width: probe.width!, height: probe.height! });
    const [sheet] = await makeStoryboardSheets({ input, probe, plan, outDir: apart });
    const published = await readFile(path.join(dirs.dataDir, storyboard!.sheetKeys[0]!));
    expect(published.equals(await readFile(sheet!))).toBe(true);
  });

  it("a split run makes the poster in its first chunk's run (the storyboard apart: it needs the whole source)", async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
    const staged = await stageTranscodeJob(dirs.dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
    const job = { ...staged, options: { ...staged.options, chunking: { chunkSeconds: 4, firstChunkSeconds: 2 } } };
    const { succeeded, calls } = await transcodeRecorded(job);
    expect(succeeded.firstChunk).toBeDefined(); // it was split
    const posters = calls.filter((args) => args.includes("-update 1"));
    expect(posters).toHaveLength(1);
    expect(posters[0]).toContain("[poster]");
    expect(posters[0]).toMatch(/-f (segment|hls) .*-c:v libx264/); // the first chunk's video run
    expect(calls.filter((args) => args.includes("tile="))).toHaveLength(1); // the storyboard's own run
    expect(await posterAsApart(await probeSource(clip), succeeded.posterKey!)).toBe(true);
  });

  it("an encode that makes the storyboard never reports a time past the source's end (its last sheet lasts a whole grid)", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const { input, probe } = await probeSource(clip);
    const outDir = path.join(dirs.root, "sheets");
    await mkdir(outDir);
    // Two tiles in a grid of ten: ffmpeg's time reaches 10 s when the sheet is written.
    const plan = { ...planStoryboard({ duration: 2, width: 320, height: 180 }), columns: 10, rows: 1 };
    const encode = encodeLadder({
      input,
      probe,
      ladder: planLadder(probe).filter((r) => r.name === "144p"),
      workDir: dirs.workDir,
      segmentSeconds: 2,
      signal: new AbortController().signal,
      storyboard: { plan, outDir },
    });
    await encode.done;
    expect(encode.status()!.outTimeSeconds).toBeLessThanOrEqual(probe.duration);
    expect((await stat(path.join(outDir, "sheet-0.jpg"))).size).toBeGreaterThan(0);
  });

  it("a clip's sheets start at the clip's start, not the source's", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 4, audio: false });
    const whole = await probeSource(clip);
    const trimmed = trimProbedSource(whole, { start: 2, end: 4 });
    const sheetOf = async (name: string, { input, probe }: ReturnType<typeof trimProbedSource>, tileCount: number) => {
      const outDir = path.join(dirs.root, name);
      await mkdir(outDir);
      // A tile a second, all of them on one sheet of one row.
      const plan = {
        ...planStoryboard({ duration: 4, width: 320, height: 180 }),
        intervalSeconds: 1,
        tileCount,
        columns: tileCount,
        rows: 1,
        sheetCount: 1,
      };
      const [sheet] = await makeStoryboardSheets({ input, probe, outDir, plan });
      return sheet!;
    };
    const fromTwo = await sheetOf("clip", trimmed, 2); // the frames at 2 s and 3 s
    const all = await sheetOf("whole", whole, 4); // at 0, 1, 2 and 3 s
    // PSNR of the clip's two tiles against the whole source's at 2 s and 3 s, then at 0 s and 1 s.
    const psnr = async (x: number) => {
      const graph = `[1:v]crop=320:90:${x}:0[w];[0:v][w]psnr`;
      const { stderr } = await run("ffmpeg", [
        "-hide_banner",
        "-i",
        fromTwo,
        "-i",
        all,
        "-filter_complex",
        graph,
        "-f",
        "null",
        "-",
      ]);
      return Number(/average:([\d.]+|inf)/.exec(stderr)![1]!.replace("inf", "100"));
    };
    expect(await psnr(320)).toBeGreaterThan(35);
    expect(await psnr(0)).toBeLessThan(25);
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
