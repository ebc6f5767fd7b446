import { z } from "zod";

/**
 * The viewer analytics beacon format, version 1 (docs/analytics.md): what a player sends to
 * `ANALYTICS_PATHS.beacons`, parsed by the API and built by the console's beacon module and the
 * standalone script. Every field is bounded, so a batch is at most a few KiB of work to check.
 */
export const BEACON_FORMAT_VERSION = 1;

/** Where the API takes analytics: a view is started, then batches of beacons are sent for it. */
export const ANALYTICS_PATHS = {
  views: "/analytics/v1/views",
  beacons: "/analytics/v1/beacons",
  script: "/analytics/v1/beacons.js",
} as const;

export const BEACON_LIMITS = {
  /** Events in one batch. */
  eventsPerBatch: 50,
  /** Milliseconds from the view's start that an event may be stamped with (24 h). */
  maxAtMs: 24 * 3600 * 1000,
  /** Longest single duration an event reports (a rebuffer, a slice of watch time, a startup): 1 h. */
  maxDurationMs: 3600 * 1000,
  /** Tallest rendition height. */
  maxHeight: 8640,
  /** Characters of a player error's code and of its message. */
  errorCodeChars: 64,
  errorMessageChars: 200,
  /** Characters of a view token (`va1.…`, about 170). */
  viewTokenChars: 256,
  /** Characters of a playback token presented to start a view. */
  playbackTokenChars: 256,
} as const;

/**
 * The format's zod schemas, made on first use: the client module imports this file for its types
 * and constants only, and no zod code runs (or ships in its bundle) unless something parses.
 */
function makeSchemas() {
  const at = z
    .number()
    .int()
    .min(0)
    .max(BEACON_LIMITS.maxAtMs)
    .describe("milliseconds since the view started (the player's clock)");
  const duration = z.number().int().min(0).max(BEACON_LIMITS.maxDurationMs);
  const height = z.number().int().min(0).max(BEACON_LIMITS.maxHeight);
  const uuid = z
    .string()
    .length(36)
    .regex(/^[0-9a-f-]{36}$/);

  /** One thing a viewer experienced. */
  const BeaconEvent = z.discriminatedUnion("type", [
    /** The first frame played: how long after the view started. Counted once per view. */
    z.strictObject({ type: z.literal("startup"), at, startupMs: duration }),
    /** Playback stalled for lack of data, for `durationMs`, once it resumed (or the view ended). */
    z.strictObject({ type: z.literal("rebuffer"), at, durationMs: duration }),
    /** The player switched rendition: the height it plays now. */
    z.strictObject({ type: z.literal("rendition"), at, height }),
    /** Milliseconds of content played at `height` since the previous `watch` event. */
    z.strictObject({ type: z.literal("watch"), at, height, watchedMs: duration }),
    /** A playback error: hls.js's `details` (or the media element's error code) and whether it ended playback. */
    z.strictObject({
      type: z.literal("failure"),
      at,
      fatal: z.boolean(),
      code: z
        .string()
        .min(1)
        .max(BEACON_LIMITS.errorCodeChars)
        .regex(/^[\w.-]+$/),
      message: z.string().max(BEACON_LIMITS.errorMessageChars).optional(),
    }),
    /** Playback reached the end. */
    z.strictObject({ type: z.literal("completed"), at }),
    /**
     * While a live broadcast plays: how far behind the newest segment the player knows of the
     * frame it shows is, in milliseconds (hls.js's `latency`). Sent with each batch; not stored.
     */
    z.strictObject({ type: z.literal("liveLatency"), at, latencyMs: duration }),
  ]);

  /** A batch of beacons of one view. `seq` grows by one per batch, so a batch sent twice counts once. */
  const BeaconBatch = z.strictObject({
    v: z.literal(BEACON_FORMAT_VERSION),
    videoId: uuid,
    viewToken: z.string().min(1).max(BEACON_LIMITS.viewTokenChars),
    seq: z.number().int().min(0).max(1_000_000),
    events: z.array(BeaconEvent).min(1).max(BEACON_LIMITS.eventsPerBatch),
  });

  /** Starting a view: the playback (its id and, for a SIGNED video, its token). */
  const ViewStart = z.strictObject({
    v: z.literal(BEACON_FORMAT_VERSION),
    videoId: uuid,
    playbackToken: z.string().min(1).max(BEACON_LIMITS.playbackTokenChars).optional(),
  });
  return { BeaconEvent, BeaconBatch, ViewStart };
}
type Schemas = ReturnType<typeof makeSchemas>;
let schemas: Schemas | undefined;
const schemasOf = (): Schemas => (schemas ??= makeSchemas());

/** One thing a viewer experienced (the events of `BeaconBatch`). */
export type BeaconEvent = z.infer<Schemas["BeaconEvent"]>;
/** A batch of beacons of one view. `seq` grows by one per batch, so a batch sent twice counts once. */
export type BeaconBatch = z.infer<Schemas["BeaconBatch"]>;
/** Starting a view: the playback (its id and, for a SIGNED video, its token). */
export type ViewStart = z.infer<Schemas["ViewStart"]>;

/** What starting a view answers. */
export interface ViewStarted {
  viewId: string;
  viewToken: string;
  /** ISO 8601: beacons after this are refused; the player starts a new view. */
  expiresAt: string;
  /** How often the player should send what it has gathered. */
  flushIntervalMs: number;
}

/** Parses a batch; `{ problem }` names the first field that is wrong, for a 400. */
export function parseBeaconBatch(value: unknown): { batch: BeaconBatch } | { problem: string } {
  const parsed = schemasOf().BeaconBatch.safeParse(value);
  return parsed.success ? { batch: parsed.data } : { problem: firstIssue(parsed.error) };
}

export function parseViewStart(value: unknown): { start: ViewStart } | { problem: string } {
  const parsed = schemasOf().ViewStart.safeParse(value);
  return parsed.success ? { start: parsed.data } : { problem: firstIssue(parsed.error) };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  return `${issue.path.length ? issue.path.join(".") : "body"}: ${issue.message}`;
}
