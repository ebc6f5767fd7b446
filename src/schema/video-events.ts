import { builder } from "../builder.ts";
import type { Context } from "../context.ts";
import { followVideoEvents } from "../events/follow-video.ts";
import type { EncoderFigures, VideoEventPayload } from "../events/video-events.ts";
import type { Video } from "../generated/prisma/client.ts";
import { VariantRef } from "./variant.ts";
import { VideoRef, VideoStatusEnum } from "./video.ts";
import { notFoundGraphQLError } from "./errors.ts";

type EventOfKind<K extends VideoEventPayload["kind"]> = Extract<VideoEventPayload, { kind: K }>;

const EVENT_TYPE_NAMES: Record<VideoEventPayload["kind"], string> = {
  status: "VideoStatusEvent",
  variantProgress: "VariantProgressEvent",
  variantStatus: "VariantStatusEvent",
  renderProgress: "RenderProgressEvent",
  queuePosition: "QueuePositionEvent",
};

export const VideoEventInterface = builder.interfaceRef<VideoEventPayload>("VideoEvent").implement({
  description: "Something happened to a video; every event carries the video's current state.",
  resolveType: (e) => EVENT_TYPE_NAMES[e.kind],
  fields: (t) => ({
    // Snapshots carry the row's scalar fields; relations are loaded on demand by the Prisma plugin.
    video: t.field({ type: VideoRef, resolve: (e) => e.video as unknown as Video }),
  }),
});

builder.objectRef<EventOfKind<"status">>("VideoStatusEvent").implement({
  description: "The video's status or `playable` changed (also sent first, with the current state).",
  interfaces: [VideoEventInterface],
  fields: (t) => ({ status: t.field({ type: VideoStatusEnum, resolve: (e) => e.video.status }) }),
});

builder.objectRef<EventOfKind<"variantStatus">>("VariantStatusEvent").implement({
  description: "A variant became READY or FAILED.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({ variant: t.field({ type: VariantRef, resolve: (e) => e.variant as never }) }),
});

/**
 * The GraphQL field of each of a `job.progress`'s encoder figures: one added to the contract is a
 * compile error here until it has its entry (a figure that is not a number needs its own field type).
 */
const ENCODER_FIGURE_FIELDS: {
  [K in keyof EncoderFigures]-?: EncoderFigures[K] extends number | null ? { description?: string } : never;
} = {
  fps: { description: "Frames encoded per second (summed over a split transcode's runs)." },
  speed: { description: "Media seconds encoded per wall second (summed over a split transcode's runs)." },
  etaSeconds: {
    description:
      "Seconds until the transcode has encoded all its media at the current speed (a split one's queued chunks too); null until the first figures.",
  },
};

builder.objectRef<EventOfKind<"variantProgress">>("VariantProgressEvent").implement({
  description: "Encoding progress of one variant, sampled about once a second.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({
    variant: t.field({ type: VariantRef, resolve: (e) => e.variant as never }),
    ...Object.fromEntries(
      Object.entries(ENCODER_FIGURE_FIELDS).map(([name, { description }]) => [
        name,
        t.float({ nullable: true, description, resolve: (e) => e[name as keyof EncoderFigures] }),
      ]),
    ),
  }),
});

builder.objectRef<EventOfKind<"renderProgress">>("RenderProgressEvent").implement({
  description:
    "Progress of the render that makes a video's source (a Manim scene's animations, a composition's questions), " +
    "before the ladder's progress.",
  interfaces: [VideoEventInterface],
  fields: (t) => ({
    index: t.int({ description: "The animation or question being rendered, from 0.", resolve: (e) => e.index }),
    count: t.int({
      nullable: true,
      description: "How many there are, when known before rendering.",
      resolve: (e) => e.count,
    }),
    percent: t.float({ description: "Of the current one, 0..100.", resolve: (e) => e.percent }),
    description: t.string({
      nullable: true,
      description: "What is being rendered, e.g. `Create(Square)`.",
      resolve: (e) => e.description,
    }),
    renderedCount: t.int({ description: "Items rendered so far.", resolve: (e) => e.renderedCount }),
    cachedCount: t.int({
      description: "Items taken from the cache so far (Manim animations unchanged since an earlier render).",
      resolve: (e) => e.cachedCount,
    }),
  }),
});

builder.subscriptionFields((t) => ({
  videoEvents: t.field({
    type: VideoEventInterface,
    description:
      "Status and per-variant progress of one video. Starts with the current state; " +
      "ends after READY, FAILED, CANCELED or DISCARDED.",
    authScopes: { scope: "videos:read" },
    args: { videoId: t.arg.id({ required: true }) },
    subscribe: async (_root, { videoId }, ctx: Context) => {
      const events = await followVideoEvents(ctx, String(videoId));
      if (!events) throw notFoundGraphQLError("video", String(videoId));
      return events;
    },
    resolve: (event) => event,
  }),
}));
