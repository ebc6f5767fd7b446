import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeLadder } from "../../render-worker/media/encode-ladder.ts";
import { ladderScaleGraph } from "../../render-worker/media/rung-encoding.ts";
import { MediaError, redactUrls } from "../../render-worker/media/errors.ts";
import { runFfmpeg } from "../../render-worker/media/ffmpeg-process.ts";
import { extractPoster } from "../../render-worker/media/poster.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { probeSource } from "../../render-worker/media/probe.ts";
import { frameIndices } from "../support/frames.ts";
import { fixturesDir, makeClip, makeFrameCounterClip, makeMpegTsCopy } from "../support/media-fixtures.ts";
import { recordingFfmpeg } from "../support/recording-ffmpeg.ts";

const run = promisify(execFile);

let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(path.join(fixturesDir(), "work-"));
});
afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe("encodeLadder", () => {
  it("fails with the command line, exit code and stderr tail of ffmpeg", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const { input, probe } = await probeSource(clip);
    // A ladder planned for audio the source does not have: ffmpeg refuses the `0:a:0` map.
    const ladder = planLadder({ ...probe, hasAudio: true, audioCodec: "aac" });
    const encode = encodeLadder({
      input,
      probe,
      ladder,
      workDir,
      segmentSeconds: 2,
      signal: new AbortController().signal,
    });
    const error = await encode.done.then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(MediaError);
    const failure = error as MediaError;
    expect(failure.command).toMatch(
      /^ffmpeg .*-filter_complex .*-segment_list audio\/index\.m3u8 .*audio\/seg_%05d\.ts$/,
    );
    expect(failure.exitCode).toEqual(expect.any(Number));
    expect(failure.exitCode).not.toBe(0);
    expect(failure.stderrTail).toMatch(/0:a:0/);
    expect(failure.stderrTail).not.toMatch(/^frame=/m);
    // -benchmark's figures (read for the metrics) are not diagnostics.
    expect(failure.stderrTail).not.toMatch(/bench:/);
    expect(failure.message).toMatch(/^ffmpeg exited with code \d+: Stream map '0:a:0' matches no streams/);
    expect(failure.retryable).toBe(true);
  });

  it("gives each x264 rung the threads x264Threads asks for, and none when it is unset", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const { input, probe } = await probeSource(clip);
    // The audio map fails at once, so the command line is known without encoding.
    const ladder = planLadder({ ...probe, hasAudio: true, audioCodec: "aac" });
    const commandOf = async (x264Threads?: (rung: { height: number | null }) => number) => {
      const encode = encodeLadder({
        input,
        probe,
        ladder,
        workDir,
        segmentSeconds: 2,
        signal: new AbortController().signal,
        x264Threads,
      });
      return ((await encode.done.catch((err: unknown) => err)) as MediaError).command;
    };
    const threaded = await commandOf((rung) => ((rung.height ?? 0) >= 180 ? 2 : 1));
    expect(threaded).toMatch(/-map \[v0\] .*-threads 2 .*180p\/seg_%05d\.ts -map \[v1\] .*-threads 1 .*144p/);
    expect(await commandOf()).not.toMatch(/-threads/);
  });

  it("cuts every rung, video and audio, after a short first segment and then at full length", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 7, audio: true });
    const { input, probe } = await probeSource(clip);
    const ladder = planLadder(probe); // 180p, 144p, audio
    await encodeLadder({ input, probe, ladder, workDir, segmentSeconds: 2, signal: new AbortController().signal }).done;
    expect(ladder.map((r) => r.name)).toEqual(["180p", "144p", "audio"]);
    for (const rung of ladder) {
      const parser = new Parser();
      parser.push(await readFile(path.join(workDir, rung.name, "index.m3u8"), "utf8"));
      parser.end();
      const segments = parser.manifest.segments as { uri: string; duration: number }[];
      expect(segments.map((s) => s.uri)).toEqual(["seg_00000.ts", "seg_00001.ts", "seg_00002.ts", "seg_00003.ts"]);
      // What the files hold, not only what the list says: where each segment's timestamps start.
      const files = await Promise.all(segments.map((s) => segmentTimes(path.join(workDir, rung.name, s.uri))));
      const lengths = files.slice(0, -1).map((f, i) => files[i + 1]!.start - f.start);
      // Video is cut on its forced keyframes, to the frame; audio on the first AAC frame (21.3 ms) past a
      // cut moved one frame earlier (the encoder's priming), so it may be off by up to two frames.
      const tolerance = rung.kind === "VIDEO" ? 0.001 : 0.045;
      const planned = [1, 2, 2, 2];
      for (const [i, length] of lengths.entries()) {
        expect(Math.abs(length - planned[i]!), `${rung.name} segment ${i}: ${length}`).toBeLessThan(tolerance);
      }
      for (const [i, s] of segments.entries()) {
        expect(Math.abs(s.duration - planned[i]!), `${rung.name} EXTINF ${i}: ${s.duration}`).toBeLessThan(tolerance);
      }
      if (rung.kind === "VIDEO") for (const f of files) expect(f.startsOnKeyframe, rung.name).toBe(true);
    }
  });

  it("scales the rungs down to half the top one from the source and the smaller ones from that intermediate", () => {
    const video = planLadder({
      duration: 10,
      width: 1920,
      height: 1080,
      fps: 30,
      rotation: 0,
      hasAudio: false,
      videoCodec: "h264",
      audioCodec: null,
    }).filter((r) => r.kind === "VIDEO");
    const step = (w: number, h: number) => `scale=${w}:${h}:flags=bicubic,format=yuv420p,setsar=1`;
    expect(ladderScaleGraph(video).split(";")).toEqual([
      "[0:V:0]split=3[s0][s1][s2]",
      `[s0]${step(1920, 1080)}[v0]`,
      `[s1]${step(1280, 720)}[v1]`,
      `[s2]${step(960, 540)},split=5[v2][m3][m4][m5][m6]`,
      `[m3]${step(854, 480)}[v3]`,
      `[m4]${step(640, 360)}[v4]`,
      `[m5]${step(426, 240)}[v5]`,
      `[m6]${step(256, 144)}[v6]`,
    ]);
    expect(ladderScaleGraph(video.slice(0, 1))).toBe(`[0:V:0]${step(1920, 1080)}[v0]`);
    // The graph before the single-scale ladder change of 2026-11-22, which the benchmark still runs as its anchor.
    expect(ladderScaleGraph(video.slice(0, 3), "cascade")).toBe(
      "[0:V:0]scale=1920:1080:flags=bicubic,setsar=1,format=yuv420p,split=2[v0][c0];" +
        "[c0]scale=1280:720:flags=bicubic,setsar=1,split=2[v1][c1];[c1]scale=960:540:flags=bicubic,setsar=1[v2]",
    );
  });

  it("puts each rung's libx264 settings on its own output of the command", async () => {
    const clip = await makeClip({ width: 1280, height: 720, seconds: 1, audio: false });
    const { input, probe } = await probeSource(clip);
    // The audio map fails at once, so the command line is known without encoding.
    const encode = encodeLadder({
      input,
      probe,
      ladder: planLadder({ ...probe, hasAudio: true, audioCodec: "aac" }),
      workDir,
      segmentSeconds: 2,
      signal: new AbortController().signal,
    });
    const { command } = (await encode.done.catch((err: unknown) => err)) as MediaError;
    const outputs = (command ?? "").split(/(?=-map )/).slice(1);
    expect(outputs.map((o) => /-preset (\S+)(?: -x264-params (\S+))?.* (\S+)\/index\.m3u8/.exec(o)?.slice(1))).toEqual([
      ["veryfast", undefined, "720p"],
      ["veryfast", undefined, "540p"],
      ["veryfast", undefined, "480p"],
      ["veryfast", "subme=1:b-adapt=0", "360p"],
      ["veryfast", undefined, "240p"],
      ["veryfast", undefined, "144p"],
      undefined,
    ]);
  });

  it("encodes a ladder with the worker's settings into rungs that play at their sizes", async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 2, audio: true });
    const { input, probe } = await probeSource(clip);
    const ladder = planLadder(probe);
    await encodeLadder({ input, probe, ladder, workDir, segmentSeconds: 1, signal: new AbortController().signal }).done;
    for (const rung of ladder) {
      const { stdout } = await run(
        "ffprobe",
        [
          "-v",
          "error",
          "-count_frames",
          "-show_entries",
          "stream=codec_name,width,height,nb_read_frames",
          "-of",
          "csv=p=0",
          path.join(workDir, rung.name, "index.m3u8"),
        ],
        { cwd: workDir },
      );
      // The HLS demuxer lists the stream once more under its program.
      const stream = stdout.split("\n")[0];
      if (rung.kind === "AUDIO") expect(stream, rung.name).toMatch(/^aac,/);
      // 2 s at 25 fps, every frame kept.
      else expect(stream, rung.name).toBe(`h264,${rung.width},${rung.height},50`);
    }
  });

  it("rejects at once with an AbortError when the signal has already fired", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const { input, probe } = await probeSource(clip);
    const controller = new AbortController();
    controller.abort(new Error("canceled by the user"));
    const encode = encodeLadder({
      input,
      probe,
      ladder: planLadder(probe),
      workDir,
      segmentSeconds: 2,
      signal: controller.signal,
    });
    await expect(encode.done).rejects.toMatchObject({ name: "AbortError" });
  });
});

