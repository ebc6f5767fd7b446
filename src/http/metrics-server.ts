import { createServer } from "node:http";
import type { Env } from "../config.ts";
import { log } from "../log.ts";
import { apiRegistry } from "../metrics.ts";
import { closeListener, listenOn } from "../shared/listen.ts";
import { dropBodyLeftAfterAnswer } from "../shared/refused-body.ts";

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves the API's Prometheus registry at METRICS_PATH on a listener of its own (METRICS_HOST,
 * default 127.0.0.1, : METRICS_PORT), never on the API's public port: tenants reach PORT, a
 * scraper (a Cloud Run sidecar, a Prometheus beside the API) reaches this one.
 */
export async function startMetricsServer(env: Pick<Env, "METRICS_HOST" | "METRICS_PATH">, port: number) {
  const server = createServer((req, res) => {
    dropBodyLeftAfterAnswer(req, res);
    const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    if (pathname !== env.METRICS_PATH || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not found\n");
      return;
    }
    apiRegistry.metrics().then(
      (text) => res.writeHead(200, { "content-type": apiRegistry.contentType }).end(text),
      (err) => {
        log.error("metrics collection failed", { err });
        res.writeHead(500, { "content-type": "text/plain" }).end("Metrics collection failed\n");
      },
    );
  });
  const bound = await listenOn(server, port, env.METRICS_HOST);
  log.info("metrics listening", { address: bound.address, port: bound.port, url: `${bound.url}${env.METRICS_PATH}` });
  return {
    url: bound.url,
    close: () => closeListener(server),
  } satisfies MetricsServer;
}
