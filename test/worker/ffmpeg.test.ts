import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeLadder } from "../../render-worker/media/encode-ladder.ts";
import { MediaError, redactUrls } from "../../render-worker/media/errors.ts";
import { extractPoster } from "../../render-worker/media/poster.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { probeSource } from "../../render-worker/media/probe.ts";
import { fixturesDir, makeClip } from "./media-fixtures.ts";

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
    expect(failure.command).toMatch(/^ffmpeg .*-filter_complex .*audio\/index\.m3u8$/);
    expect(failure.exitCode).toEqual(expect.any(Number));
    expect(failure.exitCode).not.toBe(0);
    expect(failure.stderrTail).toMatch(/0:a:0/);
    expect(failure.stderrTail).not.toMatch(/^frame=/m);
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
    expect(threaded).toMatch(/-map \[v0\] .*-threads 2 .*180p\/index\.m3u8 -map \[v1\] .*-threads 1 .*144p/);
    expect(await commandOf()).not.toMatch(/-threads/);
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
