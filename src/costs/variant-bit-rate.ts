/**
 * The bits a second of a variant's media, for what storing or serving them costs: its measured
 * average once it is READY (`Variant.averageBitRate`), else its `bandwidth` (the ladder's bound on
 * its peak, with its audio's for a video rung: an upper bound).
 */
export const variantBitRate = (v: { averageBitRate?: number | null; bandwidth: number }): number =>
  v.averageBitRate ?? v.bandwidth;

/** `variantBitRate` in SQL, of the `"Variant"` row named `alias` in the statement. */
export const variantBitRateSql = (alias: string): string => `COALESCE(${alias}."averageBitRate", ${alias}.bandwidth)`;
