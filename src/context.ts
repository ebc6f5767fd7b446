import type { Db } from "./db/client.ts";
import type { VideoPubSub } from "./events/video-events.ts";
import type { UrlSigner } from "./http/signing.ts";
import type { Dispatcher } from "./jobs/dispatcher.ts";
import type { LocalStorage } from "./storage/local.ts";

/** Services every resolver may use; built once per server, shared by HTTP and WebSocket requests. */
export interface AppServices {
  db: Db;
  storage: LocalStorage;
  signer: UrlSigner;
  pubSub: VideoPubSub;
  dispatcher: Dispatcher;
  /** Absolute origin for URLs, or "" to hand out URLs relative to the API's origin. */
  publicUrl: string;
  maxUploadBytes: number;
  uploadUrlTtlSeconds: number;
  maxAttempts: number;
}

export type Context = AppServices;
