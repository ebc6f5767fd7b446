import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOpsServer } from "../render-worker/ops-server.ts";
import { createLocalWorkerStorage } from "../render-worker/storage/local.ts";
import { createPostgresWorkerTransport } from "../render-worker/transport/postgres.ts";
import { createWorker } from "../render-worker/worker.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";
import { trickleBody } from "./support/trickled-body.ts";

/** A TCP proxy to Postgres that can black out: open connections are cut and new ones closed at once. */
async function startBlackoutProxy(target: URL) {
  const open = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((client) => {
    client.on("error", () => {});
    if (down) return void client.destroy();
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    open.add(client).add(upstream);
    client.once("close", () => open.delete(client));
    upstream.once("close", () => open.delete(upstream));
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackOut() {
      down = true;
      for (const socket of open) socket.destroy();
    },
    restore() {
      down = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function probe(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

describe("API liveness and readiness (a real API process on a real Postgres behind a proxy)", () => {
  let db: TestDatabase;
  let dataDir: string;
  let proxy: Awaited<ReturnType<typeof startBlackoutProxy>>;
  let api: ServiceProcess & { url: string };
  let admin: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "videograph-health-"));
    proxy = await startBlackoutProxy(new URL(db.url));
    const proxied = new URL(db.url);
    proxied.port = String(proxy.port);
    api = await startApiProcess("api-health", { DATABASE_URL: proxied.toString(), DATA_DIR: dataDir });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await stopAllProcesses();
    await proxy?.close();
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("is live and ready once started; /health answers as before", async () => {
    expect(await probe(`${api.url}/livez`)).toEqual({ status: 200, body: { status: "ok" } });
    expect(await probe(`${api.url}/readyz`)).toEqual({
      status: 200,
      body: { status: "ready", checks: { database: "ok", migrations: "ok", transport: "ok" } },
    });
    expect(await probe(`${api.url}/health`)).toEqual({ status: 200, body: { status: "ok" } });
  });

  it("is not ready (503) while the database is unreachable, still live, and ready again after", async () => {
    proxy.blackOut();
    try {
      await expect.poll(async () => (await probe(`${api.url}/readyz`)).status, { timeout: 15_000 }).toBe(503);
      const notReady = await probe(`${api.url}/readyz`);
      expect(notReady.body.status).toBe("not ready");
      expect(notReady.body.checks.database).toBe("unavailable");
      expect(notReady.body.checks.transport).toBe("unavailable");
      // Reasons never carry connection details.
      expect(JSON.stringify(notReady.body)).not.toMatch(/127\.0\.0\.1|5432|postgres/i);
      expect((await probe(`${api.url}/health`)).status).toBe(503);
      expect((await probe(`${api.url}/livez`)).status).toBe(200);
    } finally {
      proxy.restore();
    }
    await expect.poll(async () => (await probe(`${api.url}/readyz`)).status, { timeout: 30_000 }).toBe(200);
    expect(api.child.exitCode).toBeNull();
  });

  it("is not ready while a migration this build ships is not applied, and ready once it is", async () => {
    const { rows } = await admin.query<{ migration_name: string }>(
      `SELECT migration_name FROM "_prisma_migrations" ORDER BY migration_name DESC LIMIT 1`,
    );
    const latest = rows[0]!.migration_name;
    await admin.query(`UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1`, [latest]);
    try {
      const notReady = await probe(`${api.url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(notReady.body.checks).toEqual({ database: "ok", migrations: `missing: ${latest}`, transport: "ok" });
      expect((await probe(`${api.url}/livez`)).status).toBe(200);
    } finally {
      await admin.query(`UPDATE "_prisma_migrations" SET rolled_back_at = NULL WHERE migration_name = $1`, [latest]);
    }
    expect((await probe(`${api.url}/readyz`)).status).toBe(200);
  });
});

describe("worker liveness and readiness (its ops endpoint over real HTTP)", () => {
  let t: TestApp;
  let tmp: string;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
    tmp = await mkdtemp(path.join(tmpdir(), "videograph-health-worker-"));
  });
  afterAll(async () => {
    await t?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it("is live at once, ready only after its capability probe (a real NVENC probe encode) and not while stopping", async () => {
    const worker = createWorker({
      workerId: "health-worker",
      capabilities: ["cpu", "nvenc"],
      concurrency: 1,
      liveSlots: 1,
      transport: createPostgresWorkerTransport(t.database.url),
      storage: createLocalWorkerStorage(t.dataDir),
      tmpDir: tmp,
      progressIntervalMs: 250,
      heartbeatIntervalSeconds: 2,
    });
    const ops = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      metricsPath: "/metrics",
      readiness: () => worker.readiness(),
    });
    try {
      expect(await probe(`${ops.url}/livez`)).toEqual({ status: 200, body: { status: "ok" } });
      expect(await probe(`${ops.url}/readyz`)).toEqual({
        status: 503,
        body: { status: "not ready", checks: { capabilities: "probing", transport: "not started" } },
      });
      const started = worker.start();
      expect((await probe(`${ops.url}/readyz`)).status).toBe(503);
      await started;
      const ready = await probe(`${ops.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(ready.body.status).toBe("ready");
      // Without a GPU the probe encode fails and nvenc is dropped: readiness lists what was kept.
      expect(ready.body.checks.capabilities.split(",")).toContain("cpu");
      expect(ready.body.checks.transport).toBe("ok");
      expect((await probe(`${ops.url}/health`)).status).toBe(200);
      expect((await fetch(`${ops.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${ops.url}/other`)).status).toBe(404);
      await worker.shutdown(5);
      expect((await probe(`${ops.url}/readyz`)).status).toBe(503);
    } finally {
      await ops.close();
    }
  });

  it("cuts off a body that keeps arriving after its answer, about 5 s after it, instead of reading it for as long as the client sends", async () => {
    const readiness = async () => ({ ready: true, checks: { capabilities: "cpu", transport: "ok" } });
    const ops = await startOpsServer({ host: "127.0.0.1", port: 0, metricsPath: "/metrics", readiness });
    try {
      // 32 MiB declared, 64 KiB sent every 100 ms: 50 s of body, were it read to its end.
      const sent = await trickleBody("POST", new URL(`${ops.url}/livez`));
      expect(sent.statusLine).toMatch(/^HTTP\/1\.1 405 /); // the ops endpoint takes GET and HEAD only
      expect(sent.cutAfterAnswerMs, "the server still read the body 15 s after its answer").not.toBeNull();
      // REFUSED_BODY_LINGER_MS (5 s) after the answer, with room for a loaded machine.
      expect(sent.cutAfterAnswerMs).toBeGreaterThan(3_000);
      expect(sent.cutAfterAnswerMs).toBeLessThan(9_000);
    } finally {
      await ops.close();
    }
  });
});
