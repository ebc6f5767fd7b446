import type { Db } from "./db/client.ts";
import type { VideoPubSub } from "./events/video-events.ts";
import type { UrlSigner } from "./http/signing.ts";
import type { Dispatcher } from "./jobs/dispatcher.ts";
import type { ApiStorage } from "./storage/types.ts";
import type { ApiTransport } from "./transport/types.ts";

/** Services every resolver may use; built once per server, shared by HTTP and WebSocket requests. */
export interface AppServices {
  db: Db;
  storage: ApiStorage;
  signer: UrlSigner;
  pubSub: VideoPubSub;
  dispatcher: Dispatcher;
  transport: ApiTransport;
  /** Absolute origin for URLs, or "" to hand out URLs relative to the API's origin. */
  publicUrl: string;
  maxUploadBytes: number;
  uploadUrlTtlSeconds: number;
  maxAttempts: number;
}

/** What a resolver gets: the services, and what it needs to know about the request. */
export interface Context extends AppServices {
  /** The `Origin` header of the HTTP request, if any (none over WebSocket). */
  requestOrigin: string | null;
}
