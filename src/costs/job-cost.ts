import type { Db } from "../db/client.ts";
import type { Prisma, Variant, Video } from "../generated/prisma/client.ts";
import type { Rung } from "../protocol/media-facts.ts";
import { LADDER_ORDER } from "../videos/variants.ts";
import {
  actualJobCost,
  estimateRemuxCost,
  estimateTranscodeCost,
  type CostEstimate,
  type CostRung,
  type CostSettings,
  type CostSource,
  type RungCost,
} from "./cost-model.ts";
import { queueOf } from "../jobs/queue-position.ts";
import { lockVideo } from "../jobs/video-lock.ts";

/** The source's facts when the video has been probed; an audio-only source (no video codec) has no frame. */
function probedSource(video: Pick<Video, "duration" | "width" | "height" | "fps" | "videoCodec">): CostSource | null {
  if (video.duration === null) return null;
  if (video.videoCodec === null && video.width === null)
    return { seconds: video.duration, width: 0, height: 0, fps: 0 };
  if (!video.width || !video.height) return null;
  return { seconds: video.duration, width: video.width, height: video.height, fps: video.fps ?? 30 };
}

/** The rungs a transcode encodes: `jobRungs` of the ladder, or all of it. */
const rungsOfJob = <R extends { name: string }>(ladder: readonly R[], jobRungs: readonly string[]) =>
  jobRungs.length > 0 ? ladder.filter((r) => jobRungs.includes(r.name)) : [...ladder];

function estimateColumns(estimate: CostEstimate | null) {
  if (!estimate) return {};
  return {
    estimatedCostUsd: estimate.usd,
    estimatedCpuSeconds: estimate.cpuSeconds,
    estimatedWallSeconds: estimate.wallSeconds,
    estimateBasis: estimate.basis,
    ...(estimate.rungs.length > 0 ? { rungCosts: estimate.rungs as unknown as Prisma.InputJsonValue } : {}),
  };
}

/** The estimate columns a job row is created with (none when there is nothing to estimate from). */
export type EstimateColumns = ReturnType<typeof estimateColumns>;

/** A job about to be queued for `videoId`: the rungs it makes (none: the whole ladder) on `capability`'s queue. */
interface QueuedWork {
  videoId: string;
  rungs: readonly string[];
  capability: string;
}

/**
 * The estimate columns of a transcode about to be queued: from its probe and ladder (variant rows)
 * when it has them (a retried rung), a clip's from the probe of the video it is cut from and the
 * clip's length, else from its upload's size.
 */
export async function estimateTranscodeAtEnqueue(
  tx: Pick<Db, "video" | "variant">,
  costs: CostSettings,
  job: QueuedWork & {
    /** The part of the source the job encodes (a split transcode's chunk), in seconds; default the whole. */
    seconds?: number;
  },
): Promise<EstimateColumns> {
  const video = await tx.video.findUnique({ where: { id: job.videoId } });
  if (!video) return {};
  const rungs = await queuedRungs(tx, job);
  const probed = probedSource(video);
  // A chunk: its part of the probed source, its video rungs.
  const part = probed && job.seconds !== undefined ? { ...probed, seconds: job.seconds } : probed;
  return estimateColumns(
    estimateTranscodeCost(costs, {
      source: part ?? (await clipSource(tx, video)),
      uploadBytes: video.uploadSize === null ? null : Number(video.uploadSize),
      rungs: rungs.length > 0 ? rungs : null,
      queue: job.capability,
    }),
  );
}

/** The estimate columns of a remux of `job.rungs` about to be queued (static renditions); none before the probe. */
export async function estimateRemuxAtEnqueue(
  tx: Pick<Db, "video" | "variant">,
  costs: CostSettings,
  job: QueuedWork,
): Promise<EstimateColumns> {
  const video = await tx.video.findUnique({ where: { id: job.videoId } });
  if (!video) return {};
  const rungs = await queuedRungs(tx, job);
  const source = probedSource(video);
  return source
    ? estimateColumns(estimateRemuxCost(costs, { seconds: source.seconds, rungs, queue: job.capability }))
    : {};
}

