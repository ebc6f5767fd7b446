import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";

/** The "API listening" (or another `message`) record of a process's log. */
function listeningRecord(log: string, message = "API listening"): Record<string, unknown> {
  const line = log.split("\n").find((l) => l.includes(`"message":"${message}"`));
  expect(line).toBeDefined();
  return JSON.parse(line!);
}

describe("the API binds HOST and logs the address it bound", () => {
  let db: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-bind-"));
  });
  afterAll(async () => {
    await stopAllProcesses();
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    ["0.0.0.0", "0.0.0.0", "http://127.0.0.1:"],
    ["::1", "::1", "http://[::1]:"],
  ])("HOST=%s: the log names %s as the bound address and a URL that reaches it", async (host, bound, urlStart) => {
    const api = await startApiProcess(`api-bind-${host}`, {
      HOST: host,
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      METRICS_HOST: host,
      METRICS_PORT: "0",
    });
    try {
      const record = listeningRecord(api.log());
      expect(record.address).toBe(bound);
      expect(record.port).toEqual(expect.any(Number));
      expect(record.url).toBe(`${urlStart}${record.port}/graphql`);
      expect(api.url).toBe(`${urlStart}${record.port}`);
      expect((await fetch(`${api.url}/health`)).status).toBe(200);
      // The metrics listener binds METRICS_HOST by the same rules, on a port of its own.
      const metrics = listeningRecord(api.log(), "metrics listening");
      expect(metrics.address).toBe(bound);
      expect(metrics.port).not.toBe(record.port);
      expect(metrics.url).toBe(`${urlStart}${metrics.port}/metrics`);
      expect((await fetch(String(metrics.url))).status).toBe(200);
    } finally {
      expect(await api.stop()).toBe(0);
    }
  });
});
