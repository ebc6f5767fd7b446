import { GraphQLError } from "graphql";
import type { AppServices } from "../context.ts";
import type { Job } from "../generated/prisma/client.ts";
import { egressUsd } from "./cost-model.ts";

/** Sums over jobs: a video's (`Video.cost`) or a tenant's in a period (`costSummary`). */
export interface CostTotals {
  jobCount: number;
  estimatedUsd: number;
  actualUsd: number;
  cpuSeconds: number;
  wallSeconds: number;
}

/** A live stream's part of a costSummary: its broadcasts' encodes and their viewers' egress. */
export interface LiveStreamCost {
  liveStreamId: string;
  title: string;
  broadcasts: number;
  cpuSeconds: number;
  actualUsd: number;
  egressBytes: number;
  egressUsd: number;
}

export type CostSummary = CostTotals & {
  tenantId: string;
  from: Date;
  to: Date;
  /** The viewers' estimated egress by video, read once and only when a field asks for it. */
  egress: () => Promise<Map<string, number>>;
};

/** Longest period one costSummary sums. */
export const MAX_PERIOD_DAYS = 366;

type CostColumns = Pick<Job, "estimatedCostUsd" | "actualCostUsd" | "cpuSeconds" | "wallSeconds">;

/** A video's jobs' costs, summed (a job without an estimate or a cost yet counts 0). */
export function jobCostTotals(jobs: readonly CostColumns[]): CostTotals {
  const add = (key: keyof CostColumns) => jobs.reduce((a, j) => a + (j[key] ?? 0), 0);
  return {
    jobCount: jobs.length,
    estimatedUsd: add("estimatedCostUsd"),
    actualUsd: add("actualCostUsd"),
    cpuSeconds: add("cpuSeconds"),
    wallSeconds: add("wallSeconds"),
  };
}

/** The bytes of a summary's egress, every video's summed. */
export const totalEgressBytes = (egress: Map<string, number>) => [...egress.values()].reduce((a, b) => a + b, 0);

/**
 * The tenant's jobs that finished at or after `from` and before `to` (at most `MAX_PERIOD_DAYS`),
 * summed; its viewers' egress is read when first asked for.
 */
export async function costSummary(
  services: Pick<AppServices, "db" | "analytics">,
  tenantId: string,
  { from, to }: { from: Date; to: Date },
): Promise<CostSummary> {
  const days = (to.getTime() - from.getTime()) / 86_400_000;
  if (!(days > 0) || days > MAX_PERIOD_DAYS) {
    throw new GraphQLError(`\`to\` must be after \`from\`, by at most ${MAX_PERIOD_DAYS} days`, {
      extensions: { code: "BAD_USER_INPUT" },
    });
  }
  const { _count, _sum } = await services.db.job.aggregate({
    where: { finishedAt: { gte: from, lt: to }, video: { tenantId } },
    _count: { _all: true },
    _sum: { estimatedCostUsd: true, actualCostUsd: true, cpuSeconds: true, wallSeconds: true },
  });
  let egress: Promise<Map<string, number>> | null = null;
  return {
    tenantId,
    from,
    to,
    egress: () => {
      egress ??= services.analytics.viewerEgressBytes(tenantId, from, to);
      return egress;
    },
    jobCount: _count._all,
    estimatedUsd: _sum.estimatedCostUsd ?? 0,
    actualUsd: _sum.actualCostUsd ?? 0,
    cpuSeconds: _sum.cpuSeconds ?? 0,
    wallSeconds: _sum.wallSeconds ?? 0,
  };
}

/** The tenant's live streams with broadcasts whose encode finished in the period, or whose viewers fetched anything in it. */
export async function liveStreamCosts(
  services: Pick<AppServices, "db" | "costs">,
  summary: CostSummary,
): Promise<LiveStreamCost[]> {
  const { tenantId, from, to } = summary;
  const egress = await summary.egress();
  const { db } = services;
  const encodes = await db.job.findMany({
    where: { kind: "LIVE", finishedAt: { gte: from, lt: to }, video: { tenantId } },
    select: { cpuSeconds: true, actualCostUsd: true, video: { select: { liveStreamId: true } } },
  });
  const watched =
    egress.size === 0
      ? []
      : await db.video.findMany({
          where: { id: { in: [...egress.keys()] }, tenantId, liveStreamId: { not: null } },
          select: { id: true, liveStreamId: true },
        });
  const byStream = new Map<string, Omit<LiveStreamCost, "liveStreamId" | "title" | "egressUsd">>();
  const of = (id: string) => {
    const entry = byStream.get(id) ?? { broadcasts: 0, cpuSeconds: 0, actualUsd: 0, egressBytes: 0 };
    byStream.set(id, entry);
    return entry;
  };
  for (const job of encodes) {
    if (!job.video.liveStreamId) continue;
    const entry = of(job.video.liveStreamId);
    entry.broadcasts++;
    entry.cpuSeconds += job.cpuSeconds ?? 0;
    entry.actualUsd += job.actualCostUsd ?? 0;
  }
  for (const video of watched) of(video.liveStreamId!).egressBytes += egress.get(video.id) ?? 0;
  if (byStream.size === 0) return [];
  const streams = await db.liveStream.findMany({
    where: { id: { in: [...byStream.keys()] }, tenantId },
    select: { id: true, title: true },
    orderBy: { createdAt: "asc" },
  });
  return streams.map((s) => {
    const entry = byStream.get(s.id)!;
    return { liveStreamId: s.id, title: s.title, ...entry, egressUsd: egressUsd(services.costs, entry.egressBytes) };
  });
}
