import type { Prisma } from "../generated/prisma/client.ts";

/**
 * A video's variants in the ladder's order, whatever order their rows were written in: the video
 * rungs from the tallest down, then the audio; the name settles a tie. The API lists them so, and
 * a job's rung costs follow it.
 */
export const LADDER_ORDER = [
  { kind: "asc" },
  { height: "desc" },
  { bandwidth: "desc" },
  { name: "asc" },
] satisfies Prisma.VariantOrderByWithRelationInput[];

/**
 * The bits a second of a variant's media, for what storing or serving them costs: its measured
 * average once it is READY (`Variant.averageBitRate`), else its `bandwidth` (the ladder's bound on
 * its peak, with its audio's for a video rung: an upper bound).
 */
export const variantBitRate = (v: { averageBitRate?: number | null; bandwidth: number }): number =>
  v.averageBitRate ?? v.bandwidth;

/** `variantBitRate` in SQL, of the `"Variant"` row named `alias` in the statement. */
export const variantBitRateSql = (alias: string): string => `COALESCE(${alias}."averageBitRate", ${alias}.bandwidth)`;