/** The video's variant rows the queued job makes, in the ladder's order. */
async function queuedRungs(tx: Pick<Db, "variant">, job: QueuedWork): Promise<Variant[]> {
  const variants: Variant[] = await tx.variant.findMany({ where: { videoId: job.videoId }, orderBy: LADDER_ORDER });
  return rungsOfJob(variants, job.rungs);
}

/** A clip not probed yet: the probed video it is cut from, for the clip's length. */
async function clipSource(
  tx: Pick<Db, "video">,
  video: Pick<Video, "clipOfId" | "clipStart" | "clipEnd">,
): Promise<CostSource | null> {
  if (!video.clipOfId || video.clipStart === null || video.clipEnd === null) return null;
  const of = await tx.video.findUnique({ where: { id: video.clipOfId } });
  const source = of ? probedSource(of) : null;
  return source ? { ...source, seconds: video.clipEnd - video.clipStart } : null;
}

/** Refines a transcode's estimate once the worker probed its source and planned the ladder. */
export async function estimateAtProbe(
  db: Db,
  costs: CostSettings,
  jobId: string,
  source: CostSource,
  ladder: readonly Rung[],
): Promise<void> {
  const job = await db.job.findUnique({ where: { id: jobId } });
  if (job?.kind !== "TRANSCODE") return;
  const estimate = estimateTranscodeCost(costs, {
    source,
    uploadBytes: null,
    rungs: rungsOfJob(ladder, job.rungs),
    queue: queueOf(job),
  });
  await db.job.update({ where: { id: jobId }, data: estimateColumns(estimate) });
}

/**
 * Re-estimates a transcode that split into chunks (docs/chunked-transcoding.md): its own run
 * encodes the first chunk's video rungs and the whole audio (a pass that decodes no picture); each
 * later chunk is a job of its own, estimated when queued. So a split video's estimates add up to
 * its work rather than counting the later chunks' video twice.
 */
export async function estimateSplitRun(
  tx: Pick<Db, "job" | "video" | "variant">,
  costs: CostSettings,
  jobId: string,
  firstChunk: { fromSeconds: number; toSeconds: number },
): Promise<void> {
  const job = await tx.job.findUnique({ where: { id: jobId } });
  if (job?.kind !== "TRANSCODE") return;
  const video = await tx.video.findUnique({ where: { id: job.videoId } });
  const source = video ? probedSource(video) : null;
  if (!source) return;
  const ladder = rungsOfJob(
    await tx.variant.findMany({ where: { videoId: job.videoId }, orderBy: LADDER_ORDER }),
    job.rungs,
  );
  const queue = queueOf(job);
  const estimateOf = (rungs: Variant[], part: CostSource) =>
    rungs.length > 0 ? estimateTranscodeCost(costs, { source: part, uploadBytes: null, rungs, queue }) : null;
  const parts = [
    estimateOf(
      ladder.filter((r) => r.kind === "VIDEO"),
      { ...source, seconds: firstChunk.toSeconds - firstChunk.fromSeconds },
    ),
    estimateOf(
      ladder.filter((r) => r.kind === "AUDIO"),
      { ...source, width: 0, height: 0 },
    ),
  ].filter((part): part is CostEstimate => part !== null);
  if (parts.length === 0) return;
  const sum = (pick: (e: CostEstimate) => number) => parts.reduce((total, e) => total + pick(e), 0);
  const byName = new Map(parts.flatMap((e) => e.rungs).map((r) => [r.name, r]));
  const estimate: CostEstimate = {
    basis: "PROBE",
    cpuSeconds: sum((e) => e.cpuSeconds),
    wallSeconds: sum((e) => e.wallSeconds),
    usd: sum((e) => e.usd),
    rungs: ladder.flatMap((r) => byName.get(r.name) ?? []),
  };
  await tx.job.update({ where: { id: jobId }, data: estimateColumns(estimate) });
}

