import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { egressUsd, type RungCost } from "../costs/cost-model.ts";
import {
  type CostSummary,
  type CostTotals,
  costSummary,
  jobCostTotals,
  type LiveStreamCost,
  liveStreamCosts,
  MAX_PERIOD_DAYS,
  totalEgressBytes,
} from "../costs/cost-summary.ts";
import type { Job } from "../generated/prisma/client.ts";
import { CostEstimateBasis } from "../generated/prisma/enums.ts";

const CostEstimateBasisEnum = builder.enumType(CostEstimateBasis, {
  name: "CostEstimateBasis",
  values: {
    PROBE: { description: "The source's probe (and its ladder, once planned)." },
    UPLOAD_SIZE: {
      description:
        "The source was not probed yet: taken for 1080p with a duration guessed from the upload's size " +
        "(COST_ASSUMED_SOURCE_BITRATE). Rough.",
    },
  },
});

const RungCostRef = builder.objectRef<RungCost>("RungCost").implement({
  description: "One rung's part of a transcode's cost; the rungs' parts sum to the job's.",
  fields: (t) => ({
    name: t.exposeString("name"),
    estimatedUsd: t.float({ nullable: true, resolve: (r) => r.estimatedUsd }),
    actualUsd: t.float({ nullable: true, resolve: (r) => r.actualUsd }),
  }),
});

type JobCostFields = Pick<
  Job,
  | "estimatedCostUsd"
  | "estimatedCpuSeconds"
  | "estimatedWallSeconds"
  | "estimateBasis"
  | "cpuSeconds"
  | "wallSeconds"
  | "actualCostUsd"
  | "rungCosts"
>;

const JobCostRef = builder.objectRef<JobCostFields>("JobCost").implement({
  description:
    "An estimate of what a job costs on Cloud Run at the configured prices (docs/operations.md#queue-position-and-cost), " +
    "not a bill.",
  fields: (t) => ({
    estimatedUsd: t.float({
      nullable: true,
      description: "Estimated at enqueue, refined when the worker probed the source; null for kinds not modelled.",
      resolve: (c) => c.estimatedCostUsd,
    }),
    estimateBasis: t.field({ type: CostEstimateBasisEnum, nullable: true, resolve: (c) => c.estimateBasis }),
    estimatedCpuSeconds: t.float({ nullable: true, resolve: (c) => c.estimatedCpuSeconds }),
    estimatedWallSeconds: t.float({ nullable: true, resolve: (c) => c.estimatedWallSeconds }),
    actualUsd: t.float({
      nullable: true,
      description: "The measured seconds of every run of every attempt, priced; null until a run reported them.",
      resolve: (c) => c.actualCostUsd,
    }),
    cpuSeconds: t.float({
      nullable: true,
      description: "CPU seconds the worker and its processes (ffmpeg, manim) used, every run summed.",
      resolve: (c) => c.cpuSeconds,
    }),
    wallSeconds: t.float({ nullable: true, resolve: (c) => c.wallSeconds }),
    rungs: t.field({
      type: [RungCostRef],
      description: "Per rung, for a transcode whose ladder is known; empty otherwise.",
      resolve: (c) => (Array.isArray(c.rungCosts) ? (c.rungCosts as unknown as RungCost[]) : []),
    }),
  }),
});

const COST_SELECT = {
  estimatedCostUsd: true,
  estimatedCpuSeconds: true,
  estimatedWallSeconds: true,
  estimateBasis: true,
  cpuSeconds: true,
  wallSeconds: true,
  actualCostUsd: true,
  rungCosts: true,
} as const;

builder.prismaObjectFields("Job", (t) => ({
  cost: t.field({
    type: JobCostRef,
    nullable: true,
    description: "What the job is estimated to cost and what it cost (scope jobs:admin).",
    authScopes: { scope: "jobs:admin" },
    select: COST_SELECT,
    resolve: (job) => job,
  }),
}));

