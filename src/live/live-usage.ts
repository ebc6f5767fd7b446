import type { Db, DbTransaction as Tx } from "../db/client.ts";
import { parseJobInput } from "../jobs/create-job.ts";

// A tenant's live minutes in a month (docs/live.md#limits-and-refusals, "Monthly minutes"): what its broadcasts used,
// and each ended broadcast's charge, added once.

/** The first day (UTC) of `at`'s month: the key of a tenant's LiveUsage row. */
export const monthOf = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));

/**
 * Seconds a tenant has broadcast in `now`'s month: its ended broadcasts' (LiveUsage: each one's
 * length, counted in the month it ended) and its broadcasts not yet ended, since each started.
 */
export async function liveSecondsUsed(client: Tx | Db, tenantId: string, now: Date): Promise<number> {
  const usage = await client.liveUsage.findUnique({
    where: { tenantId_month: { tenantId, month: monthOf(now) } },
  });
  const onAir = await client.video.findMany({
    where: { tenantId, source: "LIVE", status: { in: ["QUEUED", "PROCESSING"] } },
    select: { createdAt: true },
  });
  const running = onAir.reduce((sum, v) => sum + Math.max(0, now.getTime() - v.createdAt.getTime()) / 1000, 0);
  return (usage?.seconds ?? 0) + running;
}

/**
 * A broadcast's end added to its tenant's month (LiveUsage), once per broadcast however often it
 * is applied (its LiveBroadcastCharge row is the claim), also when its stream has moved on to the
 * next broadcast (a publisher that stopped and started again while the first one's encode finished).
 */
export async function chargeBroadcast(tx: Tx, videoId: string): Promise<void> {
  const video = await tx.video.findUnique({
    where: { id: videoId },
    select: { tenantId: true, createdAt: true, duration: true, source: true },
  });
  if (video?.source !== "LIVE") return;
  const now = new Date();
  const seconds = await chargedSeconds(tx, videoId, video, now);
  const claim = await tx.liveBroadcastCharge.createMany({
    data: [{ videoId, tenantId: video.tenantId, seconds }],
    skipDuplicates: true,
  });
  if (claim.count === 0) return;
  const key = { tenantId: video.tenantId, month: monthOf(now) };
  await tx.liveUsage.upsert({
    where: { tenantId_month: key },
    create: { ...key, seconds },
    update: { seconds: { increment: seconds } },
  });
}

/**
 * What a broadcast ending `now` costs its tenant's month: its time on air by the wall clock, from
 * its start, at most its longest length (the seconds its encode takes to finish after the cap are
 * not charged); its recording's duration where that is longer (timestamps that run fast).
 */
async function chargedSeconds(
  tx: Tx,
  videoId: string,
  video: { createdAt: Date; duration: number | null },
  now: Date,
): Promise<number> {
  const job = await tx.job.findFirst({ where: { videoId, kind: "LIVE" }, select: { input: true } });
  const longest = job ? parseJobInput("LIVE", job.input).options.maxDurationSeconds : Number.POSITIVE_INFINITY;
  const onAir = Math.min(longest, Math.max(0, (now.getTime() - video.createdAt.getTime()) / 1000));
  return Math.max(onAir, video.duration ?? 0);
}