/**
 * The job's measured seconds and their cost, per rung for a transcode whose ladder is known; recomputed from
 * the rows, so applying it again changes nothing. It runs under the video's lock (video-lock.ts) and reads
 * after taking it, so two instances' computations run in turn and an older one never overwrites a newer.
 */
export async function recordActualCost(db: Db, costs: CostSettings, jobId: string): Promise<void> {
  // Most events of a running job come before any run reported: one statement says so. (A run's
  // end that reports commits its seconds before it computes the cost itself.)
  const owner = await db.job.findUnique({
    where: { id: jobId },
    select: { videoId: true, runs: { where: { cpuSeconds: { not: null } }, select: { id: true }, take: 1 } },
  });
  if (!owner?.runs.length) return;
  await db.$transaction(async (tx) => {
    await lockVideo(tx, owner.videoId);
    await recordActualCostIn(tx, costs, jobId);
  });
}

/**
 * `recordActualCost` in the caller's transaction, which holds the job's video's lock: for a change
 * that writes what the cost is computed from (a static renditions job's files) and its cost at once.
 */
export async function recordActualCostIn(
  tx: Pick<Db, "job" | "staticRendition">,
  costs: CostSettings,
  jobId: string,
): Promise<void> {
  const job = await tx.job.findUnique({
    where: { id: jobId },
    include: {
      runs: { select: { cpuSeconds: true, wallSeconds: true } },
      video: { include: { variants: { orderBy: LADDER_ORDER } } },
    },
  });
  if (!job) return;
  const reported = job.runs.filter((r) => r.cpuSeconds !== null && r.wallSeconds !== null);
  if (reported.length === 0) return;
  // A rung a later transcode of the video encoded again (`retryVariant`, one job at a time) is
  // that job's to store: a READY rung was made by the last job that encoded it.
  const later =
    job.kind === "TRANSCODE"
      ? await tx.job.findMany({
          where: { videoId: job.videoId, kind: "TRANSCODE", createdAt: { gt: job.createdAt } },
          select: { rungs: true },
        })
      : [];
  const remadeLater = (name: string) => later.some((j) => j.rungs.length === 0 || j.rungs.includes(name));
  const cpuSeconds = reported.reduce((a, r) => a + r.cpuSeconds!, 0);
  const wallSeconds = reported.reduce((a, r) => a + r.wallSeconds!, 0);
  const source = probedSource(job.video);
  const rungs: CostRung[] = rungsOfJob(job.video.variants, job.rungs).map((v) => ({
    ...v,
    stored: v.status === "READY" && !remadeLater(v.name),
  }));
  const estimated = (Array.isArray(job.rungCosts) ? job.rungCosts : []) as unknown as RungCost[];
  const actual = actualJobCost(costs, {
    cpuSeconds,
    wallSeconds,
    queue: queueOf(job),
    ladder: job.kind === "TRANSCODE" && source && rungs.length > 0 ? { source, rungs, estimated } : null,
    storedBytes: job.kind === "STATIC_RENDITIONS" ? await renditionBytes(tx, job.id) : 0,
  });
  await tx.job.update({
    where: { id: jobId },
    data: {
      cpuSeconds,
      wallSeconds,
      actualCostUsd: actual.usd,
      ...(actual.rungs ? { rungCosts: actual.rungs as unknown as Prisma.InputJsonValue } : {}),
    },
  });
}

/** The bytes of the READY files a static renditions job made. */
async function renditionBytes(tx: Pick<Db, "staticRendition">, jobId: string): Promise<number> {
  const { _sum } = await tx.staticRendition.aggregate({
    where: { jobId, status: "READY" },
    _sum: { sizeBytes: true },
  });
  return Number(_sum.sizeBytes ?? 0);
}
