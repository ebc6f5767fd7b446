import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Repeater } from "graphql-yoga";
import type { Db, DbTransaction as Tx } from "../db/client.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import { liveBehindSeconds, liveEncodeSpeed, liveFeedReplayBytes } from "../metrics.ts";
import type { VideoMetadata } from "../videos/cms-fields.ts";
import type { LiveStream, LiveStreamStatus, Video } from "../generated/prisma/client.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import { announceQueuedJob, createJob, parseJobInput, type StoredJobInput } from "../jobs/create-job.ts";
import { userFacingError } from "../jobs/user-facing-error.ts";
import { log } from "../log.ts";
import {
  Capability,
  endsRun,
  type JobEvent,
  LIVE_PRESENCE_HEADER,
  type LiveInput,
  type LiveRenditionHealth,
} from "../protocol/messages.ts";
import { videoPrefix } from "../protocol/storage-layout.ts";
import type { ApiStorage } from "../storage/types.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import { createVideo, NEW_VIDEO_DEFAULTS } from "../videos/creation-options.ts";
import type { BroadcastHolds } from "./broadcast-holds.ts";
import { createEndedFeeds } from "./ended-feeds.ts";
import { LiveFeed } from "./feed.ts";
import { countLiveSlots, lockLiveAdmission, whyNoLiveSlot } from "./live-capacity.ts";
import { chargeBroadcast, liveSecondsUsed, monthOf } from "./live-usage.ts";
import type { IngestSessions } from "./publisher.ts";
import { RelayFeed, type RelayRefusal, signedRelayUrl } from "./relay.ts";
import { hashStreamKey, UNKNOWN_STREAM_KEY } from "./stream-keys.ts";
import { videoWebhookData, type WebhookEmitter, type WebhookEventType, webhookEventId } from "../webhooks/events.ts";

/** The fan-out topic that tells every API instance a broadcast is over (its feed, if there, ends). */
const BROADCAST_ENDED = "liveBroadcastEnded";
/** The fan-out topic that asks the API instance holding a broadcast's feed to end it now (endLiveStream). */
const BROADCAST_FINISH = "liveBroadcastFinish";
/** The fan-out topic that tells the API instance holding a broadcast's feed how much its encode published. */
const BROADCAST_PUBLISHED = "liveBroadcastPublished";

/** The most seconds a stream's broadcast may wait for its publisher (the worker's feed read gives up at 180 s). */
export const MAX_RECONNECT_WINDOW_SECONDS = 120;

/** Why a publisher is refused while media storage is full: its broadcast could publish nothing. */
const STORAGE_FULL = "the server's storage is full: no broadcast can start until there is room";

/** A broadcast that may not start, thrown inside its transaction (which undoes its claim). */
class BroadcastRefused extends Error {}

/** Where workers read a broadcast's feed: GET {LIVE_FEED_URL}/live/v1/feeds/{videoId}.flv?expires&sig. */
const FEED_PATH_PREFIX = "/live/v1/feeds/";
/** How many broadcasts ended here by their grace an instance remembers until their encode ends. */
const ENDED_HERE_KEPT = 10_000;
/**
 * A broadcast's feed without a reader this long while it goes on has lost its encode (its worker
 * died, or fell too far behind): its job is queued again for another run to take it over. Longer
 * than a run takes between its sample of the feed and its encode's read.
 */
const READERLESS_TAKEOVER_MS = 3000;
/**
 * How long a publisher's reconnect waits for an API instance handing its broadcast on (a deploy)
 * to let go of it, before it is refused (its encoder tries again).
 */
const HAND_ON_WAIT_MS = 10_000;

/** What a change of state may write beside the status. */
type StatusExtra = { lastError?: string | null; activeVideoId?: string };

/** The states a broadcast moves its stream to, and the webhook each sends. */
type BroadcastStatus = Exclude<LiveStreamStatus, "IDLE">;
const WEBHOOK_OF_STATUS = {
  CONNECTED: "live_stream.connected",
  LIVE: "live_stream.live",
  DISCONNECTED: "live_stream.disconnected",
  ENDED: "live_stream.ended",
} as const satisfies Record<BroadcastStatus, WebhookEventType>;

/** A live encode's health as the worker last reported it (`live.progress`). */
export interface LiveHealth {
  mediaSeconds: number;
  fps: number | null;
  speed: number | null;
  segments: number;
  behindSeconds: number | null;
  /** Input bit rate over the broadcast so far, from the bytes the ingest received. */
  inputBitrate: number | null;
  /** The publisher's keyframe interval (seconds) and frame rate, over its last group of pictures. */
  inputKeyframeInterval: number | null;
  inputFps: number | null;
  /** Each rendition's segments, bit rate and whether it is copied (none from workers before they reported it). */
  renditions: LiveRenditionHealth[];
}

/** What `liveStreamEvents` yields: the stream as it is now, and the encode's health while live. */
export interface LiveStreamEvent {
  stream: LiveStream;
  health: LiveHealth | null;
}

export interface LiveSettings {
  segmentSeconds: number;
  lowLatencySegmentSeconds: number;
  maxStreamsPerTenant: number;
  /** A tenant's broadcast minutes per calendar month (UTC); null: no quota. */
  maxMinutesPerTenantMonth: number | null;
  maxDurationSeconds: number;
  /** A publisher that reconnects within this continues its broadcast (the same video), unless its stream says otherwise. */
  reconnectGraceSeconds: number;
  /** A worker's live slots count while it heartbeated within this (docs/live.md "Capacity"). */
  workerAliveSeconds: number;
  /** The base URL workers reach this API's feeds at. */
  feedBaseUrl: () => string;
}

/**
 * Live streams (docs/live.md): publishers' keys, broadcasts (a video and its LIVE job per
 * publish), the feeds workers read, the streams' states and their subscribers. State changes go
 * to every API instance through the event fan-out (`target`); the feeds of this instance's
 * publishers are served by this instance.
 */
