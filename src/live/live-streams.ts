import type { IncomingMessage, ServerResponse } from "node:http";
import type { LiveStream } from "../generated/prisma/client.ts";
import type { JobEvent } from "../protocol/job-events.ts";
import { authorizePublisher } from "./broadcast-admission.ts";
import { dropFeed, finishBroadcast, listenForEnds } from "./broadcast-ends.ts";
import { handOffAll } from "./broadcast-handovers.ts";
import { discardUnrecordedMedia, listenForPublished, onJobEvent, onVideoCanceled } from "./broadcast-job-events.ts";
import { publisherLeft, resumeSessions } from "./broadcast-reconnects.ts";
import { beginBroadcast } from "./broadcast-start.ts";
import { handleFeed, matchesFeed } from "./feed-endpoint.ts";
import { reclaimStatus, watchHolders } from "./holder-watch.ts";
import { log } from "../log.ts";
import { createLiveContext, type LiveDeps } from "./live-context.ts";
import { liveSecondsUsed, monthOf } from "./live-usage.ts";
import type { IngestSessions } from "./publisher.ts";
import { followStream, type LiveStreamEvent } from "./stream-events.ts";

/**
 * Live streams (docs/live.md): publishers' keys, broadcasts (a video and its LIVE job per
 * publish), the feeds workers read, the streams' states and their subscribers. State changes go
 * to every API instance through the event fan-out (`target`); the feeds of this instance's
 * publishers are served by this instance. Each job is a module beside this one, working on one
 * `LiveContext` (live-context.ts); this wires them into what the API uses.
 */
export function createLiveStreams(deps: LiveDeps) {
  const ctx = createLiveContext(deps);
  listenForEnds(ctx);
  listenForPublished(ctx);

  const sessions: IngestSessions = {
    authorize: (key) => authorizePublisher(ctx, key),
    begin: (streamId, input) => beginBroadcast(ctx, streamId, input),
    end: (streamId, feed, reason, unpublished) => publisherLeft(ctx, streamId, feed, reason, unpublished),
  };

  return {
    sessions,

    /** How long a broadcast waits for a dropped publisher its stream names no window for (LIVE_RECONNECT_GRACE_SECONDS). */
    defaultReconnectWindowSeconds: deps.settings.reconnectGraceSeconds,

    /**
     * Ends the stream's broadcast now (endLiveStream), whatever its publisher does: the API instance
     * holding its feed ends it, its publisher is cut off, and its encode finishes with what it has
     * (the stream is ENDED when its job ends). False: the stream has no broadcast whose encode is on.
     */
    endBroadcast: (stream: LiveStream): Promise<boolean> => finishBroadcast(ctx, stream),

    /** The tenant's live time this month, and its quota (minutes; null: none). */
    async usage(tenantId: string): Promise<{ month: Date; secondsUsed: number; minutesLimit: number | null }> {
      const now = new Date();
      const secondsUsed = await liveSecondsUsed(deps.db, tenantId, now);
      return { month: monthOf(now), secondsUsed, minutesLimit: deps.settings.maxMinutesPerTenantMonth };
    },

    /**
     * The sessions of a publisher relayed from another API instance to continue `videoId`'s
     * broadcast (relay.ts); "handing on" while this instance hands it on (handOffAll); null: this
     * instance holds no such broadcast in its grace.
     */
    resumeSessions: (videoId: string): IngestSessions | "handing on" | null => resumeSessions(ctx, sessions, videoId),

    /** Whether `url` is a feed's, which `handleFeed` answers. */
    matchesFeed,

    /** GET a broadcast's feed, signed for the worker its job went to; HEAD says what became of it. */
    handleFeed: (req: IncomingMessage, res: ServerResponse, url: URL): void => handleFeed(ctx, req, res, url),

    /** Deletes an unrecorded broadcast's media as its LIVE job ends; true when it did (the ingestor calls it). */
    discardUnrecordedMedia: (e: JobEvent, videoId: string): Promise<boolean> => discardUnrecordedMedia(ctx, e, videoId),

    /** Applies a LIVE job's event to its stream (the event ingestor calls it once the event is applied). */
    onJobEvent: (e: JobEvent, videoId: string): Promise<void> => onJobEvent(ctx, e, videoId),

    /** A broadcast's video was canceled (cancelVideo): its stream is ENDED and its publisher cut off. */
    onVideoCanceled: (videoId: string): Promise<void> => onVideoCanceled(ctx, videoId),

    /** A stream's events: its state now, then each change and each health sample, until `return()`. */
    follow: (streamId: string): AsyncIterableIterator<LiveStreamEvent> => followStream(ctx, streamId),

    /** The feed of a broadcast whose hold another instance took while this one's session was down. */
    dropFeed: (videoId: string): void => dropFeed(ctx, videoId),

    /** A hold taken again after this instance's session was down: a publisher still here is said on air again. */
    reclaimStatus: (videoId: string): void =>
      void reclaimStatus(ctx, videoId).catch((err) =>
        log.warn("live: a broadcast's stream could not be said on air again", { videoId, err: String(err) }),
      ),

    /**
     * Looks now and then for broadcasts on air that no API instance holds (their holder died or
     * handed them on): their stream says it is disconnected. Returns how to stop.
     */
    watchHolders: (): { stop(): void } => watchHolders(ctx),

    /**
     * Hands this instance's broadcasts on (a deploy: SIGTERM): each one's publisher continues it by
     * reconnecting to any API instance within its reconnect window; one that cannot be handed on ends.
     */
    handOffAll: (): Promise<void> => handOffAll(ctx),
  };
}

export type LiveStreams = ReturnType<typeof createLiveStreams>;
