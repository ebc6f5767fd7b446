import type { ContentKeys } from "./content-protection/content-keys.ts";
import type { Analytics } from "./analytics/analytics.ts";
import type { Principal } from "./auth/scopes.ts";
import type { Db } from "./db/client.ts";
import type { VideoPubSub } from "./events/video-events.ts";
import type { PlaybackTokens } from "./http/playback-tokens.ts";
import type { UrlSigner } from "./storage/url-signer.ts";
import type { CostSettings } from "./costs/cost-model.ts";
import type { Dispatcher } from "./jobs/dispatcher.ts";
import type { QueueWatch } from "./jobs/queue-position.ts";
import type { LiveStreams } from "./live/live-streams.ts";
import type { SimulcastSettings } from "./simulcast/simulcast-settings.ts";
import type { ApiStorage } from "./storage/types.ts";
import type { ApiTransport } from "./transport/types.ts";

/** Services every resolver may use; built once per server, shared by HTTP and WebSocket requests. */
export interface AppServices {
  db: Db;
  /** Viewer analytics: the collection endpoint, reports from the rollups, live viewer counts. */
  analytics: Analytics;
  storage: ApiStorage;
  /**
   * Live streams: broadcasts, their feeds and states (docs/live.md); `ingestUrl`, `srtIngestUrl`
   * and a key's `srtPassphrase` are what publishers are told.
   */
  live: LiveStreams & {
    ingestUrl(): string;
    srtIngestUrl(): string | null;
    srtPassphrase(key: string): string;
    /** Simulcast targets' settings (src/simulcast/targets.ts). */
    simulcast: SimulcastSettings;
  };
  signer: UrlSigner;
  playbackTokens: PlaybackTokens;
  /** Protected videos' content keys, sealed at rest (src/content-protection/). */
  contentKeys: ContentKeys;
  pubSub: VideoPubSub;
  dispatcher: Dispatcher;
  transport: ApiTransport;
  /** Absolute origin for URLs, or "" to hand out URLs relative to the API's origin. */
  publicUrl: string;
  maxUploadBytes: number;
  uploadUrlTtlSeconds: number;
  maxAttempts: number;
  /** Prices and the CPU table the jobs' costs are computed with (COST_* settings). */
  costs: CostSettings;
  /** Queue positions of waiting jobs, and their events when a queue changes. */
  queueWatch: QueueWatch;
  gemini: { apiKey: string | undefined; model: string; baseUrl: string };
  /** URL_IMPORT_ALLOW_PRIVATE: imports may reach loopback and private addresses (tests only). */
  urlImport: { allowPrivateAddresses: boolean };
  /** API_KEYS_MAX_PER_TENANT: keys a tenant may hold at once, neither revoked nor expired. */
  apiKeys: { maxActivePerTenant: number };
  /** VIDEO_SEARCH_TIMEOUT_MS: how long a title search's statement may run. */
  videoSearch: { titleTimeoutMs: number };
  webhooks: {
    allowPrivateUrls: boolean;
    retryHours: number;
    maxEndpointsPerTenant: number;
    /** Wakes the deliverer (a resend). */
    kick(): void;
  };
}

/** What a resolver gets: the services, and what it needs to know about the request. */
export interface Context extends AppServices {
  /** The `Origin` header of the HTTP request, if any (none over WebSocket). */
  requestOrigin: string | null;
  /** The checked credential, or null when none was sent (every field then refuses). */
  auth: Principal | null;
}

/** The caller; resolvers run only after scope auth let a principal through. */
export function principalOf(ctx: Context): Principal {
  if (!ctx.auth) throw new Error("Called without a principal: the field lacks authScopes");
  return ctx.auth;
}

/** The caller's tenant. */
export function tenantOf(ctx: Context): string {
  return principalOf(ctx).tenantId;
}
