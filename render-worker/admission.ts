import { readFileSync } from "node:fs";
import os from "node:os";
import type { ProbeResult } from "../src/protocol/media-facts.ts";

const MiB = 1024 * 1024;

/**
 * The memory this worker may use: the cgroup's limit (v2 `memory.max`, else v1), else the
 * machine's RAM. On Cloud Run and in containers the cgroup is what the kernel enforces.
 */
export function memoryLimitBytes(configured?: number): number {
  if (configured) return configured;
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const text = readFileSync(file, "utf8").trim();
      const bytes = Number(text);
      // v1 reports "no limit" as a huge number; v2 as "max".
      if (Number.isFinite(bytes) && bytes > 0 && bytes < os.totalmem()) return bytes;
    } catch {
      // not this cgroup version
    }
  }
  return os.totalmem();
}

/**
 * Peak memory of a ladder encode (ffmpeg plus the job's share of the worker) from the source's
 * size. Fitted to `npm run bench` peaks on FFmpeg 5.1 (720p 370 MiB, 1080p 611 MiB,
 * 2160p 1880 MiB: about 180 MiB + 205 MiB per megapixel), with a quarter on top.
 */
export function estimateJobMemoryBytes(probe: Pick<ProbeResult, "width" | "height">): number {
  // An audio-only source (no frame) needs the fixed part alone.
  const megapixels = ((probe.width ?? 0) * (probe.height ?? 0)) / 1e6;
  return Math.ceil((180 + 205 * megapixels) * 1.25 * MiB);
}

/** Thrown when a job fits this worker but not now: the worker hands it back for later or for another worker. */
export class NotAdmittedError extends Error {
  constructor(neededBytes: number, freeBytes: number) {
    super(`Not enough memory now: needs ${Math.round(neededBytes / MiB)} MiB, ${Math.round(freeBytes / MiB)} MiB free`);
    this.name = "NotAdmittedError";
  }
}

/** Thrown when a job can never fit this worker: retrying it here cannot help. */
export class TooLargeForWorkerError extends Error {
  readonly retryable = false;
  constructor(neededBytes: number, limitBytes: number) {
    super(
      `The video needs about ${Math.round(neededBytes / MiB)} MiB to encode; workers ` +
        `have ${Math.round(limitBytes / MiB)} MiB. ` +
        "Give workers more memory or lower the source's resolution.",
    );
    this.name = "TooLargeForWorkerError";
  }
}

/** Memory reserved by the jobs a worker runs; a job starts only if its estimate fits. */
export class MemoryBudget {
  readonly #usable: number;
  #reserved = 0;

  /** `workerOverhead` is what the worker process itself keeps (Node, transport clients). */
  constructor(limitBytes: number, workerOverhead = 150 * MiB) {
    this.#usable = Math.max(0, limitBytes - workerOverhead);
  }

  /** Reserves `bytes`; returns the release. Throws when the job does not fit now or ever. */
  reserve(bytes: number): () => void {
    if (bytes > this.#usable) throw new TooLargeForWorkerError(bytes, this.#usable);
    if (this.#reserved + bytes > this.#usable) throw new NotAdmittedError(bytes, this.#usable - this.#reserved);
    this.#reserved += bytes;
    let released = false;
    return () => {
      if (!released) this.#reserved -= bytes;
      released = true;
    };
  }

  get reservedBytes(): number {
    return this.#reserved;
  }
}