/** A segment file's first timestamp and whether its first packet is a keyframe (ffprobe). */
async function segmentTimes(file: string): Promise<{ start: number; startsOnKeyframe: boolean }> {
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-show_entries",
    "format=start_time",
    "-of",
    "csv=p=0",
    file,
  ]);
  const start = Number(stdout.trim());
  const packets = await run("ffprobe", [
    "-v",
    "error",
    "-select_streams",
    "0",
    "-read_intervals",
    "%+#1",
    "-show_entries",
    "packet=flags",
    "-of",
    "csv=p=0",
    file,
  ]);
  return { start, startsOnKeyframe: packets.stdout.trim().startsWith("K") };
}

describe("runFfmpeg", () => {
  // fluent-ffmpeg's own check (`ffmpeg -formats` and `-encoders` before a process's first command)
  // is skipped: these come from ffmpeg itself, in the one ffmpeg run.
  it.each([
    [
      ["-f", "no_such_format"],
      /^ffmpeg exited with code 1: Requested output format 'no_such_format' is not a suitable/,
    ],
    [["-c:v", "no_such_encoder", "-f", "null"], /^ffmpeg exited with code 1: .*Unknown encoder 'no_such_encoder'/],
  ])("refuses an output ffmpeg lacks with ffmpeg's own reason: %j", async (options, reason) => {
    const run = runFfmpeg({
      inputs: [{ source: "testsrc2=size=64x64:duration=0.2", options: ["-f", "lavfi"] }],
      outputs: [{ target: "out.bin", options }],
      cwd: workDir,
    });
    const error = await run.then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(MediaError);
    expect((error as MediaError).message).toMatch(reason);
    expect((error as MediaError).command).toMatch(/^ffmpeg .*-i testsrc2=size=64x64:duration=0\.2 .*out\.bin$/);
  });

  it("a process's first command starts ffmpeg once: nothing is asked of ffmpeg before it", async () => {
    const recorder = await recordingFfmpeg(workDir);
    // A process of its own: fluent-ffmpeg keeps what it asked ffmpeg per process, and FFMPEG_PATH is
    // read at import.
    const script = `
      import { runFfmpeg } from ${JSON.stringify(path.resolve("render-worker/media/ffmpeg-process.ts"))};
      await runFfmpeg({
        inputs: [{ source: "testsrc2=size=64x64:duration=0.2", options: ["-f", "lavfi"] }],
        outputs: [{ target: "out.mp4", options: ["-c:v", "libx264", "-preset", "ultrafast"] }],
        cwd: process.argv[1],
      });`;
    await run(process.execPath, ["--input-type=module", "-e", script, workDir], {
      env: { ...process.env, FFMPEG_PATH: recorder.path },
    });
    const recorded = await recorder.calls();
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatch(/-i testsrc2=size=64x64:duration=0\.2 .*out\.mp4$/);
  });
});

