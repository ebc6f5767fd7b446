import { createHash } from "node:crypto";
import type { Db } from "../db/client.ts";
import type { Prisma, Video } from "../generated/prisma/client.ts";
import { storedMetadata } from "../videos/cms-fields.ts";

/** A client or an interactive transaction: events are queued in the transaction that makes them true. */
type DbClient = Pick<Db, "video" | "webhookEndpoint" | "webhookDelivery">;

export const WEBHOOK_EVENT_TYPES = [
  "video.ready",
  "video.playable",
  "video.failed",
  "variant.ready",
  "job.failed",
  // A live stream's broadcast (docs/live.md): each state it moves to, with the broadcast's video.
  "live_stream.connected",
  "live_stream.live",
  "live_stream.disconnected",
  "live_stream.ended",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/**
 * The id of the event that `parts` describe: the same facts give the same id, so an event
 * applied twice (a redelivered worker message) queues nothing new, and receivers dedupe on it.
 */
export function webhookEventId(type: WebhookEventType, ...parts: string[]): string {
  const h = createHash("sha256")
    .update([type, ...parts].join("\n"))
    .digest("hex");
  const variant = ((parseInt(h[16]!, 16) & 3) | 8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface WebhookEmitter {
  /**
   * Queues `type` for every enabled endpoint of the video's tenant that wants it; `data.video` gains
   * the video's id, externalId, metadata and tags (the rest of `data` is sent as it is).
   */
  emit(
    client: DbClient,
    videoId: string,
    type: WebhookEventType,
    eventId: string,
    data: Record<string, unknown>,
  ): Promise<void>;
  /** `emit` of several events of one type about one video, with one read of the video and its endpoints. */
  emitMany(
    client: DbClient,
    videoId: string,
    type: WebhookEventType,
    events: readonly { eventId: string; data: Record<string, unknown> }[],
  ): Promise<void>;
  /** Wakes the deliverer; call after the transaction that queued events committed. */
  flush(): void;
}

/** What a webhook says about a video: enough for a CMS to act without calling back. */
export function videoWebhookData(video: Video): Record<string, unknown> {
  return {
    id: video.id,
    title: video.title,
    status: video.status,
    playable: video.playable,
    playbackPolicy: video.playbackPolicy,
    duration: video.duration,
    width: video.width,
    height: video.height,
    error: video.error,
  };
}

export function createWebhookEmitter(options: { retryHours: number; onQueued: () => void }): WebhookEmitter {
  const emitter: WebhookEmitter = {
    flush: options.onQueued,
    emit: (client, videoId, type, eventId, data) => emitter.emitMany(client, videoId, type, [{ eventId, data }]),
    async emitMany(client, videoId, type, events) {
      if (events.length === 0) return;
      const video = await client.video.findUnique({
        where: { id: videoId },
        select: { tenantId: true, externalId: true, metadata: true, tags: true },
      });
      if (!video) return;
      const endpoints = await client.webhookEndpoint.findMany({
        where: {
          tenantId: video.tenantId,
          enabled: true,
          OR: [{ events: { isEmpty: true } }, { events: { has: type } }],
        },
        select: { id: true },
      });
      if (endpoints.length === 0) return;
      const createdAt = new Date();
      const giveUpAt = new Date(createdAt.getTime() + options.retryHours * 3600_000);
      // Every event names its video with the CMS's own id and data, so a receiver needs no query.
      const cms = { externalId: video.externalId, metadata: storedMetadata(video.metadata), tags: video.tags };
      await client.webhookDelivery.createMany({
        data: events.flatMap(({ eventId, data }) => {
          const about = {
            ...data,
            video: { id: videoId, ...(data.video as Record<string, unknown> | undefined), ...cms },
          };
          const payload = {
            id: eventId,
            type,
            createdAt: createdAt.toISOString(),
            data: about,
          } as Prisma.InputJsonValue;
          return endpoints.map((e) => ({ eventId, endpointId: e.id, eventType: type, payload, giveUpAt }));
        }),
        skipDuplicates: true,
      });
    },
  };
  return emitter;
}
