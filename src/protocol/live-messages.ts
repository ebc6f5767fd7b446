/** A live broadcast's job message, and each rendition's health in its `live.progress`. */
import { z } from "zod";
import { readVersion, Traceparent } from "./version.ts";

/** The largest picture a broadcast may have (its width, its height and their product): the ingest refuses more. */
export const MAX_LIVE_INPUT = { width: 3840, height: 2160 } as const;

/**
 * What the API saw of a live publisher's stream when it accepted it (the stream's metadata, which
 * the publisher sends and the API bounded, and the size its H.264 decodes to, checked equal): the
 * ladder is planned from it.
 */
export const LiveInput = z.object({
  width: z.number().int().min(16).max(MAX_LIVE_INPUT.width),
  height: z.number().int().min(16).max(MAX_LIVE_INPUT.height),
  fps: z.number().positive().max(120),
  hasAudio: z.boolean(),
});
export type LiveInput = z.infer<typeof LiveInput>;

/**
 * A live run holds its feed while it lives: GET `feedUrl` with this header (its own id) is answered
 * with no body and kept open; POST with it says the run is done. The connection closing without
 * that POST is the run's death, which the API holding the feed takes the broadcast over for, also
 * after the feed has ended (docs/live.md, "When the encode's process dies").
 */
export const LIVE_PRESENCE_HEADER = "x-videograph-run-presence";

/**
 * Sent with a run's read of its feed when it takes the broadcast over: the media time (seconds from
 * the broadcast's first keyframe) its published media ends at. The feed replays from the keyframe at
 * or before it, so a rung copied from the publisher, which can only start at a keyframe, starts
 * where it ended (docs/live.md, "When the encode's process dies").
 */
export const LIVE_FEED_FROM_HEADER = "x-videograph-feed-from";

/**
 * Sent with a read of the feed that forwards it to a simulcast target (its id): the API gives that
 * reader the codec headers and the live tags from the newest keyframe, cuts it off when it falls
 * behind (a slow target), and never counts it as the encode's reader (docs/live.md, "Simulcast").
 */
export const LIVE_SIMULCAST_HEADER = "x-videograph-simulcast";

/**
 * Sent with a GET of the feed's address to ask for its stream's simulcast targets instead of the
 * feed (answered as `SimulcastTargets`, JSON): each target's URL with its stream key, decrypted by
 * the API holding the feed, over the feed's signed URL. A run asks again every few seconds, so a
 * target added or removed on air is forwarded to, or stopped.
 */
export const LIVE_SIMULCAST_TARGETS_HEADER = "x-videograph-simulcast-targets";

/** The stream's simulcast targets as the API holding its feed answers them (`LIVE_SIMULCAST_TARGETS_HEADER`). */
export const SimulcastTargets = z.object({
  /** URL_IMPORT_ALLOW_PRIVATE (tests only): targets may be loopback and private addresses. */
  allowPrivateAddresses: z.boolean(),
  targets: z
    .array(
      z.object({
        id: z.uuid(),
        /** Where ffmpeg connects: rtmp, rtmps or srt, the stream key in it; a secret. */
        url: z.string().min(1).max(2048),
        /** The stream key in `url`, alone: taken out of every error the run reports. */
        streamKey: z.string().min(1).max(256),
      }),
    )
    .max(64),
});
export type SimulcastTargets = z.infer<typeof SimulcastTargets>;

/**
 * Encodes a live broadcast (docs/live.md): reads the publisher's stream as FLV from `feedUrl` (the
 * API that accepted the publisher serves it, the token in the URL bound to this video) until it
 * ends, and publishes an HLS ladder under `{outputPrefix}/hls/` as segments are cut: event
 * playlists while live, ended (a VOD recording) when the feed ends. Ends with `job.succeeded`.
 */
export const LiveJobMessage = z.object({
  v: readVersion,
  type: z.literal("live"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  outputPrefix: z.string().min(1),
  feedUrl: z.url({ protocol: /^https?$/ }),
  input: LiveInput,
  options: z.object({
    segmentSeconds: z.number().min(1).max(10),
    /** The longest broadcast: the encode stops there and the recording ends. */
    maxDurationSeconds: z.number().positive(),
    /**
     * Whether the recording is kept (its stream's `recording`): when false, the worker makes no
     * recording source or storyboard at the end, and the API deletes the broadcast's media.
     */
    record: z.boolean().default(true),
    /**
     * How long the broadcast waits for its publisher (its stream's reconnect window): a run whose
     * feed's connection broke (the API instance holding it died) waits this long for the feed to come
     * back through another instance before it ends the broadcast with what was published. Default:
     * LIVE_RECONNECT_GRACE_SECONDS' default, for messages of an API before it was sent.
     */
    reconnectWindowSeconds: z.number().min(0).max(120).default(30),
  }),
});
export type LiveJobMessage = z.infer<typeof LiveJobMessage>;

/** One rendition of a live encode, in `live.progress`. */
export const LiveRenditionHealth = z.object({
  /** The rung's name (`720p`, `audio`). */
  name: z.string().min(1).max(32),
  /** Segments of it published so far. */
  segments: z.number().int().nonnegative(),
  /** Bits per second of its newest segments (up to three), as published; null before its first. */
  bitrate: z.number().int().nonnegative().nullable(),
  /** Whether it is the publisher's own video, copied (LIVE_PASSTHROUGH), not encoded. */
  copied: z.boolean(),
});
export type LiveRenditionHealth = z.infer<typeof LiveRenditionHealth>;
