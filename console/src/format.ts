export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function formatDate(iso: string): string {
  return new Date(iso).toLocaleString();
}

export function formatPercent(fraction: number): string {
  return `${Math.floor(Math.max(0, Math.min(1, fraction)) * 100)}%`;
}

/**
 * Whole percents of `fractions` (shares of one whole, 0..1) that add up to the whole's rounded percent
 * (100 for shares summing to 1): each is floored, and the points left go to the largest remainders,
 * the earlier first on a tie (largest-remainder rounding). Flooring alone showed 73% + 26%.
 */
export function sharePercents(fractions: readonly number[]): number[] {
  const exact = fractions.map((f) => Math.max(0, Math.min(1, f)) * 100);
  const whole = Math.min(100, Math.round(exact.reduce((a, b) => a + b, 0)));
  const percents = exact.map(Math.floor);
  let left = whole - percents.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((_, i) => i)
    .sort((a, b) => exact[b]! - percents[b]! - (exact[a]! - percents[a]!) || a - b);
  for (const i of byRemainder) {
    if (left <= 0) break;
    percents[i]!++;
    left--;
  }
  return percents;
}

const kbps = (bitsPerSecond: number) => `${Math.round(bitsPerSecond / 1000).toLocaleString("en")} kb/s`;

/**
 * A variant's bit rate for a table: what its segments carry once measured (their average, and
 * their peak), else the ladder's bound on its peak.
 */
export function formatVariantBitRate(v: {
  bandwidth: number;
  averageBitRate: number | null;
  peakBitRate: number | null;
}): string {
  if (v.averageBitRate !== null && v.peakBitRate !== null)
    return `${kbps(v.averageBitRate)} (peak ${kbps(v.peakBitRate)})`;
  return `up to ${kbps(v.bandwidth)}`;
}

const TERMINAL = new Set(["READY", "FAILED", "CANCELED", "DISCARDED"]);
/** READY, FAILED, CANCELED and DISCARDED end a video's events. */
export const isFinished = (status: string): boolean => TERMINAL.has(status);

/** A human label for a status enum. */
export const statusLabel = (status: string): string => status.toLowerCase().replaceAll("_", " ");
