import { describe, expect, it } from "vitest";
import { chooseQueue, type RoutingInput } from "../src/jobs/routing.ts";

const transcode: RoutingInput = {
  kind: "TRANSCODE",
  capability: "cpu",
  leftGpu: null,
  source: { seconds: null, height: null },
  gpuWorkerAlive: true,
  capabilityUnserved: false,
  gpu: { mode: "prefer", fallbackAfterSeconds: 60, minSourceSeconds: 0, minHeight: 0 },
};
const withLimits = (minSourceSeconds: number, minHeight: number) => ({ ...transcode.gpu, minSourceSeconds, minHeight });

describe("chooseQueue: where a job goes and why", () => {
  it("sends a transcode to nvenc while a worker advertising it is alive, else to cpu", () => {
    expect(chooseQueue(transcode)).toEqual({ queue: "nvenc", reason: "GPU_WORKER_ALIVE" });
    expect(chooseQueue({ ...transcode, gpuWorkerAlive: false })).toEqual({ queue: "cpu", reason: "NO_GPU_WORKER" });
  });

  it("keeps everything on cpu when GPU_ROUTING is off", () => {
    expect(chooseQueue({ ...transcode, gpu: { ...transcode.gpu, mode: "off" } })).toEqual({
      queue: "cpu",
      reason: "GPU_ROUTING_OFF",
    });
  });

  it("keeps a transcode on cpu once it gave up waiting for a GPU worker, even with one alive", () => {
    expect(chooseQueue({ ...transcode, leftGpu: "GPU_WAIT_EXPIRED" })).toEqual({
      queue: "cpu",
      reason: "GPU_WAIT_EXPIRED",
    });
  });

  it("keeps a transcode on cpu once an attempt of it failed on the nvenc queue, even with a GPU worker alive", () => {
    expect(chooseQueue({ ...transcode, leftGpu: "GPU_ENCODE_FAILED" })).toEqual({
      queue: "cpu",
      reason: "GPU_ENCODE_FAILED",
    });
  });

  it("applies the minimum duration and height to a probed source, and lets an unprobed one through", () => {
    const gpu = withLimits(60, 1080);
    const short = { ...transcode, gpu, source: { seconds: 30, height: 2160 } };
    const small = { ...transcode, gpu, source: { seconds: 600, height: 720 } };
    const long4k = { ...transcode, gpu, source: { seconds: 600, height: 2160 } };
    expect(chooseQueue(short)).toEqual({ queue: "cpu", reason: "SOURCE_BELOW_GPU_MINIMUM" });
    expect(chooseQueue(small)).toEqual({ queue: "cpu", reason: "SOURCE_BELOW_GPU_MINIMUM" });
    expect(chooseQueue(long4k)).toEqual({ queue: "nvenc", reason: "GPU_WORKER_ALIVE" });
    expect(chooseQueue({ ...transcode, gpu })).toEqual({ queue: "nvenc", reason: "GPU_WORKER_ALIVE" });
  });

  it("keeps a probed audio-only source on cpu: it has no picture for a GPU encoder, whatever the minimums", () => {
    const audio = { seconds: 3600, height: null, audioOnly: true };
    expect(chooseQueue({ ...transcode, source: audio })).toEqual({ queue: "cpu", reason: "SOURCE_BELOW_GPU_MINIMUM" });
    expect(chooseQueue({ ...transcode, gpu: withLimits(0, 0), source: audio })).toEqual({
      queue: "cpu",
      reason: "SOURCE_BELOW_GPU_MINIMUM",
    });
  });

  it("leaves renders and imports on their capability's queue, or local under LOCAL_FALLBACK", () => {
    const manim = { ...transcode, kind: "RENDER_MANIM", capability: "manim" } as const;
    expect(chooseQueue(manim)).toEqual({ queue: "manim", reason: "CAPABILITY" });
    expect(chooseQueue({ ...manim, capabilityUnserved: true })).toEqual({ queue: "local", reason: "LOCAL_FALLBACK" });
    expect(chooseQueue({ ...transcode, kind: "RENDER_COMPOSITION" })).toEqual({ queue: "cpu", reason: "CAPABILITY" });
    expect(chooseQueue({ ...transcode, kind: "IMPORT_URL" })).toEqual({ queue: "cpu", reason: "CAPABILITY" });
  });
});
