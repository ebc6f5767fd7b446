import { describe, expect, it } from "vitest";
import { createNvencFailureCounter } from "../../render-worker/media/nvenc.ts";

const encoderFailure = { retryable: true, command: "ffmpeg -i in -c:v h264_nvenc out" };

describe("createNvencFailureCounter", () => {
  it("says to stop after the limit of h264_nvenc failures in a row; a success starts the count again", () => {
    const counter = createNvencFailureCounter(3);
    expect(counter.count(encoderFailure)).toBe(false);
    expect(counter.count(encoderFailure)).toBe(false);
    expect(counter.count(null)).toBe(false);
    expect(counter.failuresInARow).toBe(0);
    expect(counter.count(encoderFailure)).toBe(false);
    expect(counter.count(encoderFailure)).toBe(false);
    expect(counter.count(encoderFailure)).toBe(true);
    expect(counter.failuresInARow).toBe(3);
  });

  it("does not count failures that say nothing about the GPU", () => {
    const counter = createNvencFailureCounter(1);
    expect(counter.count({ ...encoderFailure, retryable: false })).toBe(false);
    expect(counter.count({ retryable: true, command: "ffmpeg -i in -c:v libx264 out" })).toBe(false);
    expect(counter.count({ retryable: true })).toBe(false);
    expect(counter.failuresInARow).toBe(0);
    expect(counter.count(encoderFailure)).toBe(true);
  });
});
