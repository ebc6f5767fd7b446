import type { CostEstimateBasis } from "../generated/prisma/enums.ts";
import { AUDIO_BITRATE, VIDEO_PROFILES } from "../protocol/ladder-profiles.ts";
import { variantBitRate } from "./variant-bit-rate.ts";

/**
 * CPU seconds per minute of source, per megapixel at 30 fps, from `npm run bench -- --cases=1080p`; the run,
 * its machine and the arithmetic: docs/operations.md, "Cost".
 */
export const DEFAULT_CPU_TABLE = {
  /** libx264 encoding, per megapixel of a video rung per source minute: (36.7 − 5.8) × 3 / 4.29. */
  x264PerMegapixelMinute: 21.6,
  /** Decode, scale and AAC, per megapixel of source per source minute: 5.8 × 3 / 2.07. */
  decodePerMegapixelMinute: 8.4,
  /** Every transcode, whatever its length: start-up, probe, poster, uploads (measured as in docs/operations.md). */
  jobOverheadCpuSeconds: 0.6,
} as const;

/** Wall seconds every transcode takes beyond its CPU work (same runs: 2.8–4.0 s wall, under load). */
const JOB_OVERHEAD_WALL_SECONDS = 2;

/**
 * Google's public list prices in USD, as published on cloud.google.com/run/pricing and
 * cloud.google.com/storage/pricing (read 2025; Cloud Run Tier 1 regions, CPU allocated only during
 * requests; an NVIDIA L4 without zonal redundancy; Standard storage in a region such as
 * us-central1). Estimates: check the live pages and override them with the COST_* settings.
 */
export const DEFAULT_PRICES = {
  vcpuSecondUsd: 0.000024,
  gibSecondUsd: 0.0000025,
  l4GpuSecondUsd: 0.0001867,
  storageGbMonthUsd: 0.02,
  /** Internet egress of a GB served to viewers (Cloud Storage, premium tier, the first TiB a month). */
  egressGbUsd: 0.12,
} as const;

/** What costs are computed with: prices, the CPU table, and the assumptions about workers and sources. */
export interface CostSettings {
  prices: {
    vcpuSecondUsd: number;
    gibSecondUsd: number;
    l4GpuSecondUsd: number;
    storageGbMonthUsd: number;
    egressGbUsd: number;
  };
  cpu: { x264PerMegapixelMinute: number; decodePerMegapixelMinute: number; jobOverheadCpuSeconds: number };
  /** vCPUs of a worker running one job: estimated wall seconds = estimated CPU seconds / this. */
  workerVcpus: number;
  /** Memory billed for a job while it runs, in GiB. */
  jobMemoryGib: number;
  /** Bits per second assumed of a source not probed yet, to guess its duration from its size. */
  assumedSourceBitrate: number;
  /** How many times real time an NVENC ladder encodes (no GPU here to measure it: an assumption). */
  nvencRealtimeSpeed: number;
}

/** The settings when none are configured: the tables above and the COST_* defaults of src/config.ts. */
export const DEFAULT_COST_SETTINGS: CostSettings = {
  prices: DEFAULT_PRICES,
  cpu: DEFAULT_CPU_TABLE,
  workerVcpus: 2,
  jobMemoryGib: 2,
  assumedSourceBitrate: 8_000_000,
  nvencRealtimeSpeed: 8,
};

/** The audio rung's share of a job, for splitting its cost between rungs: nominal CPU seconds per source minute. */
const AUDIO_RUNG_CPU_PER_MINUTE = 0.5;
/** A source not probed yet is taken for 1080p at 30 fps, encoded to the ladder planned for that. */
const UNPROBED_SOURCE = { width: 1920, height: 1080, fps: 30 } as const;
/** The video rungs planned for that source: every profile up to its short side. */
const UNPROBED_VIDEO_RUNGS = VIDEO_PROFILES.filter((p) => p.shortSide <= UNPROBED_SOURCE.height);
/** Those rungs total this many times the source's pixels: each keeps its aspect ratio, at its short side. */
const UNPROBED_LADDER_PIXEL_RATIO = UNPROBED_VIDEO_RUNGS.reduce(
  (sum, p) => sum + (p.shortSide / UNPROBED_SOURCE.height) ** 2,
  0,
);
/** Target bits per second of that ladder, its audio rung included. */
const UNPROBED_LADDER_BITRATE = UNPROBED_VIDEO_RUNGS.reduce((sum, p) => sum + p.bitrate, AUDIO_BITRATE);
const GB = 1e9;

