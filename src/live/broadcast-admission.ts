import type { Db, DbTransaction as Tx } from "../db/client.ts";
import type { LiveStream } from "../generated/prisma/client.ts";
import { log } from "../log.ts";
import { holderGone } from "./broadcast-adoption.ts";
import { waitingBroadcastJob } from "./broadcast-reconnects.ts";
import { setStatus } from "./broadcast-status.ts";
import { countLiveSlots, lockLiveAdmission, whyNoLiveSlot } from "./live-capacity.ts";
import { type LiveContext, liveJobOf } from "./live-context.ts";
import { liveSecondsUsed } from "./live-usage.ts";
import { hashStreamKey, UNKNOWN_STREAM_KEY } from "./stream-keys.ts";
import { announce } from "./stream-events.ts";

/** Why a publisher is refused while media storage is full: its broadcast could publish nothing. */
const STORAGE_FULL = "the server's storage is full: no broadcast can start until there is room";

/**
 * A publisher's key checked at connect (IngestSessions.authorize): its stream's id, or why it is
 * refused. A publisher reconnecting to its broadcast passes; a new broadcast's limits are checked
 * here so a publisher over them is spared the wait for its metadata, and again when it starts.
 */
export async function authorizePublisher(
  ctx: LiveContext,
  key: string,
): Promise<{ streamId: string } | { refused: string }> {
  const { db, settings } = ctx;
  const stream = await db.liveStream.findUnique({ where: { keyHash: hashStreamKey(key) } });
  if (!stream) return { refused: UNKNOWN_STREAM_KEY };
  if (stream.disabledAt) return { refused: "the live stream is disabled" };
  if (stream.status === "CONNECTED" || stream.status === "LIVE") {
    // Its broadcast's API instance died: its publisher's reconnect continues it (begin).
    if (await holderGone(ctx, stream)) return { streamId: stream.id };
    if (!(await endedWithoutItsEnd(ctx, stream))) return { refused: "the live stream already has a publisher" };
  }
  // Its publisher reconnecting, here or to another instance (relayed there): no new broadcast is counted.
  if (ctx.graces.has(stream.id) || (await waitingBroadcastJob(ctx, stream))) return { streamId: stream.id };
  // Checked again when the broadcast starts, under a lock (admitUnderLocks): here it spares a
  // publisher over the limit the wait for its metadata.
  const over =
    (await onAirOverLimit(ctx, db, stream.tenantId, stream.id)) ??
    quotaSpent(ctx, await secondsLeft(ctx, db, stream.tenantId)) ??
    whyNoLiveSlot(await countLiveSlots(db, stream.tenantId, settings.workerAliveSeconds)) ??
    ((await ctx.storageFull?.()) ? STORAGE_FULL : null);
  if (over) return refuseAtConnect(ctx, stream.id, over);
  return { streamId: stream.id };
}

/**
 * A new broadcast's limits, in its transaction, under its tenant's lock and the admission lock: why
 * it may not start, or how long it may last (LIVE_MAX_DURATION_SECONDS, or the month's time left).
 */
export async function admitUnderLocks(
  ctx: LiveContext,
  tx: Tx,
  stream: LiveStream,
): Promise<{ refused: string } | { longestSeconds: number }> {
  const { settings } = ctx;
  // The tenant's broadcasts on air, counted again under its row's lock: broadcasts of one
  // tenant starting at once (on any API instance) are counted one after the other.
  // `NO KEY UPDATE` leaves the rows that reference the tenant free.
  await tx.$queryRaw`SELECT 1 FROM "Tenant" WHERE id = ${stream.tenantId}::uuid FOR NO KEY UPDATE`;
  const over = await onAirOverLimit(ctx, tx, stream.tenantId, stream.id);
  if (over) return { refused: over };
  // The month's time left, counted under the same lock: the encode stops when it runs out.
  const left = await secondsLeft(ctx, tx, stream.tenantId);
  const spent = quotaSpent(ctx, left);
  if (spent) return { refused: spent };
  const noSlot = await admitBroadcast(ctx, tx, stream.tenantId);
  if (noSlot) return { refused: noSlot };
  return {
    longestSeconds:
      left === null ? settings.maxDurationSeconds : Math.min(settings.maxDurationSeconds, Math.floor(left)),
  };
}

/**
 * Seconds of broadcast the tenant has left this month (LIVE_MAX_MINUTES_PER_TENANT_MONTH), or
 * null without a quota.
 */
async function secondsLeft(ctx: LiveContext, client: Tx | Db, tenantId: string): Promise<number | null> {
  const { maxMinutesPerTenantMonth } = ctx.settings;
  if (maxMinutesPerTenantMonth === null) return null;
  return maxMinutesPerTenantMonth * 60 - (await liveSecondsUsed(client, tenantId, new Date()));
}

/** Why a tenant with `left` seconds this month may not start a broadcast, or null. */
const quotaSpent = (ctx: LiveContext, left: number | null) =>
  left !== null && left < 1
    ? "the tenant's live minutes for this month are used up " +
      `(LIVE_MAX_MINUTES_PER_TENANT_MONTH: ${ctx.settings.maxMinutesPerTenantMonth})`
    : null;

/**
 * Why the tenant may not start another broadcast (LIVE_MAX_STREAMS_PER_TENANT on air, not
 * counting `starting`, the stream asking), or null.
 */
async function onAirOverLimit(
  ctx: LiveContext,
  client: Tx | Db,
  tenantId: string,
  starting: string,
): Promise<string | null> {
  const onAir = await client.liveStream.count({
    where: { tenantId, id: { not: starting }, status: { in: ["CONNECTED", "LIVE"] } },
  });
  return onAir >= ctx.settings.maxStreamsPerTenant
    ? `the tenant has ${onAir} live streams on air (LIVE_MAX_STREAMS_PER_TENANT)`
    : null;
}

/**
 * Why the broadcast gets no live slot, or null; under the admission lock, which the caller's
 * transaction holds until the broadcast's job is written (live-capacity.ts).
 */
async function admitBroadcast(ctx: LiveContext, tx: Tx, tenantId: string): Promise<string | null> {
  await lockLiveAdmission(tx);
  return whyNoLiveSlot(await countLiveSlots(tx, tenantId, ctx.settings.workerAliveSeconds));
}

/**
 * Whether a stream on air (CONNECTED, LIVE) has in fact no broadcast: none named, or its LIVE job
 * ended with no feed here, its end's write lost (a database out of space). The stream is ENDED
 * then, so its publisher is not refused for ever.
 */
async function endedWithoutItsEnd(ctx: LiveContext, stream: LiveStream): Promise<boolean> {
  const videoId = stream.activeVideoId;
  if (videoId && ctx.feeds.has(videoId)) return false;
  if (videoId && (await liveJobOf(ctx, videoId))) return false;
  log.warn("live: a stream on air had no broadcast; its end is applied now", { streamId: stream.id, videoId });
  await setStatus(ctx, stream.id, "ENDED");
  return true;
}

/** A publisher refused before its broadcast: its stream says why (its lastError, to its subscribers). */
async function refuseAtConnect(ctx: LiveContext, streamId: string, reason: string): Promise<{ refused: string }> {
  await ctx.db.liveStream.update({ where: { id: streamId }, data: { lastError: reason } });
  announce(ctx, streamId);
  return { refused: reason };
}