const VideoCostRef = builder.objectRef<CostTotals>("VideoCost").implement({
  description: "The sum over a video's jobs (a render, its transcode, retried rungs).",
  fields: (t) => ({
    jobCount: t.exposeInt("jobCount"),
    estimatedUsd: t.exposeFloat("estimatedUsd", { description: "Sum of the jobs' estimates (0 for those without)." }),
    actualUsd: t.exposeFloat("actualUsd", { description: "Sum of the jobs' actual costs so far." }),
    cpuSeconds: t.exposeFloat("cpuSeconds"),
    wallSeconds: t.exposeFloat("wallSeconds"),
  }),
});

const LiveStreamCostRef = builder.objectRef<LiveStreamCost>("LiveStreamCost").implement({
  description:
    "One live stream's broadcasts in a costSummary's period: their encodes (jobs that finished in it) and the egress of their viewers in it, live and of the recordings.",
  fields: (t) => ({
    liveStreamId: t.exposeID("liveStreamId"),
    title: t.exposeString("title"),
    broadcasts: t.exposeInt("broadcasts", { description: "Broadcasts whose encode finished in the period." }),
    cpuSeconds: t.exposeFloat("cpuSeconds"),
    actualUsd: t.exposeFloat("actualUsd", { description: "Their encodes' measured cost." }),
    egressBytes: t.exposeFloat("egressBytes", {
      description: "Estimated bytes their viewers fetched (CostSummary.egressBytes).",
    }),
    egressUsd: t.exposeFloat("egressUsd", { description: "egressBytes at COST_EGRESS_GB_USD." }),
  }),
});

const CostSummaryRef = builder.objectRef<CostSummary>("CostSummary").implement({
  description:
    "The caller's tenant's jobs that finished in [from, to), summed, and its viewers' egress in the hours that began in it.",
  fields: (t) => ({
    from: t.field({ type: "DateTime", resolve: (s) => s.from }),
    to: t.field({ type: "DateTime", resolve: (s) => s.to }),
    jobCount: t.exposeInt("jobCount"),
    estimatedUsd: t.exposeFloat("estimatedUsd"),
    actualUsd: t.exposeFloat("actualUsd"),
    cpuSeconds: t.exposeFloat("cpuSeconds"),
    wallSeconds: t.exposeFloat("wallSeconds"),
    egressBytes: t.float({
      description:
        "Estimated bytes viewers fetched: time watched at each rendition, as players reported it (viewer analytics), times that rendition's declared bit rate (a peak: an upper bound), plus the audio's. Views of players that send no beacons are not counted.",
      resolve: async (s) => totalEgressBytes(await s.egress()),
    }),
    egressUsd: t.float({
      description: "egressBytes at COST_EGRESS_GB_USD.",
      resolve: async (s, _args, ctx) => egressUsd(ctx.costs, totalEgressBytes(await s.egress())),
    }),
    liveStreams: t.field({
      type: [LiveStreamCostRef],
      description: "Each live stream with broadcasts in the period: their encodes and egress.",
      resolve: (s, _args, ctx) => liveStreamCosts(ctx, s),
    }),
  }),
});

builder.prismaObjectFields("Video", (t) => ({
  cost: t.field({
    type: VideoCostRef,
    nullable: true,
    description: "Its jobs' estimated and actual costs, summed (scope jobs:admin); each job's in `jobs { cost }`.",
    authScopes: { scope: "jobs:admin" },
    select: {
      jobs: { select: { estimatedCostUsd: true, actualCostUsd: true, cpuSeconds: true, wallSeconds: true } },
    },
    resolve: (video) => jobCostTotals(video.jobs),
  }),
}));

builder.queryFields((t) => ({
  costSummary: t.field({
    type: CostSummaryRef,
    description:
      "The caller's tenant's job costs over a period: every job that finished at or after `from` and before `to` " +
      `(at most ${MAX_PERIOD_DAYS} days). Scope jobs:admin.`,
    authScopes: { scope: "jobs:admin" },
    args: {
      from: t.arg({ type: "DateTime", required: true }),
      to: t.arg({ type: "DateTime", required: true }),
    },
    resolve: (_root, { from, to }, ctx) => costSummary(ctx, tenantOf(ctx), { from, to }),
  }),
}));
