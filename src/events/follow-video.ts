import { tenantOf, type Context } from "../context.ts";
import type { SubscriptionSink } from "../http/shared-subscription-results.ts";
import type { Video } from "../generated/prisma/client.ts";
import { isUuid } from "../ids.ts";
import { log } from "../log.ts";
import {
  MAX_QUEUED_VIDEO_EVENTS,
  TERMINAL_VIDEO_STATUSES,
  videoSnapshot,
  type VideoEventMessage,
  type VideoEventPayload,
} from "./video-events.ts";

/**
 * Reads of a video's current row, shared: at most one in flight per video, and whoever asks meanwhile joins the
 * next, so a reconnect storm costs a few hundred queries, not one per front end. A read is sent only after all
 * who joined it asked, so none is handed a read that started before it listened. Keyed by database client too.
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

/**
 * How long a finished read of a video may serve as the first event of followers who join after it
 * (VideoHub.recentRead): only while no event of the video came since, so this bounds how stale a
 * change that publishes no event may be for them, as a read in flight does for its sharers.
 */
const READ_REUSE_MS = 1000;

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
 * The live events of the caller's tenant's video `id`: its current state, then every event until a terminal
 * status; null when the tenant has no such video. One listener per video in the process (`VideoHub`) calls each
 * follower, pulled as an async iterator or (WebSocket subscribers) pushed to the sink attached to it.
 */
export async function followVideoEvents(ctx: Context, id: string): Promise<VideoFollower | null> {
  if (!isUuid(id)) return null;
  const tenantId = tenantOf(ctx);
  // Listening from here on, before the read below: nothing published after that read is missed.
  const hub = hubOf(ctx, id);
  const follower = hub.join();
  let video = hub.recentRead();
  if (video === undefined) {
    const asked = { eventsBefore: hub.eventsTaken, askedAt: Date.now() };
    video = await readVideoShared(ctx.db, id);
    hub.noteRead({ video, ...asked });
  }
  if (!video || video.tenantId !== tenantId) {
    await follower.return();
    return null;
  }
  follower.start(statusEventOf(video));
  return follower;
}

/** One listener per followed video per process (and per pub/sub: tests run several apps in one). */
const hubs = new WeakMap<Context["pubSub"], Map<string, VideoHub>>();

function hubOf(ctx: Context, id: string): VideoHub {
  let byId = hubs.get(ctx.pubSub);
  if (!byId) {
    byId = new Map();
    hubs.set(ctx.pubSub, byId);
  }
  const map = byId;
  let hub = map.get(id);
  if (!hub) {
    const created: VideoHub = new VideoHub(ctx, id, () => {
      if (map.get(id) === created) map.delete(id);
    });
    hub = created;
    map.set(id, hub);
  }
  return hub;
}

interface VideoRead {
  video: Video | null;
  /** `VideoHub.eventsTaken` and the time when the read was asked for. */
  eventsBefore: number;
  askedAt: number;
}

/**
 * Listens to one video's events for all its followers in this process and offers each event to
 * each of them, in order. A resync (events may have been missed while the fan-out reconnected) is
 * one shared read of the row, offered to all. Stops listening when the last follower leaves.
 */
class VideoHub {
  readonly followers = new Set<VideoFollower>();
  /** Messages taken from the fan-out so far (events and resyncs). */
  eventsTaken = 0;
  /** The newest read of the row a follower started from, with `eventsTaken` when it was asked for. */
  private lastRead: VideoRead | null = null;
  private readonly sub: AsyncIterator<VideoEventMessage>;
  private closed = false;
  private readonly db: Context["db"];
  private readonly id: string;
  private readonly onClose: () => void;

  constructor(ctx: Context, id: string, onClose: () => void) {
    this.db = ctx.db;
    this.id = id;
    this.onClose = onClose;
    this.sub = ctx.pubSub.subscribe("videoEvents", id);
    void this.run();
  }

  join(): VideoFollower {
    const follower = new VideoFollower(this);
    this.followers.add(follower);
    return follower;
  }

  /**
   * A read a follower who joined just now may start from instead of reading the row again (in a
   * reconnect storm, its followers arrive one after another, not during one read): one asked for
   * less than READ_REUSE_MS ago with no event taken since it was asked for. Such a follower misses
   * nothing: whatever changed after that read was published and comes after it as an event, which
   * reaches it because it joined before the hub took that event. Undefined when there is none.
   */
  recentRead(): Video | null | undefined {
    const read = this.lastRead;
    if (!read || read.eventsBefore !== this.eventsTaken || Date.now() - read.askedAt >= READ_REUSE_MS) return undefined;
    return read.video;
  }

  /** A read asked for at `askedAt`, when `eventsBefore` events had been taken (one older than the read kept: ignored). */
  noteRead(read: VideoRead): void {
    if (this.lastRead && this.lastRead.askedAt > read.askedAt) return;
    this.lastRead = read;
  }

  leave(follower: VideoFollower): void {
    this.followers.delete(follower);
    if (this.followers.size === 0) this.close();
  }

  /**
   * The row as it is now, as an event. Whoever follows has been listening since before any read now
   * in flight, so it may share one (a resync reaches every follower of the video at once).
   */
  async reread(): Promise<VideoEventPayload | null> {
    const now = await readVideoShared(this.db, this.id, true);
    return now && statusEventOf(now);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    void this.sub.return?.();
  }

