import { createServer } from "node:http";
import { closeListener, listenOn } from "../src/shared/listen.ts";
import { dropBodyLeftAfterAnswer } from "../src/shared/refused-body.ts";
import { log } from "./log.ts";
import { workerRegistry } from "./metrics.ts";
import type { WorkerReadiness } from "./worker.ts";

export interface OpsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * The worker's one HTTP listener, for operators and probes, never for tenants: `/livez` (the process
 * is up), `/readyz` (capabilities probed, transport reachable: 200, else 503), `/health` (the same
 * as `/readyz`) and Prometheus metrics at `metricsPath`. It starts before the capability probes, so
 * liveness answers while they run.
 */
export async function startOpsServer(options: {
  host: string;
  port: number;
  metricsPath: string;
  readiness: () => Promise<WorkerReadiness>;
}): Promise<OpsServer> {
  const server = createServer((req, res) => {
    dropBodyLeftAfterAnswer(req, res);
    const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    const json = (status: number, body: unknown) =>
      res
        .writeHead(status, { "content-type": "application/json", "cache-control": "no-store" })
        .end(JSON.stringify(body));
    if (req.method !== "GET" && req.method !== "HEAD") return json(405, { error: "GET only" });
    if (pathname === "/livez") return json(200, { status: "ok" });
    if (pathname === "/readyz" || pathname === "/health") {
      options.readiness().then(
        ({ ready, checks }) => json(ready ? 200 : 503, { status: ready ? "ready" : "not ready", checks }),
        () => json(503, { status: "not ready" }),
      );
      return;
    }
    if (pathname === options.metricsPath) {
      workerRegistry.metrics().then(
        (text) => res.writeHead(200, { "content-type": workerRegistry.contentType }).end(text),
        (err) => {
          log.error("metrics collection failed", { err });
          json(500, { error: "metrics collection failed" });
        },
      );
      return;
    }
    json(404, { error: "not found" });
  });
  const bound = await listenOn(server, options.port, options.host);
  log.info("ops endpoint listening", {
    address: bound.address,
    port: bound.port,
    url: bound.url,
    metrics: `${bound.url}${options.metricsPath}`,
  });
  return {
    url: bound.url,
    close: () => closeListener(server),
  };
}
