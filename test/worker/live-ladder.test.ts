import { describe, expect, it } from "vitest";
import { planLiveLadder } from "../../render-worker/media/live-ladder.ts";

describe("a live broadcast's ladder", () => {
  it("is the three highest of 2160p to 360p the input allows, and the audio", () => {
    const names = (width: number, height: number, hasAudio = true) =>
      planLiveLadder({ width, height, fps: 30, hasAudio }, 2).map((r) => r.name);
    expect(names(1280, 720)).toEqual(["720p", "480p", "360p", "audio"]);
    expect(names(1920, 1080)).toEqual(["1080p", "720p", "480p", "audio"]);
    expect(names(3840, 2160, false)).toEqual(["2160p", "1440p", "1080p"]);
    // Below 360p the input keeps its own rung, never above it.
    expect(names(320, 240)).toEqual(["240p", "audio"]);
    expect(names(720, 1280)).toEqual(["720p", "480p", "360p", "audio"]);
  });
});
