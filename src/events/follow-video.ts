import { tenantOf, type Context } from "../context.ts";
import type { Video } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import {
  TERMINAL_VIDEO_STATUSES,
  videoSnapshot,
  type VideoEventMessage,
  type VideoEventPayload,
} from "./video-events.ts";

/**
 * Reads of a video's current row, shared. At most one read per video is in flight; whoever asks
 * while it is joins the next one, sent as soon as it returns. So ten thousand front ends
 * reconnecting at once to a hundred videos cost a few hundred queries, not ten thousand, and their
 * first events are executed once per audience (sharedSubscriptionResults shares by the event
 * object); a lone subscriber waits for nothing. A read is sent only after everyone who joined it
 * asked: whoever subscribed before asking sees every change after its read, and is never handed a
 * read that started before it listened. Keyed by database client too: one process may serve
 * several (the tests do).
 */
const videoReads = new WeakMap<Context["db"], Map<string, VideoReads>>();

interface VideoReads {
  inFlight: Promise<Video | null>;
  /** The read whoever asked since `inFlight` was sent will share. */
  next: Promise<Video | null> | null;
}

/**
 * `joinInFlight`: whoever has been listening since before any read now in flight may share it (a
 * resync, delivered to every subscriber of the video at once); a new subscriber may not.
 */
function readVideoShared(db: Context["db"], id: string, joinInFlight = false): Promise<Video | null> {
  let reads = videoReads.get(db);
  if (!reads) {
    reads = new Map();
    videoReads.set(db, reads);
  }
  const byId = reads;
  const send = (): Promise<Video | null> => {
    const read = db.video.findUnique({ where: { id } });
    const state: VideoReads = { inFlight: read, next: null };
    byId.set(id, state);
    const done = () => {
      if (byId.get(id) === state) byId.delete(id);
    };
    read.then(done, done);
    return read;
  };
  const state = byId.get(id);
  if (!state) return send();
  if (joinInFlight) return state.next ?? state.inFlight;
  state.next ??= state.inFlight.then(send, send);
  return state.next;
}

/** One snapshot object per row read, so that everyone who shared a read shares its event too. */
const statusEvents = new WeakMap<Video, VideoEventPayload>();

function statusEventOf(video: Video): VideoEventPayload {
  let event = statusEvents.get(video);
  if (!event) {
    event = { kind: "status", video: videoSnapshot(video) };
    statusEvents.set(video, event);
  }
  return event;
}

/**
 * The live events of the caller's tenant's video `id`: its current state first, then every event
 * published for it, until it reaches a terminal status. Null when the tenant has no such video.
 */
export async function followVideoEvents(ctx: Context, id: string): Promise<AsyncGenerator<VideoEventPayload> | null> {
  if (!isUuid(id)) return null;
  const tenantId = tenantOf(ctx);
  // Listening from here on, before the read below: nothing published after that read is missed.
  const sub = ctx.pubSub.subscribe("videoEvents", id);
  const pending = sub.next();
  const video = await readVideoShared(ctx.db, id);
  if (!video || video.tenantId !== tenantId) {
    await sub.return?.();
    return null;
  }
  // A resync reaches every subscriber of a video at once, all listening long before: they share
  // one read, even one already in flight.
  const reread = async () => {
    const now = await readVideoShared(ctx.db, id, true);
    return now && statusEventOf(now);
  };
  return followVideo(statusEventOf(video), pending, sub, reread);
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
