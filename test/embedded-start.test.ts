import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/**
 * `npm start` with nothing configured: the entry file starts an embedded Postgres, applies
 * migrations, serves, runs a local worker, and stops cleanly on SIGTERM.
 */
describe("npm start with no configuration", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("serves GraphQL on an embedded Postgres and exits 0 on SIGTERM", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "videograph-start-"));
    dirs.push(dataDir);
    // As root (CI), the embedded Postgres runs as the "postgres" user, which must reach the data dir.
    await chmod(dataDir, 0o755);
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" };
    delete env.DATABASE_URL;
    const child = spawn(process.execPath, ["src/main.ts"], { env, stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "API listening" within 60 s:\n${log}`)), 60_000);
      child.stderr.on("data", (d) => {
        log += d;
        const m = /"msg":"API listening","url":"(http:\/\/[^"]+)\/graphql"/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once("exit", (code) => reject(new Error(`exited with ${code}:\n${log}`)));
    });
    expect(log).toContain("embedded Postgres started");

    const health = await fetch(`${url}/health`);
    expect(await health.json()).toEqual({ status: "ok" });
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: `mutation { createUpload(input: { title: "x" }) { __typename } }` }),
    });
    expect(await res.json()).toEqual({ data: { createUpload: { __typename: "CreateUploadSuccess" } } });

    // The local worker is up once it has announced itself.
    await expect.poll(() => log.includes('"msg":"worker ready"'), { timeout: 30_000 }).toBe(true);

    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
    expect(log).toContain('"msg":"stopped"');
  });
});
