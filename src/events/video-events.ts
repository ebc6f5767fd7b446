import { createPubSub } from "graphql-yoga";
import { Prisma } from "../generated/prisma/browser.ts";
import type { Variant, Video } from "../generated/prisma/client.ts";
import type { VariantStatus, VideoStatus } from "../generated/prisma/enums.ts";
import type { JobEvent } from "../protocol/job-events.ts";
import type { PostgresEventTarget } from "./postgres-event-target.ts";

/**
 * Where a QUEUED job stands in its queue. It counts every job of the queue, whatever its tenant,
 * and names none of them.
 */
export interface QueuePosition {
  /** The queue: where its attempt was sent (`dispatchedTo`), or its capability's before it is dispatched. */
  queue: string;
  /** 1 for the next job a free slot takes. */
  position: number;
  /** Slots (WORKER_CONCURRENCY) of the live workers serving the queue. */
  slots: number;
  /** Seconds from `at` until it is expected to start; null when no live worker serves the queue or nothing is measured. */
  estimatedStartSeconds: number | null;
  /** When the estimate was made (ISO 8601: the position travels as JSON to every API instance). */
  at: string;
}

/**
 * What travels to subscribers. Snapshots of the rows go along so that a subscriber's
 * `video { status playable }` and `variant { progress }` are answered without a database
 * read, and progress reaches clients before the throttled database write.
 */
export type VideoEventPayload =
  | { kind: "status"; video: VideoSnapshot }
  | { kind: "variantStatus"; video: VideoSnapshot; variant: VariantSnapshot }
  | ({ kind: "variantProgress"; video: VideoSnapshot; variant: VariantSnapshot } & EncoderFigures)
  | {
      kind: "renderProgress";
      video: VideoSnapshot;
      /** The animation (Manim) or question (composition) being rendered, from 0. */
      index: number;
      count: number | null;
      /** Of the current item, 0..100. */
      percent: number;
      description: string | null;
      /** Items rendered, and taken from the cache (Manim's partial movies), so far. */
      renderedCount: number;
      cachedCount: number;
    }
  /** Where the video's queued job stands now that its queue changed (src/jobs/queue-position.ts). */
  | { kind: "queuePosition"; video: VideoSnapshot; position: QueuePosition };

type JobProgressEvent = Extract<JobEvent, { type: "job.progress" }>;

/**
 * What a worker's `job.progress` says of the encoder (fps, speed, ETA), passed to subscribers as
 * it came: every field of the event but its envelope and what the API applies to its rows. A field
 * added to the event lands here, and the compiler asks src/schema/video-events.ts for its GraphQL field.
 */
export type EncoderFigures = Omit<
  JobProgressEvent,
  "v" | "jobId" | "attempt" | "seq" | "workerId" | "runId" | "at" | "traceparent" | "type" | "progress" | "variants"
>;

export function encoderFigures(event: JobProgressEvent): EncoderFigures {
  const { v, jobId, attempt, seq, workerId, runId, at, traceparent, type, progress, variants, ...figures } = event;
  return figures;
}

/**
 * A video's fields a CMS sets (up to 16 KiB of metadata): events leave them out, and a subscriber
 * that asks for them reads them once per API instance per version of the row (`cmsFieldsOf`).
 */
type CmsKeys = "description" | "metadata" | "tags" | "externalId";

/** Rows made JSON-safe: dates as ISO strings, byte counts as numbers; without the CMS's fields. */
export type VideoSnapshot = Omit<Video, "uploadSize" | "uploadedBytes" | CmsKeys | DateKeys<Video>> &
  JsonDates<Video> & {
    uploadSize: number | null;
    uploadedBytes: number;
  };
export type VariantSnapshot = Omit<Variant, DateKeys<Variant>> & JsonDates<Variant>;
type DateKeys<T> = { [K in keyof T]: T[K] extends Date | null ? K : never }[keyof T];
type JsonDates<T> = { [K in DateKeys<T>]: T[K] extends Date ? string : string | null };

export const TERMINAL_VIDEO_STATUSES: ReadonlySet<VideoStatus> = new Set(["READY", "FAILED", "CANCELED", "DISCARDED"]);
export const TERMINAL_VARIANT_STATUSES: ReadonlySet<VariantStatus> = new Set(["READY", "FAILED", "SKIPPED"]);

/**
 * The columns a snapshot carries: every scalar of the row but the CMS's. A read that included a
 * relation (a progress batch reads each video with its rungs) leaves it behind: every event of a
 * video would carry its ladder twice, and a 1080p ladder's NOTIFY would no longer fit in one.
 */
const CMS_KEYS: ReadonlySet<string> = new Set(["description", "metadata", "tags", "externalId"] satisfies CmsKeys[]);
const VIDEO_SNAPSHOT_KEYS = Object.values(Prisma.VideoScalarFieldEnum).filter((k) => !CMS_KEYS.has(k));
const VARIANT_SNAPSHOT_KEYS = Object.values(Prisma.VariantScalarFieldEnum);

/**
 * A column's value as JSON would give it back (a date as its ISO text, a byte count as a number,
 * a JSON column as a copy of its own), without writing and parsing the whole row: a progress batch
 * takes a video's and its rungs' snapshots for each sample, hundreds a second.
 */
