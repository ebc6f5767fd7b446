import type { CostSettings } from "../costs/cost-model.ts";
import type { Db } from "../db/client.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import type { ApiStorage } from "../storage/types.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import type { WebhookEmitter } from "../webhooks/events.ts";
import type { BroadcastHolds } from "./broadcast-holds.ts";
import type { LiveFeed } from "./feed.ts";
import type { FeedSpools } from "./feed-spool.ts";
import type { Capability } from "../protocol/worker-messages.ts";
import { createEndedFeeds } from "./ended-feeds.ts";
import type { SimulcastSettings } from "../simulcast/simulcast-settings.ts";

interface LiveSettings {
  segmentSeconds: number;
  lowLatencySegmentSeconds: number;
  maxStreamsPerTenant: number;
  /** A tenant's broadcast minutes per calendar month (UTC); null: no quota. */
  maxMinutesPerTenantMonth: number | null;
  maxDurationSeconds: number;
  /**
   * A publisher that reconnects within this continues its broadcast (the same video), unless its
   * stream says otherwise.
   */
  reconnectGraceSeconds: number;
  /** A worker's live slots count while it heartbeated within this (docs/live.md "Capacity"). */
  workerAliveSeconds: number;
  /** The base URL workers reach this API's feeds at. */
  feedBaseUrl: () => string;
}

/** What the live streams are made of (createLiveStreams). */
export interface LiveDeps {
  db: Db;
  pubSub: VideoPubSub;
  dispatcher: { kick(): void };
  signer: UrlSigner;
  /** Where a broadcast whose recording is not kept has its media deleted at its end. */
  storage: Pick<ApiStorage, "deletePrefix">;
  /** Tells a worker to stop one run of a job (a broadcast's encode that another run takes over). */
  stopRun(jobId: string, attempt: number, workerId: string, runId: string): Promise<void>;
  /** Withdraws a job message from the transport (ApiTransport.withdrawJob), where it can. */
  withdrawJob?(capability: Capability, messageId: string): Promise<void>;
  /** Whether media storage is full now (local storage; a cloud store never says so here). */
  storageFull?: () => Promise<boolean>;
  /** Which instance holds each broadcast, a dead one's let go by Postgres (broadcast-holds.ts). */
  holds: BroadcastHolds;
  /** Where feeds keep what their encode has not published on this instance's disk (feed-spool.ts); none: memory only. */
  spools?: FeedSpools;
  costs: CostSettings;
  webhooks: WebhookEmitter;
  /** The event fan-out: state changes and a broadcast's end reach every API instance through it. */
  target: EventTarget;
  settings: LiveSettings;
  /** Where broadcasts are forwarded to (docs/live.md, "Simulcast"); none: no target is forwarded to. */
  simulcast?: SimulcastSettings;
}

/**
 * A broadcast held here, with how its stream said to end it when it started: how long a dropped
 * publisher is waited for, and whether an unpublish ends it at once.
 */
export interface HeldBroadcast {
  feed: LiveFeed;
  streamId: string;
  startedAt: number;
  reconnectWindowSeconds: number;
  endOnUnpublish: boolean;
  /** What its recording is known to lack (recording-gaps.ts). */
  gaps: RecordingGaps;
}

/** What a broadcast held here knows of its recording's gaps (recording-gaps.ts). */
export interface RecordingGaps {
  /** Seconds lacked before this instance held it (its earlier holders', read when it adopted it). */
  before: number;
  /** What an earlier holder had received, until the first run asking for a point here says where that is. */
  received: number | null;
  /** Seconds lacked since, per takeover (the runs of one takeover ask from one point: counted once). */
  since: Map<string, number>;
  /** The media time (seconds) a dead holder's spool gave back when this instance adopted it, or null. */
  restored: { fromSeconds: number; toSeconds: number } | null;
}

/**
 * What every part of the live streams works on (the `broadcast-*.ts` modules beside this one): the
 * deps, and this instance's broadcasts.
 */
export interface LiveContext extends LiveDeps {
  /** This instance's broadcasts, by video. */
  feeds: Map<string, HeldBroadcast>;
  /** Broadcasts whose publisher left, waiting for it to reconnect: by stream. */
  graces: Map<string, { videoId: string; timer: NodeJS.Timeout }>;
  /**
   * Broadcasts whose grace ran out here and whose encode has not ended yet: their publisher coming
   * back starts a new broadcast here at once, instead of relaying to this instance's own feed
   * address (which refuses a broadcast out of its grace) as if another instance held it. The
   * oldest are forgotten beyond ENDED_HERE_KEPT (broadcast-ends.ts: an encode whose end never arrives).
   */
  endedHere: Set<string>;
  /** Broadcasts this instance is handing on (handOffAll) until their job waits for another instance. */
  handingOn: Set<string>;
  /** Feeds ended here whose encode goes on: a run taking it over gets their tail (ended-feeds.ts). */
  endedFeeds: ReturnType<typeof createEndedFeeds<HeldBroadcast>>;
}

export function createLiveContext(deps: LiveDeps): LiveContext {
  return {
    ...deps,
    feeds: new Map(),
    graces: new Map(),
    endedHere: new Set(),
    handingOn: new Set(),
    endedFeeds: createEndedFeeds<HeldBroadcast>(),
  };
}

/**
 * The video a live fan-out event names (a broadcast's end, endLiveStream's ask, what its encode
 * published); null for the fan-out's resync after its connection came back, which names none.
 */
export function videoIdOf(event: Event): string | null {
  const detail = (event as CustomEvent<{ videoId?: unknown }>).detail;
  return typeof detail?.videoId === "string" ? detail.videoId : null;
}

/** The LIVE job of a broadcast whose encode is on (QUEUED or RUNNING), or null. */
export const liveJobOf = (ctx: LiveContext, videoId: string) =>
  ctx.db.job.findFirst({ where: { videoId, kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } } });
