import path from "node:path";
import type { Env } from "../config.ts";
import type { CostSettings } from "../costs/cost-model.ts";
import type { Db } from "../db/client.ts";
import type { PostgresEventTarget } from "../events/postgres-event-target.ts";
import type { VideoPubSub } from "../events/video-events.ts";
import { tellWorkersToCancel } from "../jobs/cancel.ts";
import type { Dispatcher } from "../jobs/dispatcher.ts";
import { createBroadcastHolds } from "../live/broadcast-holds.ts";
import { createFeedSpools } from "../live/feed-spool.ts";
import { createLiveStreams } from "../live/live-streams.ts";
import { DEFAULT_INGEST_LIMITS } from "../live/publisher.ts";
import { createRelayIngest } from "../live/relay.ts";
import { createRtmpIngest } from "../live/rtmp-ingest.ts";
import { createSourceLimits } from "../live/source-limits.ts";
import { srtGatewayBuilt } from "../live/srt-gateway-build.ts";
import { createSrtIngest } from "../live/srt-ingest.ts";
import { localMediaStorageFull } from "../live/storage-room.ts";
import { srtPassphrase, srtPassphraseKey } from "../live/stream-keys.ts";
import { simulcastKeyCipher } from "../simulcast/target-keys.ts";
import type { ApiStorage } from "../storage/types.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import type { ApiTransport } from "../transport/types.ts";
import type { WebhookEmitter } from "../webhooks/events.ts";

/** What the live parts are built from: the services made before them. */
export interface LivePartsDeps {
  db: Db;
  pubSub: VideoPubSub;
  dispatcher: Dispatcher;
  transport: ApiTransport;
  signer: UrlSigner;
  signingSecret: string;
  storage: ApiStorage;
  costs: CostSettings;
  webhooks: WebhookEmitter;
  eventTarget: PostgresEventTarget<never>;
  databaseUrl: string;
  /** Set once the API and the ingest listen: where workers read feeds, and what publishers are told. */
  addresses: { api: string; rtmp: string; srt: string | null };
}

/**
 * Live streams and their ingests (RTMP, SRT, the relay from other instances), with the broadcast
 * holds; `service` is what resolvers get as `live`.
 */
export function createLiveParts(env: Env, deps: LivePartsDeps) {
  const { addresses, signer, transport } = deps;
  // Which instance holds each broadcast, a dead one's let go by Postgres with its session.
  const holds = createBroadcastHolds({
    connectionString: deps.databaseUrl,
    onLost: (videoId) => live.dropFeed(videoId),
    onRetaken: (videoId) => live.reclaimStatus(videoId),
  });
  // What feeds hold unpublished, on this instance's disk: the instance restarted after a crash gives it back.
  const spools = createFeedSpools(
    env.LIVE_SPOOL_DIR === "off" ? null : path.resolve(env.LIVE_SPOOL_DIR ?? path.join(env.DATA_DIR, "live-spool")),
  );
  const simulcast = {
    cipherKey: simulcastKeyCipher(deps.signingSecret),
    maxTargets: env.LIVE_SIMULCAST_MAX_TARGETS,
    allowPrivateAddresses: env.URL_IMPORT_ALLOW_PRIVATE,
  };
  const live = createLiveStreams({
    db: deps.db,
    pubSub: deps.pubSub,
    dispatcher: deps.dispatcher,
    signer,
    storage: deps.storage,
    stopRun: (jobId, attempt, workerId, runId) => tellWorkersToCancel(transport, jobId, attempt, workerId, runId),
    ...(transport.withdrawJob ? { withdrawJob: transport.withdrawJob.bind(transport) } : {}),
    ...(env.STORAGE === "local" ? { storageFull: () => localMediaStorageFull(env.DATA_DIR) } : {}),
    holds,
    spools,
    costs: deps.costs,
    webhooks: deps.webhooks,
    target: deps.eventTarget,
    simulcast,
    settings: {
      segmentSeconds: env.LIVE_SEGMENT_SECONDS,
      lowLatencySegmentSeconds: env.LIVE_LOW_LATENCY_SEGMENT_SECONDS,
      maxStreamsPerTenant: env.LIVE_MAX_STREAMS_PER_TENANT,
      maxMinutesPerTenantMonth: env.LIVE_MAX_MINUTES_PER_TENANT_MONTH ?? null,
      maxDurationSeconds: env.LIVE_MAX_DURATION_SECONDS,
      reconnectGraceSeconds: env.LIVE_RECONNECT_GRACE_SECONDS,
      workerAliveSeconds: 3 * env.JOB_STALL_SECONDS,
      feedBaseUrl: () => (env.LIVE_FEED_URL ?? env.PUBLIC_URL ?? addresses.api).replace(/\/$/, ""),
    },
  });
  const passphraseKey = srtPassphraseKey(deps.signingSecret);
  const service = {
    ...live,
    ingestUrl: () => env.LIVE_RTMP_URL ?? addresses.rtmp,
    srtIngestUrl: () => (addresses.srt === null ? null : (env.LIVE_SRT_URL ?? addresses.srt)),
    srtPassphrase: (key: string) => srtPassphrase(passphraseKey, key),
    simulcast,
  };
  return { live, service, holds, spools, ingests: createIngests(env, live, signer, passphraseKey) };
}

/** The ingests that take publishers' streams to `live`'s sessions; an ingest turned off is null. */
function createIngests(env: Env, live: ReturnType<typeof createLiveStreams>, signer: UrlSigner, passphraseKey: Buffer) {
  const ingestLimits = {
    ...DEFAULT_INGEST_LIMITS,
    maxBitrate: env.LIVE_MAX_BITRATE,
    stallSeconds: env.LIVE_STALL_SECONDS,
    maxConnections: env.LIVE_MAX_CONNECTIONS,
  };
  // One account of each source for both ingests: a source's connections and wrong keys count across them.
  const sources = createSourceLimits({
    maxConnectionsPerSource: env.LIVE_MAX_CONNECTIONS_PER_SOURCE,
    maxHandshakesPerSource: env.LIVE_MAX_HANDSHAKES_PER_SOURCE,
    maxKeyFailuresPerSource: env.LIVE_MAX_KEY_FAILURES_PER_SOURCE,
  });
  const rtmp = env.LIVE_RTMP_PORT === "off" ? null : createRtmpIngest(live.sessions, ingestLimits, sources);
  const srt =
    env.LIVE_SRT_PORT === "off" || !srtGatewayBuilt()
      ? null
      : createSrtIngest(live.sessions, ingestLimits, sources, { latencyMs: env.LIVE_SRT_LATENCY_MS, passphraseKey });
  // A publisher reconnecting to another instance is relayed here while this one holds its broadcast.
  const relay = createRelayIngest({
    resumeSessions: (videoId) => live.resumeSessions(videoId),
    limits: ingestLimits,
    signer,
  });
  return { rtmp, srt, relay };
}
