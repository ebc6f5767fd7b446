import { tenantOf, type Context } from "../context.ts";
import { isUuid } from "../ids.ts";
import {
  TERMINAL_VIDEO_STATUSES,
  videoSnapshot,
  type VideoEventMessage,
  type VideoEventPayload,
} from "./video-events.ts";

/**
 * A resync reaches every subscriber of a video at once: they share one read of its row, and so one
 * object, whose result sharedSubscriptionResults executes once for all who ask the same thing.
 */
const rereadsInFlight = new Map<string, Promise<VideoEventPayload | null>>();

/**
 * The live events of the caller's tenant's video `id`: its current state first, then every event
 * published for it, until it reaches a terminal status. Null when the tenant has no such video.
 */
export async function followVideoEvents(ctx: Context, id: string): Promise<AsyncGenerator<VideoEventPayload> | null> {
  if (!isUuid(id)) return null;
  const tenantId = tenantOf(ctx);
  const sub = ctx.pubSub.subscribe("videoEvents", id)[Symbol.asyncIterator]();
  // Asking for the first event registers the listener, so nothing published after the read below is missed.
  const pending = sub.next();
  const video = await ctx.db.video.findFirst({ where: { id, tenantId } });
  if (!video) {
    await sub.return?.();
    return null;
  }
  const reread = () => {
    let read = rereadsInFlight.get(id);
    if (!read) {
      read = ctx.db.video
        .findUnique({ where: { id } })
        .then((now): VideoEventPayload | null => now && { kind: "status", video: videoSnapshot(now) })
        .finally(() => rereadsInFlight.delete(id));
      rereadsInFlight.set(id, read);
    }
    return read;
  };
  return followVideo({ kind: "status", video: videoSnapshot(video) }, pending, sub, reread);
}

async function* followVideo(
  first: VideoEventPayload,
  pending: Promise<IteratorResult<VideoEventMessage>>,
  sub: AsyncIterator<VideoEventMessage>,
  reread: () => Promise<VideoEventPayload | null>,
): AsyncGenerator<VideoEventPayload> {
  try {
    yield first;
    if (TERMINAL_VIDEO_STATUSES.has(first.video.status)) return;
    let next = pending;
    let seenUpdatedAt = first.video.updatedAt;
    for (;;) {
      const { value: message, done } = await next;
      if (done) return;
      next = sub.next();
      // Events may have been missed while the fan-out reconnected: the database says where we are.
      const value = message.kind === "resync" ? await reread() : message;
      if (!value) return;
      if (message.kind === "resync" && value.video.updatedAt === seenUpdatedAt) continue;
      // A status published before the initial read can arrive after it; it is not news.
      if (value.kind === "status" && value.video.updatedAt < seenUpdatedAt) continue;
      if (value.video.updatedAt > seenUpdatedAt) seenUpdatedAt = value.video.updatedAt;
      yield value;
      if (value.kind === "status" && TERMINAL_VIDEO_STATUSES.has(value.video.status)) return;
    }
  } finally {
    await sub.return?.();
  }
}