export function createLiveStreams(deps: {
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
  costs: CostSettings;
  webhooks: WebhookEmitter;
  target: EventTarget;
  settings: LiveSettings;
}) {
  const { db, settings } = deps;
  /**
   * This instance's broadcasts, by video, with how their stream said to end them when they started:
   * how long a dropped publisher is waited for, and whether an unpublish ends them at once.
   */
  const feeds = new Map<
    string,
    { feed: LiveFeed; streamId: string; startedAt: number; reconnectWindowSeconds: number; endOnUnpublish: boolean }
  >();
  /** Broadcasts whose publisher left, waiting for it to reconnect: by stream. */
  const graces = new Map<string, { videoId: string; timer: NodeJS.Timeout }>();
  /**
   * Broadcasts whose grace ran out here and whose encode has not ended yet: their publisher coming
   * back starts a new broadcast here at once, instead of relaying to this instance's own feed
   * address (which refuses a broadcast out of its grace) as if another instance held it. The
   * oldest are forgotten beyond ENDED_HERE_KEPT (an encode whose end never arrives).
   */
  const endedHere = new Set<string>();
  /** Feeds ended here whose encode goes on: a run taking it over gets their tail (ended-feeds.ts). */
  const endedFeeds = createEndedFeeds();
  /** Broadcasts this instance is handing on (handOffAll) until their job waits for another instance. */
  const handingOn = new Set<string>();
  const topic = (streamId: string) => `liveStream:${streamId}`;
  // A broadcast's end reaches the API instance serving its feed, whichever applied it.
  deps.target.addEventListener(BROADCAST_ENDED, (event) =>
    endFeed((event as CustomEvent<{ videoId: string }>).detail.videoId),
  );
  const endBroadcast = (videoId: string) =>
    deps.target.dispatchEvent(new CustomEvent(BROADCAST_ENDED, { detail: { videoId } }));
  deps.target.addEventListener(BROADCAST_PUBLISHED, (event) => {
    const { videoId, seconds } = (event as CustomEvent<{ videoId: string; seconds: number }>).detail;
    (feeds.get(videoId)?.feed ?? endedFeeds.get(videoId))?.published(seconds);
  });
  deps.target.addEventListener(BROADCAST_FINISH, (event) => {
    const { videoId } = (event as CustomEvent<{ videoId: string }>).detail;
    const feed = takeFeed(videoId);
    if (!feed) return;
    log.info("live: broadcast ended by endLiveStream", { videoId });
    feed.end();
  });

  function announce(streamId: string, health: LiveHealth | null = null): void {
    deps.target.dispatchEvent(new CustomEvent(topic(streamId), { detail: { health } }));
  }

  /**
   * Moves a stream to `status`: its webhook (with the broadcast's video) queued in the same
   * transaction, then its subscribers told.
   */
  async function setStatus(streamId: string, status: BroadcastStatus, extra: StatusExtra = {}) {
    const changed = await db.$transaction(async (tx) => {
      // An end applied again (a redelivered event) changes nothing and sends no second webhook.
      if (status === "ENDED" && !(await countEndedBroadcast(tx, streamId))) return false;
      await changeStatus(tx, streamId, status, extra);
      return true;
    });
    if (!changed) return;
    deps.webhooks.flush();
    announce(streamId);
  }

  /**
   * The stream's move to ENDED, claimed (false: it was ENDED already, so an end applied twice sends
   * no second webhook), and its broadcast's end added to its tenant's month.
   */
  async function countEndedBroadcast(tx: Tx, streamId: string): Promise<boolean> {
    const claim = await tx.liveStream.updateMany({
      where: { id: streamId, status: { not: "ENDED" } },
      data: { status: "ENDED" },
    });
    if (claim.count === 0) return false;
    const stream = await tx.liveStream.findUniqueOrThrow({ where: { id: streamId } });
    if (stream.activeVideoId) await chargeBroadcast(tx, stream.activeVideoId);
    return true;
  }

  /**
   * Ends a broadcast held here when it has been on air its longest length by the wall clock
   * (LIVE_MAX_DURATION_SECONDS, or the month's time left when it started), in its reconnect grace
   * or not: its feed ends (its encode finishes) and its publisher is cut off, the stream's lastError
   * saying why. The worker's cap on media time stays behind it, for timestamps that run fast.
   */
  function endAtLongestLength(videoId: string, streamId: string, feed: LiveFeed, longestSeconds: number): void {
    const entry = feeds.get(videoId);
    if (!entry) return;
    const timer = setTimeout(
      () => {
        if (feeds.get(videoId)?.feed !== feed) return;
        const reason = `the broadcast reached its longest length (${longestSeconds} s of wall-clock time)`;
        log.info("live: broadcast ended at its longest length", { streamId, videoId, longestSeconds });
        void db.liveStream
          .updateMany({ where: { id: streamId, activeVideoId: videoId }, data: { lastError: reason } })
          .then(() => announce(streamId))
          .catch((err) => log.error("live: the stream's lastError could not be written", { err }))
          .finally(() => {
            // Its publisher back while the encode finishes starts a new broadcast (takeFeed).
            if (feeds.get(videoId)?.feed === feed) takeFeed(videoId)?.end();
          });
      },
      Math.max(0, entry.startedAt + longestSeconds * 1000 - Date.now()),
    );
    timer.unref();
    feed.onEnd(() => clearTimeout(timer));
  }

  /**
   * Seconds of broadcast the tenant has left this month (LIVE_MAX_MINUTES_PER_TENANT_MONTH), or
   * null without a quota.
   */
  async function secondsLeft(client: Tx | Db, tenantId: string): Promise<number | null> {
    if (settings.maxMinutesPerTenantMonth === null) return null;
    return settings.maxMinutesPerTenantMonth * 60 - (await liveSecondsUsed(client, tenantId, new Date()));
  }

  /** Why a tenant with `left` seconds this month may not start a broadcast, or null. */
  const quotaSpent = (left: number | null) =>
    left !== null && left < 1
      ? `the tenant's live minutes for this month are used up (LIVE_MAX_MINUTES_PER_TENANT_MONTH: ${settings.maxMinutesPerTenantMonth})`
      : null;

  /** The row's change and its webhook, in the caller's transaction (setStatus, or a broadcast's start). */
  async function changeStatus(tx: Tx, streamId: string, status: BroadcastStatus, extra: StatusExtra): Promise<void> {
    const stream = await tx.liveStream.update({ where: { id: streamId }, data: { status, ...extra } });
    if (!stream.activeVideoId) return;
    const video = await tx.video.findUnique({ where: { id: stream.activeVideoId } });
    if (!video) return;
    const type = WEBHOOK_OF_STATUS[status];
    const eventId = webhookEventId(type, stream.id, video.id, stream.updatedAt.toISOString());
    await deps.webhooks.emit(tx, video.id, type, eventId, {
      liveStream: { id: stream.id, title: stream.title, status: stream.status, lastError: stream.lastError },
      video: videoWebhookData(video),
    });
  }

  /** Ends a broadcast's feed on this instance (its publisher is cut off), once its encode has ended. */
  function endFeed(videoId: string): void {
    endedHere.delete(videoId);
    endedFeeds.drop(videoId);
    releaseHold(videoId);
    const entry = feeds.get(videoId);
    if (!entry) return;
    feeds.delete(videoId);
    const grace = graces.get(entry.streamId);
    if (grace?.videoId === videoId) {
      clearTimeout(grace.timer);
      graces.delete(entry.streamId);
    }
    entry.feed.end();
  }

  /** Lets another instance adopt the broadcast: its encode ended, or it was handed on. */
  function releaseHold(videoId: string): void {
    deps.holds
      .release(videoId)
      .catch((err) => log.warn("live: a broadcast's hold could not be let go", { videoId, err: String(err) }));
  }

  /**
   * Takes a broadcast's feed off this instance (its grace ran out, its publisher unpublished,
   * endLiveStream) and returns it for the caller to end: its encode then finishes with what it
   * has. A publisher coming back meanwhile starts a new broadcast (`endedHere`).
   */
  function takeFeed(videoId: string): LiveFeed | null {
    const entry = feeds.get(videoId);
    if (!entry) return null;
    feeds.delete(videoId);
    const grace = graces.get(entry.streamId);
    if (grace?.videoId === videoId) {
      clearTimeout(grace.timer);
      graces.delete(entry.streamId);
    }
    endedHere.add(videoId);
    if (endedHere.size > ENDED_HERE_KEPT) endedHere.delete(endedHere.values().next().value!);
    endedFeeds.keep(videoId, entry.feed);
    return entry.feed;
  }

  /**
   * Watches a broadcast's feed held here for its encode's reader going away while the broadcast
   * goes on: after READERLESS_TAKEOVER_MS without one, its LIVE job is queued again at once (its
   * runs abandoned, their workers told to stop them), so another run takes it over and goes on with
   * its playlists (render-worker/media/live-continuation.ts) without waiting for the transport to
   * notice the dead run. Not once the feed has run its encode's length (the encode's own cap). After
   * the feed's end (kept until its encode ends), the same when no run holds it any more.
   * `awaitingReader`: the feed has none yet and its run is expected to ask for it (a broadcast
   * adopted here whose run waits for its feed): the same wait starts now.
   */
  function watchReaders(videoId: string, feed: LiveFeed, awaitingReader = false): void {
    let timer: NodeJS.Timeout | null = null;
    const arm = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        const ended = endedFeeds.get(videoId) === feed;
        if (!ended && (feed.ended || feeds.get(videoId)?.feed !== feed)) return;
        if (feed.readerCount > 0 || (ended && feed.presenceCount > 0)) return;
        takeOverEncode(videoId, feed.receivedSeconds).catch((err) =>
          log.error("live: the broadcast's encode could not be queued again", { videoId, err }),
        );
      }, READERLESS_TAKEOVER_MS);
      timer.unref();
    };
    feed.onReaderGone(arm);
    if (awaitingReader) arm();
  }

  async function takeOverEncode(videoId: string, receivedSeconds: number): Promise<void> {
    const job = await db.job.findFirst({
      where: { videoId, kind: "LIVE", status: "RUNNING" },
      select: { id: true, attempt: true, input: true },
    });
    if (!job || receivedSeconds >= parseJobInput("LIVE", job.input).options.maxDurationSeconds - 1) return;
    const runs = await requeueEncode(job, ["RUNNING"], null);
    if (!runs) return;
    log.warn("live: the broadcast's encode lost its feed; queued again for another run to take it over", {
      videoId,
      jobId: job.id,
      runs: runs.map((r) => r.workerId),
    });
    deps.dispatcher.kick();
  }

  /**
   * A broadcast's LIVE job back in the queue for another run to take it over, due at `runAfter`
   * (null: now), if it is still in one of `statuses`: its runs ABANDONED (what they report after is
   * a superseded run's), their workers told to stop them (a dead one hears nothing); `input`, when
   * given, is the job's from now on (its feed's new address). The runs, or null when the job had
   * moved on.
   */
  async function requeueEncode(
    job: { id: string; attempt: number },
    statuses: ("QUEUED" | "RUNNING")[],
    runAfter: Date | null,
    input?: StoredJobInput<"LIVE">,
  ): Promise<{ workerId: string }[] | null> {
    const runs = await db.jobRun.findMany({
      where: { jobId: job.id, attempt: job.attempt, status: "RUNNING" },
      select: { id: true, workerId: true, runId: true },
    });
    // Every message the attempt's runs were delivered (a run handed back at shutdown is ABANDONED already).
    const delivered = await db.jobRun.findMany({
      where: { jobId: job.id, attempt: job.attempt, deliveryMessageId: { not: null } },
      select: { deliveryMessageId: true },
    });
    const { dispatchedTo } = await db.job.findUniqueOrThrow({ where: { id: job.id }, select: { dispatchedTo: true } });
    const queued = await db.$transaction(async (tx) => {
      const { count } = await tx.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: { in: statuses } },
        data: {
          status: "QUEUED",
          dispatchedAt: null,
          workerId: null,
          runId: "",
          runAfter,
          ...(input ? { input } : {}),
        },
      });
      if (count === 0) return false;
      await tx.jobRun.updateMany({
        where: { id: { in: runs.map((r) => r.id) }, status: "RUNNING" },
        data: { status: "ABANDONED", finishedAt: new Date() },
      });
      return true;
    });
    if (!queued) return null;
    for (const run of runs) if (run.runId) await deps.stopRun(job.id, job.attempt, run.workerId, run.runId);
    // The runs' messages go too: a handed-back or lapsed one delivered again would be a second run
    // beside the one the dispatcher sends now (docs/live.md, "When the encode's process dies").
    await withdrawDeliveries(dispatchedTo, delivered);
    return runs;
  }

  /** Withdraws the transport's messages of a broadcast's runs taken over (`dispatchedTo`: their queue). */
  async function withdrawDeliveries(dispatchedTo: string | null, runs: { deliveryMessageId: string | null }[]) {
    const queue = Capability.safeParse(dispatchedTo ?? "live");
    for (const messageId of new Set(runs.map((r) => r.deliveryMessageId)))
      if (messageId && queue.success)
        await deps
          .withdrawJob?.(queue.data, messageId)
          .catch((err) =>
            log.warn("live: a taken-over run's message could not be withdrawn", { messageId, err: String(err) }),
          );
  }

  /**
   * Why the tenant may not start another broadcast (LIVE_MAX_STREAMS_PER_TENANT on air, not
   * counting `starting`, the stream asking), or null.
   */
  async function onAirOverLimit(client: Tx | Db, tenantId: string, starting: string): Promise<string | null> {
    const onAir = await client.liveStream.count({
      where: { tenantId, id: { not: starting }, status: { in: ["CONNECTED", "LIVE"] } },
    });
    return onAir >= settings.maxStreamsPerTenant
      ? `the tenant has ${onAir} live streams on air (LIVE_MAX_STREAMS_PER_TENANT)`
      : null;
  }

  /** A broadcast's video and its LIVE job, in the caller's transaction. */
  async function createBroadcast(
    tx: Tx,
    stream: LiveStream,
    videoId: string,
    input: LiveInput,
    segmentSeconds: number,
    maxDurationSeconds: number,
  ): Promise<Video> {
    const video = await createVideo(
      tx,
      {
        id: videoId,
        tenantId: stream.tenantId,
        title: stream.title,
        playbackPolicy: stream.playbackPolicy,
        source: "LIVE",
        status: "QUEUED",
        liveStreamId: stream.id,
        width: input.width,
        height: input.height,
        fps: input.fps,
        hasAudio: input.hasAudio,
      },
      {
        ...NEW_VIDEO_DEFAULTS,
        staticRenditions: [],
        // The CMS's data the stream holds for its broadcasts (an externalId names one video: none).
        description: stream.description,
        metadata: stream.metadata as VideoMetadata,
        tags: stream.tags,
        externalId: null,
      },
    );
    const options = {
      segmentSeconds,
      maxDurationSeconds,
      record: stream.recording,
      reconnectWindowSeconds: stream.reconnectWindowSeconds ?? settings.reconnectGraceSeconds,
    };
    // A broadcast is not encoded again from its start: a run that takes it over goes on from what
    // is published (its feed, on the instance holding it, keeps what is not).
    await createJob(
      tx,
      { kind: "LIVE", videoId: video.id, maxAttempts: 1, input: { feedUrl: signedFeedUrl(video.id), input, options } },
      deps.costs,
    );
    return video;
  }

  /** Where workers read a broadcast's feed on this instance, signed for as long as a broadcast may last. */
  function signedFeedUrl(videoId: string): string {
    const feedPath = `${FEED_PATH_PREFIX}${videoId}.flv`;
    return `${settings.feedBaseUrl()}${deps.signer.sign(feedPath, settings.maxDurationSeconds + 3600)}`;
  }

  /**
   * Hands a broadcast held here on (a deploy stops this instance): its encode's runs are stopped
   * without ending it (they are told to stop before the feed's connection goes, and what they
   * report then is a superseded run's), and its job waits, queued, for its publisher's reconnect to
   * any API instance (adoptBroadcast) until its reconnect window has passed; then it is dispatched
   * as it is, and its run ends it with what was published (render-worker/handlers/live.ts).
   */
  async function handOff(videoId: string, reconnectWindowSeconds: number): Promise<boolean> {
    const job = await db.job.findFirst({
      where: { videoId, kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } },
      select: { id: true, attempt: true },
    });
    if (!job) return false;
    const waitUntil = new Date(Date.now() + reconnectWindowSeconds * 1000);
    if (!(await requeueEncode(job, ["QUEUED", "RUNNING"], waitUntil))) return false;
    log.info("live: broadcast handed on; its publisher's reconnect to any API instance continues it", {
      videoId,
      until: waitUntil.toISOString(),
    });
    return true;
  }

  /**
   * Takes `videoId`'s hold for this instance, waiting up to `waitMs` for an instance handing it on
   * to let go (a deploy: its job is being put back); false: a live instance holds it.
   */
  async function takeHold(videoId: string, waitMs: number): Promise<boolean> {
    const until = Date.now() + waitMs;
    for (;;) {
      if (await deps.holds.take(videoId)) return true;
      if (Date.now() >= until) return false;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** The LIVE job of a broadcast whose encode is on (QUEUED or RUNNING), or null. */
  const liveJobOf = (videoId: string) =>
    db.job.findFirst({ where: { videoId, kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } } });

  /**
   * Whether the stream on air (CONNECTED, LIVE) has lost the API instance holding its broadcast: its
   * encode is on, and no instance holds it (its holder was killed, or crashed). Its publisher's
   * reconnect, to any instance, then continues it (adoptBroadcast).
   */
  async function holderGone(stream: LiveStream): Promise<boolean> {
    const videoId = stream.activeVideoId;
    if (!videoId || feeds.has(videoId) || endedHere.has(videoId)) return false;
    return (await liveJobOf(videoId)) !== null && !(await deps.holds.held(videoId));
  }

  /**
   * Continues here a broadcast no live API instance holds when its publisher comes back: one
   * handed on by an instance that stopped (handOff), or one whose holder died (SIGKILL, a crash),
   * which Postgres let go of with its session (broadcast-holds.ts). Its hold is taken here, with a
   * feed of its own for the same video; its job points at it: a queued job is due now, a running
   * one whose run reads another address is queued again for a run that reads here, and one whose
   * run reads this address (this instance restarted in its place) is left to that run, which asks
   * its feed again (render-worker/handlers/live-feed-break.ts). A run takes it over going on with
   * its playlists. `waitMs`: how long to wait for an instance handing it on to let go. Null when the
   * stream's broadcast is held by a live instance, its encode is over, or another instance took it first.
   */
  async function adoptBroadcast(stream: LiveStream, waitMs: number): Promise<LiveFeed | null> {
    const videoId = stream.activeVideoId;
    if (stream.status === "IDLE" || stream.status === "ENDED") return null;
    if (!videoId || feeds.has(videoId) || endedHere.has(videoId)) return null;
    if (!(await liveJobOf(videoId))) return null;
    if (!(await takeHold(videoId, waitMs))) return null;
    try {
      const adopted = await adoptHeld(stream, videoId);
      if (!adopted) releaseHold(videoId);
      return adopted;
    } catch (err) {
      releaseHold(videoId);
      feeds.delete(videoId);
      throw err;
    }
  }

  /** adoptBroadcast once this instance holds the broadcast. */
  async function adoptHeld(stream: LiveStream, videoId: string): Promise<LiveFeed | null> {
    // Read again under the hold: the encode may have ended meanwhile.
    const job = await liveJobOf(videoId);
    const video = await db.video.findUnique({ where: { id: videoId }, select: { createdAt: true, playable: true } });
    if (!job || !video) return null;
    // One instance adopts it: the stream is claimed as a broadcast's start claims it.
    const claim = await db.liveStream.updateMany({
      where: { id: stream.id, status: { in: ["DISCONNECTED", "CONNECTED", "LIVE"] }, activeVideoId: videoId },
      data: { status: "CONNECTED" },
    });
    if (claim.count === 0) return null;
    const input = parseJobInput("LIVE", job.input);
    const feedUrl = signedFeedUrl(videoId);
    const readHere = job.status === "RUNNING" && new URL(input.feedUrl).origin === new URL(feedUrl).origin;
    const feed = new LiveFeed();
    feeds.set(videoId, {
      feed,
      streamId: stream.id,
      startedAt: video.createdAt.getTime(),
      reconnectWindowSeconds: stream.reconnectWindowSeconds ?? settings.reconnectGraceSeconds,
      endOnUnpublish: stream.endOnUnpublish,
    });
    // Its run asks for the feed within a second or so; without one in time, another run takes over.
    watchReaders(videoId, feed, readHere);
    if (job.status === "QUEUED") {
      await db.job.updateMany({
        where: { id: job.id, attempt: job.attempt, status: "QUEUED" },
        data: { input: { ...input, feedUrl }, runAfter: null, dispatchedAt: null },
      });
    } else if (!readHere) {
      await requeueEncode(job, ["RUNNING"], null, { ...input, feedUrl });
    }
    endAtLongestLength(videoId, stream.id, feed, input.options.maxDurationSeconds);
    await setStatus(stream.id, video.playable ? "LIVE" : "CONNECTED", { lastError: null });
    deps.dispatcher.kick();
    log.info("live: a broadcast no live API instance holds continues here", {
      streamId: stream.id,
      videoId,
      handedOn: job.status === "QUEUED",
    });
    return feed;
  }

  const sessions: IngestSessions = {
    async authorize(key) {
      const stream = await db.liveStream.findUnique({ where: { keyHash: hashStreamKey(key) } });
      if (!stream) return { refused: UNKNOWN_STREAM_KEY };
      if (stream.disabledAt) return { refused: "the live stream is disabled" };
      if (stream.status === "CONNECTED" || stream.status === "LIVE") {
        // Its broadcast's API instance died: its publisher's reconnect continues it (begin).
        if (await holderGone(stream)) return { streamId: stream.id };
        if (!(await endedWithoutItsEnd(stream))) return { refused: "the live stream already has a publisher" };
      }
      // Its publisher reconnecting, here or to another instance (relayed there): no new broadcast is counted.
      if (graces.has(stream.id) || (await waitingBroadcastJob(stream))) return { streamId: stream.id };
      // Checked again when the broadcast starts, under a lock (begin): here it spares a publisher
      // over the limit the wait for its metadata.
      const over =
        (await onAirOverLimit(db, stream.tenantId, stream.id)) ??
        quotaSpent(await secondsLeft(db, stream.tenantId)) ??
        whyNoLiveSlot(await countLiveSlots(db, stream.tenantId, settings.workerAliveSeconds)) ??
        ((await deps.storageFull?.()) ? STORAGE_FULL : null);
      if (over) return refuseAtConnect(stream.id, over);
      return { streamId: stream.id };
    },

    async begin(streamId, input) {
      const stream = await db.liveStream.findUnique({ where: { id: streamId } });
      if (!stream || stream.disabledAt) return { refused: "the live stream is disabled" };
      const grace = graces.get(streamId);
      const waiting = grace ? feeds.get(grace.videoId) : undefined;
      if (grace && waiting) {
        // The same broadcast goes on: its feed continues where the last publisher left off.
        clearTimeout(grace.timer);
        graces.delete(streamId);
        waiting.feed.resume();
        const video = await db.video.findUnique({ where: { id: grace.videoId }, select: { playable: true } });
        await setStatus(streamId, video?.playable ? "LIVE" : "CONNECTED", { lastError: null });
        log.info("live: publisher reconnected", { streamId, videoId: grace.videoId });
        return { feed: waiting.feed };
      }
      // Its broadcast waits for it on another API instance: its media go there.
      const relay = await relayToHolder(stream);
      if (relay instanceof RelayFeed) return { feed: relay };
      // Its broadcast was handed on by an instance that stopped (a deploy), or its instance died:
      // it continues here. One being handed on right now is waited for, never started again.
      const handingOnThere = relay?.handingOn === true;
      const adopted = await adoptBroadcast(stream, handingOnThere ? HAND_ON_WAIT_MS : 0);
      if (adopted) return { feed: adopted };
      if (handingOnThere) return { refused: "the live stream's broadcast is being handed on; reconnect" };
      const segmentSeconds = stream.latencyMode === "LOW" ? settings.lowLatencySegmentSeconds : settings.segmentSeconds;
      // The feed is there before the job can be dispatched (the dispatcher may publish it as soon as
      // the transaction commits), so the worker never asks for a feed that does not exist yet.
      const videoId = randomUUID();
      const feed = new LiveFeed();
      feeds.set(videoId, {
        feed,
        streamId,
        startedAt: Date.now(),
        reconnectWindowSeconds: stream.reconnectWindowSeconds ?? settings.reconnectGraceSeconds,
        endOnUnpublish: stream.endOnUnpublish,
      });
      watchReaders(videoId, feed);
      let video: Video;
      let longest = settings.maxDurationSeconds;
      try {
        // Held by this instance while it serves the feed: no other adopts it while this one lives.
        if (!(await deps.holds.take(videoId))) throw new Error("a new broadcast's hold was taken already");
        video = await db.$transaction(async (tx) => {
          // One publisher per stream: two connecting at once with its key both got this far.
          const claim = await tx.liveStream.updateMany({
            where: { id: streamId, status: { notIn: ["CONNECTED", "LIVE"] } },
            data: { status: "CONNECTED", activeVideoId: null },
          });
          if (claim.count === 0) throw new BroadcastRefused("the live stream already has a publisher");
          // The tenant's broadcasts on air, counted again under its row's lock: broadcasts of one
          // tenant starting at once (on any API instance) are counted one after the other.
          // `NO KEY UPDATE` leaves the rows that reference the tenant free.
          await tx.$queryRaw`SELECT 1 FROM "Tenant" WHERE id = ${stream.tenantId}::uuid FOR NO KEY UPDATE`;
          const over = await onAirOverLimit(tx, stream.tenantId, streamId);
          if (over) throw new BroadcastRefused(over);
          // The month's time left, counted under the same lock: the encode stops when it runs out.
          const left = await secondsLeft(tx, stream.tenantId);
          const spent = quotaSpent(left);
          if (spent) throw new BroadcastRefused(spent);
          const noSlot = await admitBroadcast(tx, stream.tenantId);
          if (noSlot) throw new BroadcastRefused(noSlot);
          longest =
            left === null ? settings.maxDurationSeconds : Math.min(settings.maxDurationSeconds, Math.floor(left));
          const video = await createBroadcast(tx, stream, videoId, input, segmentSeconds, longest);
          // The stream names its broadcast, and CONNECTED's webhook names the video.
          await changeStatus(tx, streamId, "CONNECTED", { activeVideoId: video.id, lastError: null });
          return video;
        });
      } catch (err) {
        feeds.delete(videoId);
        releaseHold(videoId);
        if (err instanceof BroadcastRefused) return { refused: err.message };
        throw err;
      }
      endAtLongestLength(videoId, streamId, feed, longest);
      deps.webhooks.flush();
      announce(streamId);
      announceQueuedJob({ dispatcher: deps.dispatcher, pubSub: deps.pubSub }, video);
      log.info("live: broadcast started", { streamId, videoId: video.id, ...input });
      return { feed };
    },

    async end(streamId, feed, reason, unpublished) {
      // A relayed publisher: the instance holding its broadcast hears it left, and does the rest.
      if (feed instanceof RelayFeed) return feed.finish(reason, unpublished);
      // Only the broadcast this connection fed: a refused rival's end touches no other.
      const broadcast = feed ? [...feeds].find(([, entry]) => entry.feed === feed) : undefined;
      // Ended by its publisher: its feed ends (and its encode with it) once its stream has said so.
      let endsNow: LiveFeed | null = null;
      if (broadcast) {
        const [videoId, entry] = broadcast;
        if (unpublished && entry.endOnUnpublish) {
          endsNow = takeFeed(videoId);
        } else {
          // The broadcast ends (its feed, then its encode: the stream is ENDED when its job ends)
          // unless the publisher is back within its stream's reconnect window.
          const timer = setTimeout(() => {
            takeFeed(videoId)?.end();
          }, entry.reconnectWindowSeconds * 1000);
          timer.unref();
          graces.set(streamId, { videoId, timer });
        }
      }
      try {
        const stream = await db.liveStream.findUnique({ where: { id: streamId } });
        if (!stream) return;
        const onAir = stream.status === "CONNECTED" || stream.status === "LIVE";
        if (broadcast && onAir && stream.activeVideoId === broadcast[0]) {
          await setStatus(streamId, "DISCONNECTED", { lastError: reason });
        } else if (!broadcast && !onAir && reason) {
          // Refused after its key was accepted (its codec, size, bit rate…): the stream says why.
          await db.liveStream.update({ where: { id: streamId }, data: { lastError: reason } });
          announce(streamId);
        }
      } finally {
        if (endsNow) log.info("live: publisher ended its broadcast", { streamId, videoId: broadcast![0] });
        endsNow?.end();
      }
    },
  };

  /**
   * Why the broadcast gets no live slot, or null; under the admission lock, which the caller's
   * transaction holds until the broadcast's job is written (live-capacity.ts).
   */
  async function admitBroadcast(tx: Tx, tenantId: string): Promise<string | null> {
    await lockLiveAdmission(tx);
    return whyNoLiveSlot(await countLiveSlots(tx, tenantId, settings.workerAliveSeconds));
  }

  /**
   * Whether a stream on air (CONNECTED, LIVE) has in fact no broadcast: none named, or its LIVE job
   * ended with no feed here, its end's write lost (a database out of space). The stream is ENDED
   * then, so its publisher is not refused for ever.
   */
  async function endedWithoutItsEnd(stream: LiveStream): Promise<boolean> {
    const videoId = stream.activeVideoId;
    if (videoId && feeds.has(videoId)) return false;
    const onAir = videoId
      ? await db.job.count({ where: { videoId, kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } } })
      : 0;
    if (onAir > 0) return false;
    log.warn("live: a stream on air had no broadcast; its end is applied now", { streamId: stream.id, videoId });
    await setStatus(stream.id, "ENDED");
    return true;
  }

  /** A publisher refused before its broadcast: its stream says why (its lastError, to its subscribers). */
  async function refuseAtConnect(streamId: string, reason: string): Promise<{ refused: string }> {
    await db.liveStream.update({ where: { id: streamId }, data: { lastError: reason } });
    announce(streamId);
    return { refused: reason };
  }

  /**
   * The LIVE job of the stream's broadcast when it waits for its publisher on another API instance
   * (DISCONNECTED, its encode not ended, its feed not here nor ended here), or null.
   */
  async function waitingBroadcastJob(stream: LiveStream): Promise<{ videoId: string; input: unknown } | null> {
    const videoId = stream.activeVideoId;
    if (stream.status !== "DISCONNECTED" || !videoId || feeds.has(videoId) || endedHere.has(videoId)) return null;
    const job = await db.job.findFirst({
      where: { videoId, kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } },
      select: { input: true },
    });
    return job ? { videoId, input: job.input } : null;
  }

  /**
   * A relay of a reconnecting publisher's media to the API instance that holds its broadcast in the
   * grace, or null: the stream's broadcast is not waiting (or is waiting here), or that instance
   * does not take the relay (its grace ran out meanwhile: a new broadcast starts here).
   */
  async function relayToHolder(stream: LiveStream): Promise<RelayFeed | RelayRefusal | null> {
    const job = await waitingBroadcastJob(stream);
    if (!job) return null;
    const { videoId } = job;
    // The holder serves the broadcast's feed: the relay goes to the same address.
    const holder = new URL(parseJobInput("LIVE", job.input).feedUrl).origin;
    const relay = await RelayFeed.open(signedRelayUrl(holder, videoId, deps.signer));
    if (!(relay instanceof RelayFeed)) {
      log.warn("live: a reconnecting publisher could not be relayed to its broadcast's API instance", {
        streamId: stream.id,
        videoId,
        why: relay.why,
      });
      return relay;
    }
    log.info("live: publisher reconnected to another API instance; relayed to its broadcast's", {
      streamId: stream.id,
      videoId,
      holder,
    });
    return relay;
  }

  /**
   * What became of a broadcast's feed, as a run whose feed's connection ended asks it: 200 it goes
   * on here; 410 it ended (here, or its encode is over, or it was handed on and its reconnect window
   * passed with no publisher back); 404 this instance does not hold it (its holder died and no
   * instance adopted it yet, or another holds it).
   */
  async function feedStatus(videoId: string): Promise<200 | 404 | 410> {
    const entry = feeds.get(videoId);
    if (entry && !entry.feed.ended) return 200;
    if (entry || endedHere.has(videoId)) return 410;
    const job = await liveJobOf(videoId);
    if (!job) return 410;
    if (job.status === "RUNNING" && job.runAfter !== null && job.runAfter.getTime() <= Date.now()) return 410;
    return 404;
  }

  /**
   * A run took the broadcast over after its feed had let go of media its encode had not published
   * (beyond 30 s or 32 MiB): the recording lacks it, and its stream's lastError says so.
   */
  function recordMissed(videoId: string, seconds: number): void {
    const lastError = `the recording lacks ${seconds.toFixed(1)} s of the broadcast: its encode was taken over after the feed had let go of media not yet published (it keeps 30 s, 32 MiB)`;
    log.warn("live: a run took the broadcast over past what its feed kept", { videoId, seconds });
    void db.liveStream
      .updateMany({ where: { activeVideoId: videoId }, data: { lastError } })
      .then(({ count }) => {
        const entry = feeds.get(videoId);
        if (count && entry) announce(entry.streamId);
      })
      .catch((err) => log.error("live: the stream's lastError could not be written", { err }));
  }

  /** Whether `e`'s run no longer holds its LIVE job: another run (or none yet, queued again) took it over. */
  async function supersededRun(e: JobEvent): Promise<boolean> {
    if (e.runId === undefined) return false;
    const job = await db.job.findUnique({ where: { id: e.jobId }, select: { runId: true, status: true } });
    if (!job || job.status === "SUCCEEDED" || job.status === "FAILED" || job.status === "CANCELED") return false;
    return job.runId !== e.runId;
  }

  /** The stream whose current (or last) broadcast is `videoId`, if any: an older broadcast changes no stream. */
  async function streamOnAirWith(videoId: string): Promise<LiveStream | null> {
    const video = await db.video.findUnique({ where: { id: videoId }, select: { liveStreamId: true } });
    if (!video?.liveStreamId) return null;
    const stream = await db.liveStream.findUnique({ where: { id: video.liveStreamId } });
    return stream?.activeVideoId === videoId ? stream : null;
  }

  /** A LIVE job's event applied to its stream: its state, webhooks and subscribers. */
  async function applyJobEvent(e: JobEvent, videoId: string): Promise<void> {
    const stream = await streamOnAirWith(videoId);
    if (!stream) {
      // A broadcast its stream has moved on from (the next one started while it finished): its
      // stream's state is the next one's, but its time is the tenant's all the same.
      if (endsRun(e)) await db.$transaction((tx) => chargeBroadcast(tx, videoId));
      return;
    }
    const streamId = stream.id;
    switch (e.type) {
      case "video.playable":
        if (stream.status === "CONNECTED") await setStatus(streamId, "LIVE");
        break;
      case "live.progress": {
        const entry = feeds.get(videoId);
        const seconds = entry ? (Date.now() - entry.startedAt) / 1000 : 0;
        const inputBitrate = entry && seconds > 0 ? Math.round((entry.feed.bytesIn * 8) / seconds) : null;
        const { mediaSeconds, fps, speed, segments, publishedSeconds } = e;
        // The feed lets go of what is published (on the instance holding it); what it received and
        // the encode has not published yet is how far viewers are behind the publisher.
        if (entry && publishedSeconds !== undefined) {
          entry.feed.published(publishedSeconds);
          liveFeedReplayBytes.set(
            [...feeds.values()].reduce((sum, f) => sum + f.feed.replayBytes, endedFeeds.replayBytes()),
          );
        } else if (publishedSeconds !== undefined)
          deps.target.dispatchEvent(
            new CustomEvent(BROADCAST_PUBLISHED, { detail: { videoId, seconds: publishedSeconds } }),
          );
        const behindSeconds =
          entry && publishedSeconds !== undefined
            ? Math.round(Math.max(0, entry.feed.receivedSeconds - publishedSeconds) * 100) / 100
            : e.behindSeconds;
        if (speed !== null) liveEncodeSpeed.observe(speed);
        if (behindSeconds !== null) liveBehindSeconds.observe(behindSeconds);
        const input = entry?.feed.input ?? null;
        announce(streamId, {
          mediaSeconds,
          fps,
          speed,
          segments,
          behindSeconds,
          inputBitrate,
          inputKeyframeInterval: input ? Math.round(input.keyframeInterval * 1000) / 1000 : null,
          inputFps: input ? Math.round(input.fps * 100) / 100 : null,
          renditions: e.renditions ?? [],
        });
        break;
      }
      case "job.succeeded":
        // The recording's length and source were written with its READY, or its video DISCARDED
        // (transcode-events.ts).
        await setStatus(streamId, "ENDED");
        break;
      case "job.failed":
        await setStatus(streamId, "ENDED", { lastError: userFacingError(e.error) });
        break;
      case "job.canceled":
        await setStatus(streamId, "ENDED", { lastError: "the broadcast's encode was canceled" });
        break;
      default:
        break;
    }
  }

  return {
    sessions,

    /** How long a broadcast waits for a dropped publisher when its stream does not say (LIVE_RECONNECT_GRACE_SECONDS). */
    defaultReconnectWindowSeconds: settings.reconnectGraceSeconds,

    /**
     * Ends the stream's broadcast now (endLiveStream), whatever its publisher does: the API instance
     * holding its feed ends it, its publisher is cut off, and its encode finishes with what it has
     * (the stream is ENDED when its job ends). False: the stream has no broadcast whose encode is on.
     */
    async endBroadcast(stream: LiveStream): Promise<boolean> {
      const videoId = stream.activeVideoId;
      if (!videoId || stream.status === "ENDED") return false;
      const job = await db.job.findFirst({
        where: { videoId, kind: "LIVE", status: { in: ["QUEUED", "RUNNING"] } },
        select: { id: true },
      });
      if (!job) return false;
      deps.target.dispatchEvent(new CustomEvent(BROADCAST_FINISH, { detail: { videoId } }));
      return true;
    },

    /** The tenant's live time this month, and its quota (minutes; null: none). */
    async usage(tenantId: string): Promise<{ month: Date; secondsUsed: number; minutesLimit: number | null }> {
      const now = new Date();
      const secondsUsed = await liveSecondsUsed(db, tenantId, now);
      return { month: monthOf(now), secondsUsed, minutesLimit: settings.maxMinutesPerTenantMonth };
    },

    /**
     * The sessions of a publisher relayed from another API instance to continue `videoId`'s
     * broadcast (relay.ts); "handing on" while this instance hands it on (handOffAll); null: this
     * instance holds no such broadcast in its grace.
     */
    resumeSessions(videoId: string): IngestSessions | "handing on" | null {
      if (handingOn.has(videoId)) return "handing on";
      const entry = feeds.get(videoId);
      if (!entry || graces.get(entry.streamId)?.videoId !== videoId) return null;
      return { ...sessions, authorize: async () => ({ streamId: entry.streamId }) };
    },

    /** Whether `url` is a feed's, which `handleFeed` answers. */
    matchesFeed: (url: URL) => url.pathname.startsWith(FEED_PATH_PREFIX),

    /**
     * GET a broadcast's feed: signed for the worker its job went to. HEAD says what became of it
     * (feedStatus), for a run whose feed's connection ended: 200 it goes on here, 410 it ended,
     * 404 not held here (its instance died, or it is held elsewhere).
     */
    handleFeed(req: IncomingMessage, res: ServerResponse, url: URL): void {
      const refused = deps.signer.check(url);
      const videoId = url.pathname.slice(FEED_PATH_PREFIX.length).replace(/\.flv$/, "");
      if ((req.method !== "GET" && req.method !== "HEAD" && req.method !== "POST") || refused) {
        res.writeHead(403, { "content-type": "text/plain" }).end(`Feed refused: ${refused ?? "GET only"}\n`);
        return;
      }
      if (req.method === "HEAD") {
        feedStatus(videoId)
          .then((status) => res.writeHead(status, { "cache-control": "no-store" }).end())
          .catch((err) => {
            log.warn("live: a feed's status could not be read", { videoId, err: String(err) });
            res.writeHead(503).end();
          });
        return;
      }
      const feed = feeds.get(videoId)?.feed ?? endedFeeds.get(videoId);
      const presence = req.headers[LIVE_PRESENCE_HEADER];
      if (!feed || (req.method === "POST" && typeof presence !== "string")) {
        res.writeHead(404, { "content-type": "text/plain" }).end("No broadcast of this video on this API instance\n");
        return;
      }
      if (typeof presence === "string") {
        // A run holding the feed while it lives (GET), or saying it is done (POST): feed.ts.
        if (req.method === "POST") {
          feed.presenceDone(presence);
          res.writeHead(204).end();
        } else feed.holdPresence(presence, res);
        return;
      }
      const missed = feed.attach(res);
      if (missed > 0) recordMissed(videoId, missed);
    },

    /**
     * Deletes the media of the broadcast `e` ends when it is not recorded (its stream's `recording`
     * was off when it started), before the ingestor applies the end (a failed deletion fails the
     * event, which comes again); true when it did, and the ingestor then leaves its video DISCARDED
     * instead of READY. Called by the ingestor with a LIVE job's `job.succeeded` and `job.failed`.
     */
    async discardUnrecordedMedia(e: JobEvent, videoId: string): Promise<boolean> {
      const job = await db.job.findUnique({ where: { id: e.jobId }, select: { input: true } });
      if (!job || parseJobInput("LIVE", job.input).options.record) return false;
      await deps.storage.deletePrefix(videoPrefix(videoId));
      log.info("live: broadcast ended unrecorded; its media were deleted", { videoId });
      return true;
    },

    /** Applies a LIVE job's event to its stream (the event ingestor calls it once the event is applied). */
    async onJobEvent(e: JobEvent, videoId: string): Promise<void> {
      // The end of a run another run took the broadcast over from (takeOverEncode) is not the
      // broadcast's: it was stopped, or lost its feed, while the broadcast goes on.
      if (endsRun(e) && (await supersededRun(e))) {
        log.info("live: the end of a run another run took the broadcast over from", { videoId, runId: e.runId });
        return;
      }
      try {
        await applyJobEvent(e, videoId);
      } finally {
        // Its encode is over (its end, or a failure, applied first): a publisher still sending is cut off.
        if (endsRun(e)) endBroadcast(videoId);
      }
    },

    /**
     * A broadcast's video was canceled (cancelVideo): its stream is ENDED and its publisher cut off.
     * (Its job's own end never reaches onJobEvent: events of a canceled job stop at the ingestor.)
     */
    async onVideoCanceled(videoId: string): Promise<void> {
      const stream = await streamOnAirWith(videoId);
      if (stream && stream.status !== "ENDED")
        await setStatus(stream.id, "ENDED", { lastError: "the broadcast's video was canceled" });
      endBroadcast(videoId);
    },

    /** A stream's events: its state now, then each change and each health sample, until `return()`. */
    follow(streamId: string): AsyncIterableIterator<LiveStreamEvent> {
      return new Repeater<LiveStreamEvent>(async (push, stop) => {
        let queue = Promise.resolve();
        const send = (health: LiveHealth | null) => {
          queue = queue
            .then(async () => {
              const stream = await db.liveStream.findUnique({ where: { id: streamId } });
              if (!stream) return stop();
              await push({ stream, health });
            })
            .catch((err) => stop(err));
        };
        const onEvent = (event: Event) =>
          send((event as CustomEvent<{ health: LiveHealth | null }>).detail?.health ?? null);
        deps.target.addEventListener(topic(streamId), onEvent);
        send(null);
        await stop;
        deps.target.removeEventListener(topic(streamId), onEvent);
      });
    },

    /** The feed of a broadcast whose hold another instance took while this one's session was down. */
    dropFeed(videoId: string): void {
      takeFeed(videoId)?.end();
      endedHere.delete(videoId);
      endedFeeds.drop(videoId);
    },

    /**
     * Hands this instance's broadcasts on (a deploy: SIGTERM): each one's publisher, cut off by the
     * ingest's close, continues it by reconnecting to any API instance within its reconnect window
     * (handOff). A broadcast that cannot be handed on (its job ended, the database unreachable)
     * has its feed ended: its encode finishes it with what it has.
     */
    async handOffAll(): Promise<void> {
      for (const { timer } of graces.values()) clearTimeout(timer);
      graces.clear();
      const held = [...feeds];
      // A publisher reconnecting to another instance meanwhile waits for the hold (adoptBroadcast).
      for (const [videoId] of held) handingOn.add(videoId);
      feeds.clear();
      await Promise.all(
        held.map(async ([videoId, entry]) => {
          const handed = await handOff(videoId, entry.reconnectWindowSeconds).catch((err) => {
            log.error("live: a broadcast could not be handed on; it ends with what it has", { videoId, err });
            return false;
          });
          if (!handed) entry.feed.end();
          // Its job waits for another instance now: the hold goes (a feed ended keeps it to the end).
          else await deps.holds.release(videoId).catch(() => {});
          handingOn.delete(videoId);
        }),
      );
    },
  };
}

export type LiveStreams = ReturnType<typeof createLiveStreams>;
