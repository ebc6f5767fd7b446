import { chmod, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { MediaError } from "../../render-worker/media/errors.ts";
import { MAX_FRAME_PIXELS, probeSource } from "../../render-worker/media/probe.ts";
import {
  fixturesDir,
  makeClip,
  makeDurationBomb,
  makeFrameSizeBomb,
  makeVfrClip,
  makeY4mHeaderBomb,
  runFfmpeg,
} from "../support/media-fixtures.ts";

type Probe = typeof probeSource;

async function refusal(
  input: string,
  opts: Parameters<Probe>[1] = {},
  probe: Probe = probeSource,
): Promise<Error & { retryable?: boolean }> {
  const error = await probe(input, opts).then(
    () => null,
    (err: unknown) => err,
  );
  expect(error, "probe refused the file").toBeInstanceOf(Error);
  expect((error as MediaError).retryable).toBe(false);
  return error as Error & { retryable?: boolean };
}

describe("the probe refuses hostile media from its headers", () => {
  it("an H.264 frame of 64x64 whose parameter set declares 16000x16000", async () => {
    const bomb = await makeFrameSizeBomb(16000, 16000);
    expect((await stat(bomb)).size).toBeLessThan(20_000);
    const error = await refusal(bomb);
    expect(error.message).toBe("The video's frame size 16000x16000 exceeds the 8192 px limit per side");
  });

  it("an H.264 stream declaring 6400x6400: each side allowed, the area not", async () => {
    const error = await refusal(await makeFrameSizeBomb(6400, 6400));
    expect(error.message).toBe("The video's frame size 6400x6400 (41 megapixels) exceeds the 36 megapixel limit");
  });

  it("an uncompressed y4m whose header declares 16000x16000 frames over 64 KiB of data", async () => {
    const error = await refusal(await makeY4mHeaderBomb(16000, 16000));
    expect(error.message).toMatch(/frame size 16000x16000 exceeds the 8192 px limit/);
  });

  it("a container declaring absurd pixel aspect ratios", async () => {
    const clip = await makeClip({ width: 64, height: 64, seconds: 1, audio: false });
    const wide = path.join(fixturesDir(), "wide-pixels.mkv");
    const narrow = path.join(fixturesDir(), "narrow-pixels.mkv");
    await runFfmpeg(["-i", clip, "-c", "copy", "-aspect", "255:1", wide]);
    await runFfmpeg(["-i", clip, "-c", "copy", "-aspect", "1:255", narrow]);
    expect((await refusal(wide)).message).toMatch(/frame size 16320x64 exceeds the 8192 px limit/);
    expect((await refusal(narrow)).message).toMatch(/frame size 0x64 is too small/);
  });

  it("an mp4 and an mkv whose headers declare ten years", async () => {
    const tenYears = 10 * 365 * 24 * 3600;
    for (const container of ["mp4", "mkv"] as const) {
      const bomb = await makeDurationBomb(container, tenYears);
      expect((await stat(bomb)).size).toBeLessThan(50_000);
      expect((await refusal(bomb)).message).toBe("The video is 87600 h long; the limit is 6 h");
    }
  });

  it("a real clip longer than the job's limit", async () => {
    const clip = await makeClip({ width: 64, height: 64, seconds: 3, audio: false });
    expect((await refusal(clip, { maxDurationSeconds: 2 })).message).toBe("The video is 3 s long; the limit is 2 s");
    await expect(probeSource(clip, { maxDurationSeconds: 3.5 })).resolves.toMatchObject({ probe: { width: 64 } });
  });

  it("1000 frames per second", async () => {
    const clip = await makeClip({ width: 64, height: 64, seconds: 0.3, audio: false, fps: 1000 });
    expect((await refusal(clip)).message).toBe("The video's frame rate of 1000 fps is above the 240 fps limit");
  });

  it("frames smaller than 16 px a side", async () => {
    const clip = await makeClip({ width: 8, height: 8, seconds: 1, audio: false });
    expect((await refusal(clip)).message).toBe(
      "The video's frame size 8x8 is too small: each side must be at least 16 px",
    );
  });
});

describe("the probe accepts unusual but sound media", () => {
  it("a single frame", async () => {
    const { probe } = await probeSource(
      await makeClip({ width: 320, height: 180, seconds: 1, frames: 1, audio: false }),
    );
    expect(probe).toMatchObject({ width: 320, height: 180, fps: 25 });
    expect(probe.duration).toBeCloseTo(0.04, 3);
  });

  it("16x16, the smallest frame allowed", async () => {
    expect(
      (await probeSource(await makeClip({ width: 16, height: 16, seconds: 1, audio: false }))).probe,
    ).toMatchObject({ width: 16, height: 16 });
  });

  it("odd dimensions", async () => {
    expect(
      (await probeSource(await makeClip({ width: 641, height: 359, seconds: 1, audio: false }))).probe,
    ).toMatchObject({ width: 641, height: 359 });
  });

  it("a variable frame rate, reported as its average", async () => {
    const { probe } = await probeSource(await makeVfrClip({ width: 160, height: 90, seconds: 4 }));
    // 60 frames a second half the time, 10 the other half: 35 on average.
    expect(probe.fps).toBeGreaterThan(30);
    expect(probe.fps).toBeLessThan(40);
    expect(probe.duration).toBeGreaterThan(3.8);
  });
});

describe("with ffprobe run with -max_pixels, as the worker should", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  /** probeSource from a fresh module graph whose ffprobe refuses frames over the limit before decoding them. */
  async function probeWithMaxPixels(): Promise<Probe> {
    const wrapper = path.join(fixturesDir(), "ffprobe-max-pixels");
    await writeFile(wrapper, `#!/bin/sh\nexec ffprobe -max_pixels ${MAX_FRAME_PIXELS} "$@"\n`);
    await chmod(wrapper, 0o755);
    vi.stubEnv("FFPROBE_PATH", wrapper);
    vi.resetModules();
    return (await import("../../render-worker/media/probe.ts")).probeSource;
  }

  it("gives the same readable reason when ffprobe itself stops at the frame size", async () => {
    const probe = await probeWithMaxPixels();
    const huge = await refusal(await makeFrameSizeBomb(16000, 16000), {}, probe);
    expect(huge.message).toBe("The video's frame size 16000x16000 exceeds the 8192 px limit per side");
    const large = await refusal(await makeFrameSizeBomb(6400, 6400), {}, probe);
    expect(large.message).toBe("The video's frame size 6400x6400 (41 megapixels) exceeds the 36 megapixel limit");
  });

  it("still reads normal sources", async () => {
    const probe = await probeWithMaxPixels();
    expect((await probe(await makeClip({ width: 640, height: 360, seconds: 1, audio: true }))).probe).toMatchObject({
      width: 640,
      height: 360,
      hasAudio: true,
    });
  });
});
