import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";

/** The `message` of each record of a process's log, in order. */
function messages(log: string): string[] {
  return log
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => String(JSON.parse(line).message));
}

// The start and stop are one list of steps (src/app/lifecycle.ts): its order is what operators read in
// the log, and what a deploy relies on (subscribers first, the database last).
describe("the API's start and stop order", () => {
  let db: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-stop-order-"));
  });
  afterAll(async () => {
    await stopAllProcesses();
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("listens with the live ingest before announcing, then metrics; on SIGTERM stops each part in the documented order", async () => {
    const api = await startApiProcess("api-stop-order", {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      METRICS_PORT: "0",
      LIVE_RTMP_PORT: "0",
      LIVE_SRT_PORT: "off",
    });
    await api.waitForLog('"message":"metrics listening"');
    expect(await api.stop("SIGTERM")).toBe(0);
    const all = messages(api.log());
    expect(all.filter((m) => /listening$/.test(m))).toEqual([
      "live ingest listening",
      "API listening",
      "metrics listening",
    ]);
    expect(all.slice(all.indexOf("SIGTERM: shutting down"))).toEqual([
      "SIGTERM: shutting down",
      "stopping: WebSocket subscriptions (close 1001, going away)",
      "stopping: live ingest (broadcasts are handed on: a publisher reconnecting to any instance continues its own)",
      "stopping: HTTP connections",
      "stopping: webhook deliveries",
      "stopping: upload expiry",
      "stopping: analytics",
      "stopping: dispatcher",
      "stopping: transport",
      "stopping: event fan-out",
      "stopping: database",
      "stopped",
    ]);
  });
});