describe("extractPoster", () => {
  it("writes a JPEG at most 720 px high with even dimensions", async () => {
    const clip = await makeClip({ width: 320, height: 900, seconds: 2, audio: false });
    const { input, probe } = await probeSource(clip);
    const outFile = path.join(workDir, "poster.jpg");
    await extractPoster({ input, probe, outFile });
    const { stdout } = await run("ffprobe", [
      "-v",
      "error",
      "-show_entries",
      "stream=codec_name,width,height",
      "-of",
      "csv=p=0",
      outFile,
    ]);
    expect(stdout.trim()).toBe("mjpeg,256,720");
  });

  it("shows the frame at 1 s of an MPEG-TS source whose one keyframe is its first (a seek there decodes nothing)", async () => {
    const clip = await makeMpegTsCopy(await makeFrameCounterClip(4, 25, { width: 320, height: 180 }));
    const outFile = path.join(workDir, "poster.jpg");
    await extractPoster({ ...(await probeSource(clip)), outFile });
    expect(await frameIndices(outFile)).toEqual([25]);
  });

  it("keeps a small source's size", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const outFile = path.join(workDir, "poster.jpg");
    await extractPoster({ ...(await probeSource(clip)), outFile });
    const { stdout } = await run("ffprobe", [
      "-v",
      "error",
      "-show_entries",
      "stream=width,height",
      "-of",
      "csv=p=0",
      outFile,
    ]);
    expect(stdout.trim()).toBe("320,180");
  });
});

describe("redactUrls", () => {
  it("drops the query string of signed URLs from command lines, keeping the rest", () => {
    const line =
      "ffmpeg -i https://storage.googleapis.com/b/videos/x/source/upload?X-Goog-Signature=abc&X-Goog-Expires=60 -f " +
      "hls 720p/index.m3u8";
    expect(redactUrls(line)).toBe(
      "ffmpeg -i https://storage.googleapis.com/b/videos/x/source/upload?… -f hls 720p/index.m3u8",
    );
    expect(redactUrls("ffprobe /tmp/a.mp4")).toBe("ffprobe /tmp/a.mp4");
  });
});
