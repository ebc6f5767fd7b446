/**
 * Upper bounds (ms) of the startup-time histogram every hourly rollup keeps; the last bucket is
 * open-ended. Fixed, so rollups of any hours add up bucket by bucket and percentiles come from them.
 * Changing it needs a migration of the stored histograms.
 */
const STARTUP_BUCKETS_MS: readonly number[] = [
  ...Array.from({ length: 20 }, (_, i) => (i + 1) * 100),
  ...Array.from({ length: 12 }, (_, i) => 2000 + (i + 1) * 250),
  6000,
  7000,
  8000,
  9000,
  10_000,
  15_000,
  30_000,
  60_000,
];

/** Buckets, the open-ended one included. */
export const STARTUP_BUCKET_COUNT = STARTUP_BUCKETS_MS.length + 1;

export function startupBucket(ms: number): number {
  const i = STARTUP_BUCKETS_MS.findIndex((upper) => ms < upper);
  return i === -1 ? STARTUP_BUCKETS_MS.length : i;
}

/** A histogram with one count in `ms`'s bucket; all zeros for null. */
export function startupHistogramOf(ms: number | null): number[] {
  const counts = new Array<number>(STARTUP_BUCKET_COUNT).fill(0);
  if (ms !== null) counts[startupBucket(ms)] = 1;
  return counts;
}

/**
 * The `q` quantile (0..1) of a histogram, interpolated linearly inside its bucket; null when empty.
 * The open-ended bucket answers its lower bound.
 */
export function histogramQuantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0;
    if (n > 0 && seen + n >= rank) {
      const lower = i === 0 ? 0 : STARTUP_BUCKETS_MS[i - 1]!;
      const upper = STARTUP_BUCKETS_MS[i];
      if (upper === undefined) return lower;
      return lower + ((rank - seen) / n) * (upper - lower);
    }
    seen += n;
  }
  return STARTUP_BUCKETS_MS.at(-1)!;
}