/** A rung as the cost model needs it. */
export interface CostRung {
  name: string;
  kind: "VIDEO" | "AUDIO";
  width: number | null;
  height: number | null;
  /** The ladder's bound on its peak bits per second (`Variant.bandwidth`). */
  bandwidth: number;
  /** What its segments hold per second, once it is READY (`Variant.averageBitRate`). */
  averageBitRate?: number | null;
  /**
   * False where the job left none of the rung's files (it failed there, or a later job of the video
   * encoded it again): the rung's part of an actual cost is then its share of the compute alone.
   */
  stored?: boolean;
}

/** The source as far as it is known. */
export interface CostSource {
  seconds: number;
  width: number;
  height: number;
  fps: number;
}

/** One rung's part of a job's cost; the parts of a job sum to its cost. */
export interface RungCost {
  name: string;
  estimatedUsd: number | null;
  actualUsd: number | null;
}

export interface CostEstimate {
  basis: CostEstimateBasis;
  cpuSeconds: number;
  wallSeconds: number;
  usd: number;
  /** Per rung when the ladder is known; empty otherwise. */
  rungs: RungCost[];
}

/** The queue a job runs on decides what its seconds cost: `nvenc` workers carry an L4. */
const onGpu = (queue: string | null) => queue === "nvenc";

const megapixels = (w: number | null, h: number | null) => ((w ?? 0) * (h ?? 0)) / 1e6;

/** How much of the job's compute each rung accounts for: its own encoding work (a nominal share for audio). */
function rungWeights(rungs: readonly CostRung[], source: CostSource, cpu: CostSettings["cpu"]): number[] {
  const minutes = source.seconds / 60;
  return rungs.map((r) =>
    r.kind === "AUDIO"
      ? AUDIO_RUNG_CPU_PER_MINUTE * minutes
      : cpu.x264PerMegapixelMinute * megapixels(r.width, r.height) * minutes * (source.fps / 30),
  );
}

/** USD of compute: CPU seconds used, memory for the wall time, and the GPU for the wall time on nvenc. */
function computeUsd(s: CostSettings, cpuSeconds: number, wallSeconds: number, queue: string | null): number {
  const { prices } = s;
  const gpu = onGpu(queue) ? wallSeconds * prices.l4GpuSecondUsd : 0;
  return cpuSeconds * prices.vcpuSecondUsd + wallSeconds * s.jobMemoryGib * prices.gibSecondUsd + gpu;
}

/** USD of keeping `bytes` for a month. */
const storageUsd = (s: CostSettings, bytes: number) => (bytes / GB) * s.prices.storageGbMonthUsd;
/** What serving `bytes` to viewers costs (COST_EGRESS_GB_USD). */
export const egressUsd = (s: CostSettings, bytes: number) => (bytes / GB) * s.prices.egressGbUsd;

/** Splits `total` between rungs in proportion to `weights` (evenly when they are all 0). */
function split(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => (sum > 0 ? (total * w) / sum : total / weights.length));
}

/**
 * A transcode's estimated cost (docs/operations.md, "Cost"): CPU seconds from the CPU table (on nvenc only the
 * decode), wall seconds from them and `workerVcpus`, priced for `queue`, plus a month of storage of the ladder.
 * Without the source's facts it is taken for a 1080p source of `uploadBytes` at `assumedSourceBitrate`; null
 * when neither facts nor size are known.
 */