  private async run(): Promise<void> {
    for (;;) {
      const { value: message, done } = await this.sub.next();
      if (done) return;
      this.eventsTaken++;
      if (message.kind !== "resync") {
        // No copy of the set: a follower that ends deletes only itself, which a Set's iteration allows.
        for (const follower of this.followers) follower.offer(message, false);
        continue;
      }
      let now: VideoEventPayload | null;
      try {
        now = await this.reread();
      } catch (err) {
        // Every event carries the whole video: the next one tells its followers where it stands.
        log.warn("re-reading a video after missed events failed", { videoId: this.id, err });
        continue;
      }
      // Gone (deleted): its followers end.
      for (const follower of this.followers) {
        if (now) follower.offer(now, true);
        else follower.end();
      }
    }
  }
}

/** Marks a follower's queue as dropped: it reads the row as it is now before the events after. */
const CATCH_UP = Symbol("catch up");

/**
 * One subscriber of a video: its first event (its own read), then the hub's events that are news
 * to it. Until it is started it keeps what the hub offers (published during its read). Pulled, it
 * holds at most MAX_QUEUED_VIDEO_EVENTS; past that they are dropped for one catch-up read.
 */
export class VideoFollower implements AsyncIterableIterator<VideoEventPayload> {
  /** `updatedAt` of the newest row it was handed; null until started. */
  private seen: string | null = null;
  private readonly backlog: [VideoEventPayload, boolean][] = [];
  /** The backlog passed MAX_QUEUED_VIDEO_EVENTS and was dropped: it catches up once started. */
  private backlogDropped = false;
  private queue: (VideoEventPayload | typeof CATCH_UP)[] = [];
  private waiting: ((result: IteratorResult<VideoEventPayload>) => void) | null = null;
  private sink: SubscriptionSink<VideoEventPayload> | null = null;
  private ended = false;
  private readonly hub: VideoHub;

  constructor(hub: VideoHub) {
    this.hub = hub;
  }

  /** Hands it its first event (its own read of the row), then what was offered meanwhile. */
  start(first: VideoEventPayload): void {
    this.seen = first.video.updatedAt;
    this.deliver(first);
    if (TERMINAL_VIDEO_STATUSES.has(first.video.status)) {
      this.end();
      return;
    }
    if (this.backlogDropped) this.queue.push(CATCH_UP);
    for (const [value, resync] of this.backlog.splice(0)) this.offer(value, resync);
  }

  /** An event of the video (`resync`: the row re-read after events may have been missed). */
  offer(value: VideoEventPayload, resync: boolean): void {
    if (this.ended) return;
    if (this.seen === null) {
      if (this.backlog.length >= MAX_QUEUED_VIDEO_EVENTS) {
        this.backlog.length = 0;
        this.backlogDropped = true;
      }
      this.backlog.push([value, resync]);
      return;
    }
    if (resync && value.video.updatedAt === this.seen) return;
    // A status published before the initial read can arrive after it; it is not news.
    if (value.kind === "status" && value.video.updatedAt < this.seen) return;
    if (value.video.updatedAt > this.seen) this.seen = value.video.updatedAt;
    this.deliver(value);
    if (value.kind === "status" && TERMINAL_VIDEO_STATUSES.has(value.video.status)) this.end();
  }

  /**
   * From now on, every event goes to `sink` as it comes, then `sink.end()`; what was queued for
   * pulling goes first. It is no longer pulled (`next()` then waits for the end).
   */
  attach(sink: SubscriptionSink<VideoEventPayload>): void {
    const queued = this.queue.splice(0);
    this.sink = sink;
    for (const value of queued) {
      if (value === CATCH_UP) this.catchUp();
      else sink.next(value);
    }
    if (this.ended) sink.end();
  }

  /** Stops following: the hub forgets it, and whoever waits is told it is done. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.hub.leave(this);
    if (this.sink) this.sink.end();
    else if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: undefined, done: true });
    }
  }

  async next(): Promise<IteratorResult<VideoEventPayload>> {
    for (;;) {
      const value = this.queue.shift();
      if (value === CATCH_UP) {
        const now = await this.hub.reread();
        if (!now) {
          await this.return();
          return { value: undefined, done: true };
        }
        // Offered like any event (its filter, the end on a terminal status), ahead of what came since.
        const since = this.queue;
        this.queue = [];
        this.offer(now, true);
        if (!this.ended) this.queue.push(...since);
        continue;
      }
      if (value !== undefined) return { value, done: false };
      if (this.ended) return { value: undefined, done: true };
      return new Promise((resolve) => {
        this.waiting = resolve;
      });
    }
  }

  async return(_value?: unknown): Promise<IteratorResult<VideoEventPayload>> {
    this.queue = [];
    this.end();
    return { value: undefined, done: true };
  }

  async throw(err: unknown): Promise<IteratorResult<VideoEventPayload>> {
    await this.return();
    throw err;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private deliver(value: VideoEventPayload): void {
    if (this.sink) {
      this.sink.next(value);
    } else if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value, done: false });
    } else if (this.queue.length >= MAX_QUEUED_VIDEO_EVENTS) {
      this.queue = [CATCH_UP];
    } else {
      this.queue.push(value);
    }
  }

  /** A dropped queue caught up while a sink is attached: the row as it is now, offered in turn. */
  private catchUp(): void {
    this.hub.reread().then(
      (now) => (now ? this.offer(now, true) : this.end()),
      (err: unknown) => log.warn("re-reading a video for a subscriber that fell behind failed", { err }),
    );
  }
}
