import { describe, expect, it } from "vitest";
import { planLadder, videoRateControl } from "../render-worker/media/ladder.ts";
import {
  actualJobCost,
  type CostSettings,
  DEFAULT_COST_SETTINGS,
  estimateRemuxCost,
  estimateTranscodeCost,
} from "../src/costs/cost-model.ts";
import { AUDIO_BITRATE } from "../src/protocol/ladder-profiles.ts";

// Only the figure a test looks at costs anything: one CPU second per megapixel-minute of a video
// rung, and one USD per GB stored for a month.
const settings: CostSettings = {
  ...DEFAULT_COST_SETTINGS,
  prices: { vcpuSecondUsd: 0, gibSecondUsd: 0, l4GpuSecondUsd: 0, storageGbMonthUsd: 1, egressGbUsd: 0 },
  cpu: { x264PerMegapixelMinute: 1, decodePerMegapixelMinute: 0, jobOverheadCpuSeconds: 0 },
};

describe("a transcode's estimate before its source is probed counts the ladder planned for a 1080p source", () => {
  const source = {
    duration: 60,
    width: 1920,
    height: 1080,
    fps: 30,
    rotation: 0,
    hasAudio: true,
    videoCodec: "h264",
    audioCodec: "aac",
  };
  const videoRungs = planLadder(source).filter((r) => r.kind === "VIDEO");
  // A minute of source at the bitrate assumed of an upload.
  const uploadBytes = (60 * settings.assumedSourceBitrate) / 8;
  const estimate = estimateTranscodeCost(settings, { source: null, uploadBytes, rungs: null, queue: "cpu" })!;

  it("encodes the pixels of every video rung planLadder plans", () => {
    expect(videoRungs.map((r) => r.name)).toContain("1080p");
    const megapixels = videoRungs.reduce((sum, r) => sum + (r.width! * r.height!) / 1e6, 0);
    expect(estimate.cpuSeconds).toBeCloseTo(megapixels, 3);
  });

  it("stores every rung at its target bitrate, the audio rung's included", () => {
    const bitrate = videoRungs.reduce((sum, r) => sum + videoRateControl(r).bitrate, 0) + AUDIO_BITRATE;
    expect(estimate.usd).toBeCloseTo((bitrate * 60) / 8 / 1e9, 9);
  });
});

describe("a READY rung is stored at what its segments hold, not at its bound", () => {
  // A minute of 720p with its audio: the bounds, and what the segments were measured to hold.
  const source = { seconds: 60, width: 1280, height: 720, fps: 30 };
  const rungs = [
    { name: "720p", kind: "VIDEO" as const, width: 1280, height: 720, bandwidth: 4_000_000 },
    { name: "audio", kind: "AUDIO" as const, width: null, height: null, bandwidth: 180_000 },
  ];
  const measured = [
    { ...rungs[0]!, averageBitRate: 2_000_000 },
    { ...rungs[1]!, averageBitRate: 130_000 },
  ];
  const stored = (bitsPerSecond: number) => (bitsPerSecond * 60) / 8 / 1e9;
  const actual = (ladder: typeof rungs) =>
    actualJobCost(settings, {
      cpuSeconds: 0,
      wallSeconds: 0,
      queue: "cpu",
      ladder: { source, rungs: ladder, estimated: [] },
    });

  it("a transcode's actual cost: each rung's measured average, its bound before", () => {
    expect(actual(rungs).usd).toBeCloseTo(stored(4_180_000), 12);
    const measuredCost = actual(measured);
    expect(measuredCost.usd).toBeCloseTo(stored(2_130_000), 12);
    expect(measuredCost.rungs!.map((r) => r.actualUsd)).toEqual([
      expect.closeTo(stored(2_000_000), 12),
      expect.closeTo(stored(130_000), 12),
    ]);
  });

  it("static renditions of READY rungs: their measured averages", () => {
    expect(estimateRemuxCost(settings, { seconds: 60, rungs: measured, queue: "cpu" }).usd).toBeCloseTo(
      stored(2_130_000),
      12,
    );
  });
});
