import type { YogaServerInstance } from "graphql-yoga";
import { createLifecycle } from "./app/lifecycle.ts";
import { createServices } from "./app/services.ts";
import type { Env } from "./config.ts";
import type { AppServices, Context } from "./context.ts";
import { createHttpRoutes } from "./http/routes.ts";

export interface App {
  /** The yoga instance, so tests can call `yoga.fetch` without a port. */
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  services: AppServices;
  /**
   * Applies migrations, connects the transport and listens; resolves with the bound port (and
   * metrics URL). `beforeListen` runs once jobs and events flow, before the first request.
   */
  start(options?: {
    beforeListen?: () => Promise<void>;
  }): Promise<{ port: number; url: string; metricsUrl: string | null }>;
  /**
   * Closes every graphql-ws socket at once with 1001 (going away) and takes no new ones, so
   * subscribers reconnect to another instance (or this one restarted) while jobs and HTTP drain.
   * The first step of a shutdown; `stop` does it too.
   */
  closeSubscriptions(): Promise<void>;
  /**
   * Closes the live ingest and hands this instance's broadcasts on (their runs stopped, their jobs
   * waiting for their publishers' reconnect to any API instance), so a worker's run ends in seconds,
   * not at its shutdown grace, and a deploy does not end a broadcast. A shutdown's step before the
   * local worker's; `stop` does it too.
   */
  stopLiveIngest(): Promise<void>;
  /** Stops in a fixed order, the reverse of the start's (src/app/lifecycle.ts): WebSockets, live ingest, HTTP, …, database. */
  stop(): Promise<void>;
}

/** Builds the API around one database: its services, its routes, and their start and stop. */
export async function createApp(env: Env, databaseUrl: string): Promise<App> {
  const parts = await createServices(env, databaseUrl);
  const http = createHttpRoutes(env, parts);
  const lifecycle = createLifecycle(env, databaseUrl, parts, http);
  return {
    yoga: http.yoga,
    services: parts.services,
    start: lifecycle.start,
    closeSubscriptions: lifecycle.closeSubscriptions,
    stopLiveIngest: lifecycle.stopLiveIngest,
    stop: lifecycle.stop,
  };
}
