import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";

/**
 * `npm start` with nothing configured: the entry file starts an embedded Postgres, applies
 * migrations, serves, runs a local worker, and stops cleanly on SIGTERM.
 */
describe("npm start with no configuration", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await stopAllProcesses();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("serves GraphQL on an embedded Postgres and exits 0 on SIGTERM", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "videograph-start-"));
    dirs.push(dataDir);
    // As root (CI), the embedded Postgres runs as the "postgres" user, which must reach the data dir.
    await chmod(dataDir, 0o755);
    const api = await startApiProcess("api", { DATA_DIR: dataDir, DATABASE_URL: undefined, LOCAL_WORKER: "true", BOOTSTRAP_API_KEY: undefined });
    expect(api.log()).toContain("embedded Postgres started");
    // The first start of an empty database creates an admin key and prints it, once.
    const printed = (await api.waitForLog(/shown once, keep it:\s+(vg_[\w-]+)/)) as RegExpMatchArray;
    const key = printed[1]!;

    const health = await fetch(`${api.url}/health`);
    expect(await health.json()).toEqual({ status: "ok" });
    const res = await fetch(`${api.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: `mutation { createUpload(input: { title: "x" }) { __typename } }` }),
    });
    expect(await res.json()).toEqual({ data: { createUpload: { __typename: "CreateUploadSuccess" } } });

    // The local worker is up once it has announced itself.
    await api.waitForLog('"msg":"worker ready"', 30_000);

    expect(await api.stop("SIGTERM")).toBe(0);
    expect(api.log()).toContain('"msg":"stopped"');
  });
});
