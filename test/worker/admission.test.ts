import os from "node:os";
import { describe, expect, it } from "vitest";
import {
  estimateJobMemoryBytes,
  memoryLimitBytes,
  MemoryBudget,
  NotAdmittedError,
  TooLargeForWorkerError,
} from "../../render-worker/admission.ts";

const MiB = 1024 * 1024;

describe("memory admission", () => {
  it("estimates within the measured peaks (plus the margin) and grows with resolution", () => {
    const peaks = [
      { width: 1280, height: 720, peakMiB: 370 },
      { width: 1920, height: 1080, peakMiB: 611 },
      { width: 3840, height: 2160, peakMiB: 1880 },
    ];
    for (const p of peaks) {
      const estimate = estimateJobMemoryBytes(p) / MiB;
      expect(estimate).toBeGreaterThanOrEqual(p.peakMiB);
      expect(estimate).toBeLessThan(p.peakMiB * 1.5);
    }
  });

  it("admits what fits, hands back what fits later, refuses what never fits", () => {
    const budget = new MemoryBudget(1000 * MiB, 100 * MiB);
    const releaseA = budget.reserve(500 * MiB);
    expect(() => budget.reserve(500 * MiB)).toThrow(NotAdmittedError);
    const releaseB = budget.reserve(400 * MiB);
    expect(budget.reservedBytes).toBe(900 * MiB);
    expect(() => budget.reserve(901 * MiB)).toThrow(TooLargeForWorkerError);
    releaseA();
    releaseA();
    expect(budget.reservedBytes).toBe(400 * MiB);
    expect(() => budget.reserve(500 * MiB)).not.toThrow();
    releaseB();
  });

  it("reads the limit from the cgroup or the machine, unless configured", () => {
    expect(memoryLimitBytes(123 * MiB)).toBe(123 * MiB);
    const limit = memoryLimitBytes();
    expect(limit).toBeGreaterThan(0);
    expect(limit).toBeLessThanOrEqual(os.totalmem());
  });
});
