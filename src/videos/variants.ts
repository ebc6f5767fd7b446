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
