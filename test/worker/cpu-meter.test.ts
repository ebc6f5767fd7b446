import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { createCpuMeter } from "../../render-worker/cpu-meter.ts";

const run = promisify(execFile);

describe("the worker's CPU meter", () => {
  it("counts the CPU of a real ffmpeg child the run waited for", async () => {
    const meter = createCpuMeter();
    meter.start("run");
    await run("ffmpeg", [
      "-nostdin",
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=640x360:rate=25:duration=3",
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-f",
      "null",
      "-",
    ]);
    const usage = meter.usage("run")!;
    meter.stop("run");
    expect(usage.cpuSeconds).toBeGreaterThan(0.05);
    expect(usage.wallSeconds).toBeGreaterThan(0);
    expect(meter.usage("run")).toBeNull();
  });

  it("shares the CPU used while runs overlap equally, and gives each run alone what it used alone", () => {
    let cpu = 0;
    const meter = createCpuMeter(() => cpu);
    meter.start("a");
    cpu += 4; // a alone
    meter.start("b");
    cpu += 6; // a and b
    expect(meter.usage("a")!.cpuSeconds).toBeCloseTo(7);
    meter.stop("a");
    cpu += 5; // b alone
    expect(meter.usage("b")!.cpuSeconds).toBeCloseTo(8);
    cpu += 2; // b alone, read again
    expect(meter.usage("b")!.cpuSeconds).toBeCloseTo(10);
    meter.stop("b");
    cpu += 100; // nobody running: nobody's
    meter.start("c");
    expect(meter.usage("c")!.cpuSeconds).toBe(0);
  });
});