function jsonValue(value: unknown): unknown {
  if (value instanceof Date) return value.toJSON();
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (value !== null && typeof value === "object") return JSON.parse(JSON.stringify(value));
  return value;
}

function snapshotOf(row: object, keys: readonly string[]): Record<string, unknown> {
  const snapshot: Record<string, unknown> = {};
  for (const key of keys) {
    const value = (row as Record<string, unknown>)[key];
    if (value !== undefined) snapshot[key] = jsonValue(value);
  }
  return snapshot;
}

export function videoSnapshot(video: Video): VideoSnapshot {
  return snapshotOf(video, VIDEO_SNAPSHOT_KEYS) as VideoSnapshot;
}

export function variantSnapshot(variant: Variant): VariantSnapshot {
  return snapshotOf(variant, VARIANT_SNAPSHOT_KEYS) as VariantSnapshot;
}

/** What a subscription can receive: an event, or word that events may have been missed. */
export type VideoEventMessage = VideoEventPayload | { kind: "resync" };

/**
 * One `job.progress` applied: every rung it moved, in one message over the fan-out (one NOTIFY,
 * not one per rung, each with the whole video: docs/performance.md, "The control plane"). A
 * subscription receives it as one `variantProgress` per rung, in the rungs' order (`unpacked`).
 */
type VariantsProgressMessage = {
  kind: "variantsProgress";
  video: VideoSnapshot;
  variants: VariantSnapshot[];
} & EncoderFigures;

/** What is published: an event, or several rungs' progress in one message. */
type VideoFanOutMessage = VideoEventMessage | VariantsProgressMessage;

type VideoPubSubEvents = { videoEvents: [videoId: string, payload: VideoFanOutMessage] };

/**
 * Events a subscriber may have waiting before it is told to catch up instead: its queue is
 * replaced by one resync, and it reads the video's current state (follow-video.ts). Ordinary
 * subscribers hold none; one far behind must not hold memory without bound.
 */
export const MAX_QUEUED_VIDEO_EVENTS = 1024;

/**
 * Publishes a video's events to every local subscriber and, through `eventTarget` (the Postgres
 * fan-out), to every other API instance's. Publishing is graphql-yoga's; subscribing is a lean
 * queue per subscriber (`listen`): at 10,000 subscribers an event is one resolved promise each,
 * where yoga's Repeater made several.
 */
export function createVideoPubSub(eventTarget: PostgresEventTarget<never> | undefined) {
  const target: EventTarget = eventTarget ?? new EventTarget();
  const { publish } = createPubSub<VideoPubSubEvents>({ eventTarget: target as never });
  return {
    publish,
    /** The events of one video, from now on. */
    subscribe(routingKey: "videoEvents", videoId: string): AsyncIterableIterator<VideoEventMessage> {
      return listen(target, `${routingKey}:${videoId}`, unpacked, RESYNC_MESSAGE, MAX_QUEUED_VIDEO_EVENTS);
    },
  };
}

export type VideoPubSub = ReturnType<typeof createVideoPubSub>;

const RESYNC_MESSAGE: VideoEventMessage = { kind: "resync" };

/** A published message as the events a subscription receives: one per rung of a `variantsProgress`. */
function unpacked(message: VideoFanOutMessage): VideoEventMessage | VideoEventMessage[] {
  if (message.kind !== "variantsProgress") return message;
  const { kind, video, variants, ...figures } = message;
  return variants.map((variant) => ({ kind: "variantProgress", video, variant, ...figures }));
}

/**
 * The `detail` of every event dispatched on `target` under `topic`, from now until `return()`, as
 * `unpack` makes it one value or several. One promise per value: a waiting `next()` is resolved
 * with it, else it is queued; past `max` queued, the queue becomes `[overflow]`.
 */
function listen<D, T>(
  target: EventTarget,
  topic: string,
  unpack: (detail: D) => T | T[],
  overflow: T,
  max: number,
): AsyncIterableIterator<T> {
  const queue: T[] = [];
  const waiting: ((result: IteratorResult<T>) => void)[] = [];
  let stopped = false;
  const take = (value: T) => {
    if (waiting.length) {
      waiting.shift()!({ value, done: false });
    } else if (queue.length >= max) {
      queue.length = 0;
      queue.push(overflow);
    } else {
      queue.push(value);
    }
  };
  const onEvent = (event: Event) => {
    const values = unpack((event as CustomEvent<D>).detail);
    if (Array.isArray(values)) for (const value of values) take(value);
    else take(values);
  };
  const stop = () => {
    if (stopped) return;
    stopped = true;
    target.removeEventListener(topic, onEvent);
    queue.length = 0;
    for (const resolve of waiting.splice(0)) resolve({ value: undefined, done: true });
  };
  target.addEventListener(topic, onEvent);
  const iterator: AsyncIterableIterator<T> = {
    next() {
      if (queue.length) return Promise.resolve({ value: queue.shift()!, done: false });
      if (stopped) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => waiting.push(resolve));
    },
    return() {
      stop();
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(err: unknown) {
      stop();
      return Promise.reject(err);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