export function estimateTranscodeCost(
  s: CostSettings,
  input: { source: CostSource | null; uploadBytes: number | null; rungs: readonly CostRung[] | null; queue: string },
): CostEstimate | null {
  const guessed =
    input.uploadBytes && input.uploadBytes > 0
      ? { ...UNPROBED_SOURCE, seconds: (input.uploadBytes * 8) / s.assumedSourceBitrate }
      : null;
  const source = input.source ?? guessed;
  if (!source) return null;
  const rungs = input.rungs && input.rungs.length > 0 ? input.rungs : null;
  const minutes = source.seconds / 60;
  const frameFactor = source.fps > 0 ? source.fps / 30 : 1;
  const sourceMegapixels = megapixels(source.width, source.height);
  const decodeCpu =
    s.cpu.jobOverheadCpuSeconds + s.cpu.decodePerMegapixelMinute * sourceMegapixels * minutes * frameFactor;
  const weights = rungs ? rungWeights(rungs, source, s.cpu) : [];
  const encodeCpu = rungs
    ? weights.reduce((a, b) => a + b, 0)
    : s.cpu.x264PerMegapixelMinute * sourceMegapixels * UNPROBED_LADDER_PIXEL_RATIO * minutes * frameFactor;
  const gpu = onGpu(input.queue);
  const cpuSeconds = gpu ? decodeCpu : decodeCpu + encodeCpu;
  const wallSeconds =
    JOB_OVERHEAD_WALL_SECONDS +
    (gpu ? Math.max(cpuSeconds / s.workerVcpus, source.seconds / s.nvencRealtimeSpeed) : cpuSeconds / s.workerVcpus);
  const compute = computeUsd(s, cpuSeconds, wallSeconds, input.queue);
  const ladderBitrate = rungs
    ? rungs.reduce((a, r) => a + variantBitRate(r), 0)
    : (UNPROBED_LADDER_BITRATE * sourceMegapixels) / megapixels(UNPROBED_SOURCE.width, UNPROBED_SOURCE.height);
  const usd = compute + storageUsd(s, (ladderBitrate * source.seconds) / 8);
  const parts = rungs ? rungCosts(s, rungs, weights, source.seconds, compute) : [];
  return {
    basis: input.source ? "PROBE" : "UPLOAD_SIZE",
    cpuSeconds,
    wallSeconds,
    usd,
    rungs: parts.map((estimatedUsd, i) => ({ name: rungs![i]!.name, estimatedUsd, actualUsd: null })),
  };
}

/**
 * A remux of published rungs into files (static renditions: stream copy, no encode): a job's
 * overhead in CPU and wall seconds, priced for `queue`, plus a month of storage of the files at
 * the rungs' measured averages (they are READY), else their bounds (`variantBitRate`).
 */
export function estimateRemuxCost(
  s: CostSettings,
  input: { seconds: number; rungs: readonly CostRung[]; queue: string },
): CostEstimate {
  const cpuSeconds = s.cpu.jobOverheadCpuSeconds;
  const wallSeconds = JOB_OVERHEAD_WALL_SECONDS;
  const bytes = (input.rungs.reduce((a, r) => a + variantBitRate(r), 0) * input.seconds) / 8;
  const usd = computeUsd(s, cpuSeconds, wallSeconds, input.queue) + storageUsd(s, bytes);
  return { basis: "PROBE", cpuSeconds, wallSeconds, usd, rungs: [] };
}

/**
 * Each rung's cost: its share of the compute by weight, and a month of storage of its own bytes
 * (none for a rung not `stored`).
 */
function rungCosts(
  s: CostSettings,
  rungs: readonly CostRung[],
  weights: readonly number[],
  seconds: number,
  computeTotal: number,
): number[] {
  if (rungs.length === 0) return [];
  const compute = split(computeTotal, weights);
  return rungs.map((r, i) => compute[i]! + (r.stored === false ? 0 : storageUsd(s, (variantBitRate(r) * seconds) / 8)));
}

/**
 * A job's actual cost from its runs' measured seconds, priced for `queue`, plus a month of storage of what it
 * left (a transcode's rungs at their measured averages, else their bounds; a static renditions job's files),
 * split between rungs as the estimate is, each rung's estimate carried along.
 */
export function actualJobCost(
  s: CostSettings,
  input: {
    cpuSeconds: number;
    wallSeconds: number;
    queue: string | null;
    ladder: { source: CostSource; rungs: readonly CostRung[]; estimated: readonly RungCost[] } | null;
    /** Without a ladder: the bytes of the files the job left (static renditions), stored a month. */
    storedBytes?: number;
  },
): { usd: number; rungs: RungCost[] | null } {
  const compute = computeUsd(s, input.cpuSeconds, input.wallSeconds, input.queue);
  if (!input.ladder || input.ladder.rungs.length === 0)
    return { usd: compute + storageUsd(s, input.storedBytes ?? 0), rungs: null };
  const { source, rungs, estimated } = input.ladder;
  const parts = rungCosts(s, rungs, rungWeights(rungs, source, s.cpu), source.seconds, compute);
  const rungsOut = rungs.map((r, i) => ({
    name: r.name,
    estimatedUsd: estimated.find((e) => e.name === r.name)?.estimatedUsd ?? null,
    actualUsd: parts[i]!,
  }));
  return { usd: parts.reduce((a, b) => a + b, 0), rungs: rungsOut };
}
