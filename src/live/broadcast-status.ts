import type { DbTransaction as Tx } from "../db/client.ts";
import type { LiveStreamStatus } from "../generated/prisma/client.ts";
import { videoWebhookData, type WebhookEventType, webhookEventId } from "../webhooks/events.ts";
import type { LiveContext } from "./live-context.ts";
import { chargeBroadcast } from "./live-usage.ts";
import { announce } from "./stream-events.ts";

/**
 * What a change of state may write beside the status, and `from`: the states it may move from (a
 * move decided on a read made earlier, which a publisher's leave may have overtaken since).
 */
type StatusExtra = { lastError?: string | null; activeVideoId?: string; from?: BroadcastStatus[] };

/** The states a broadcast moves its stream to, and the webhook each sends. */
export type BroadcastStatus = Exclude<LiveStreamStatus, "IDLE">;
const WEBHOOK_OF_STATUS = {
  CONNECTED: "live_stream.connected",
  LIVE: "live_stream.live",
  DISCONNECTED: "live_stream.disconnected",
  ENDED: "live_stream.ended",
} as const satisfies Record<BroadcastStatus, WebhookEventType>;

/**
 * Moves a stream to `status`: its webhook (with the broadcast's video) queued in the same
 * transaction, then its subscribers told.
 */
export async function setStatus(
  ctx: LiveContext,
  streamId: string,
  status: BroadcastStatus,
  extra: StatusExtra = {},
): Promise<void> {
  const changed = await ctx.db.$transaction(async (tx) => {
    // An end applied again (a redelivered event) changes nothing and sends no second webhook.
    if (status === "ENDED" && !(await countEndedBroadcast(tx, streamId))) return false;
    return changeStatus(ctx, tx, streamId, status, extra);
  });
  if (!changed) return;
  ctx.webhooks.flush();
  announce(ctx, streamId);
}

/**
 * The stream's move to ENDED, claimed (false: it was ENDED already, so an end applied twice sends
 * no second webhook), and its broadcast's end added to its tenant's month.
 */
async function countEndedBroadcast(tx: Tx, streamId: string): Promise<boolean> {
  const claim = await tx.liveStream.updateMany({
    where: { id: streamId, status: { not: "ENDED" } },
    data: { status: "ENDED" },
  });
  if (claim.count === 0) return false;
  const stream = await tx.liveStream.findUniqueOrThrow({ where: { id: streamId } });
  if (stream.activeVideoId) await chargeBroadcast(tx, stream.activeVideoId);
  return true;
}

/**
 * The row's change and its webhook, in the caller's transaction (setStatus, or a broadcast's start);
 * false where the stream was no longer in a state `extra.from` names (nothing changed, no webhook).
 */
export async function changeStatus(
  ctx: LiveContext,
  tx: Tx,
  streamId: string,
  status: BroadcastStatus,
  extra: StatusExtra,
): Promise<boolean> {
  const { from, ...data } = extra;
  if (from) {
    const moved = await tx.liveStream.updateMany({
      where: { id: streamId, status: { in: from } },
      data: { status, ...data },
    });
    if (moved.count === 0) return false;
  }
  const stream = from
    ? await tx.liveStream.findUniqueOrThrow({ where: { id: streamId } })
    : await tx.liveStream.update({ where: { id: streamId }, data: { status, ...data } });
  if (!stream.activeVideoId) return true;
  const video = await tx.video.findUnique({ where: { id: stream.activeVideoId } });
  if (!video) return true;
  const type = WEBHOOK_OF_STATUS[status];
  const eventId = webhookEventId(type, stream.id, video.id, stream.updatedAt.toISOString());
  await ctx.webhooks.emit(tx, video.id, type, eventId, {
    liveStream: { id: stream.id, title: stream.title, status: stream.status, lastError: stream.lastError },
    video: videoWebhookData(video),
  });
  return true;
}
