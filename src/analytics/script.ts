import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { CONSOLE_DIST } from "../http/console.ts";

/** Where the console's build writes the standalone beacon script (console/src/analytics-script.ts). */
export const ANALYTICS_SCRIPT_FILE = `${CONSOLE_DIST}analytics-beacons.js`;

let script: Promise<Buffer | null> | null = null;

/** Answers the standalone beacon script, which any page may load; 404 without a console build. */
export async function serveAnalyticsScript(res: ServerResponse): Promise<void> {
  script ??= readFile(ANALYTICS_SCRIPT_FILE).catch(() => null);
  const body = await script;
  if (!body) {
    script = null;
    res.writeHead(404, { "content-type": "text/plain" }).end("the console is not built: no beacon script");
    return;
  }
  res
    .writeHead(200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "public, max-age=300",
      "access-control-allow-origin": "*",
      "cross-origin-resource-policy": "cross-origin",
      "x-content-type-options": "nosniff",
      "content-length": body.length,
    })
    .end(body);
}
