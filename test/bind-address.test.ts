import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { liveIngestHosts, loadEnv } from "../src/config.ts";
import { loadWorkerEnv } from "../render-worker/config.ts";
import { srtGatewayBuilt } from "../src/live/srt-gateway-build.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";
import { API_NODE_FLAGS } from "../src/node-flags.ts";

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

  it("HOST=127.0.0.1: the RTMP and SRT ingests bind 127.0.0.1 too, and their log records say where", async () => {
    expect(srtGatewayBuilt(), "npm run setup:srt").toBe(true);
    const api = await startApiProcess("api-bind-ingest", {
      HOST: "127.0.0.1",
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      LIVE_RTMP_PORT: "0",
      LIVE_SRT_PORT: "0",
    });
    try {
      const records = api
        .log()
        .split("\n")
        .filter((l) => l.includes('"message":"live ingest listening"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const rtmp = records.find((r) => r.protocol === "rtmp")!;
      const srt = records.find((r) => r.protocol === "srt")!;
      expect(rtmp).toMatchObject({ address: "127.0.0.1", port: expect.any(Number) });
      expect(rtmp.url).toBe(`rtmp://localhost:${rtmp.port}/live`);
      expect(srt).toMatchObject({ address: "127.0.0.1", port: expect.any(Number), url: `srt://localhost:${srt.port}` });
      // Bound to 127.0.0.1 alone: another loopback address of this machine does not reach the RTMP
      // ingest, and its UDP port there is free to bind (a wildcard bind would hold both).
      const reached = await new Promise<string>((resolve) => {
        const socket = connect({ host: "127.0.0.2", port: Number(rtmp.port) });
        socket.on("connect", () => resolve("connected"));
        socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      expect(reached).toBe("ECONNREFUSED");
      const udp = createSocket("udp4");
      const bound = await new Promise<string>((resolve) => {
        udp.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        udp.bind(Number(srt.port), "127.0.0.2", () => resolve("bound"));
      });
      udp.close();
      expect(bound).toBe("bound");
    } finally {
      expect(await api.stop()).toBe(0);
    }
  });

  it("LIVE_RTMP_HOST and LIVE_SRT_HOST default to HOST, whatever it is", () => {
    expect(liveIngestHosts(loadEnv({ HOST: "127.0.0.1" }))).toEqual({ rtmp: "127.0.0.1", srt: "127.0.0.1" });
    expect(liveIngestHosts(loadEnv({ HOST: "::1", LIVE_RTMP_HOST: "0.0.0.0" }))).toEqual({
      rtmp: "0.0.0.0",
      srt: "::1",
    });
    expect(liveIngestHosts(loadEnv({ LIVE_SRT_HOST: "127.0.0.1" }))).toEqual({ rtmp: "0.0.0.0", srt: "127.0.0.1" });
  });
});

/** `node src/main.ts` as `npm start` runs it, with no DATABASE_URL: resolves when it exits. */
function runApi(env: Record<string, string>): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const { DATABASE_URL: _, ...inherited } = process.env;
  const child = spawn(process.execPath, [...API_NODE_FLAGS, "src/main.ts"], {
    env: { ...inherited, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.on("data", (d) => (stderr += d));
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, ms: Date.now() - started });
    }),
  );
}

describe("a start that cannot serve says why in one line before it starts anything", () => {
  let blocker: Server;
  let busyPort: number;
  let parent: string;
  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "0.0.0.0", resolve));
    busyPort = (blocker.address() as AddressInfo).port;
    parent = await mkdtemp(path.join(tmpdir(), "videograph-refused-start-"));
  });
  afterAll(async () => {
    await new Promise((resolve) => blocker?.close(resolve));
    await rm(parent, { recursive: true, force: true });
  });

  it("PORT in use: exits 1 within 5 s with one line naming the port and PORT, no stack trace, no Postgres", async () => {
    const dataDir = path.join(parent, "busy-port");
    const run = await runApi({ PORT: String(busyPort), HOST: "0.0.0.0", DATA_DIR: dataDir });
    expect(run.code).toBe(1);
    expect(run.ms).toBeLessThan(5000);
    expect(run.stderr.trim()).toMatch(
      new RegExp(`^port ${busyPort} is in use: set PORT=\\d+ \\(or PORT=0 for any free port\\)$`),
    );
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(dataDir)).toBe(false);
  });

  it("LIVE_RTMP_PORT in use: exits 1 within 5 s with one line naming the RTMP ingest and LIVE_RTMP_PORT, before any Postgres or admin key", async () => {
    const dataDir = path.join(parent, "busy-rtmp-port");
    const run = await runApi({ PORT: "0", LIVE_RTMP_PORT: String(busyPort), LIVE_SRT_PORT: "off", DATA_DIR: dataDir });
    expect(run.code).toBe(1);
    expect(run.ms).toBeLessThan(5000);
    expect(run.stderr.trim()).toMatch(
      new RegExp(
        `^the RTMP ingest's port ${busyPort} is in use: set LIVE_RTMP_PORT=\\d+ \\(or LIVE_RTMP_PORT=0 for any free port\\)$`,
      ),
    );
    expect(existsSync(dataDir)).toBe(false);
  });

  it("LIVE_SRT_PORT in use (UDP): exits 1 within 5 s with one line naming the SRT ingest and LIVE_SRT_PORT, before any Postgres or admin key", async () => {
    expect(srtGatewayBuilt(), "npm run setup:srt").toBe(true);
    const udp = createSocket("udp4");
    await new Promise<void>((resolve) => udp.bind(0, "0.0.0.0", resolve));
    try {
      const port = udp.address().port;
      const dataDir = path.join(parent, "busy-srt-port");
      const run = await runApi({ PORT: "0", LIVE_RTMP_PORT: "0", LIVE_SRT_PORT: String(port), DATA_DIR: dataDir });
      expect(run.code).toBe(1);
      expect(run.ms).toBeLessThan(5000);
      expect(run.stderr.trim()).toMatch(
        new RegExp(
          `^the SRT ingest's UDP port ${port} is in use: set LIVE_SRT_PORT=\\d+ \\(or LIVE_SRT_PORT=0 for any free port\\)$`,
        ),
      );
      expect(run.stderr).not.toContain("Admin API key");
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      udp.close();
    }
  });

  it("HOST that is not an address: exits 2 with the configuration error, before any Postgres", async () => {
    const dataDir = path.join(parent, "bad-host");
    const run = await runApi({ PORT: "0", HOST: "not-an-ip", DATA_DIR: dataDir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("HOST: an IP address to bind");
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(dataDir)).toBe(false);
  });

  it("HOST, METRICS_HOST and WORKER_OPS_HOST take an IPv4 or IPv6 address or localhost, nothing else", () => {
    for (const host of ["0.0.0.0", "127.0.0.1", "::", "::1", "localhost"]) {
      expect(loadEnv({ HOST: host, METRICS_HOST: host }).HOST).toBe(host);
      expect(loadWorkerEnv({ DATABASE_URL: "postgres://x@h/db", WORKER_OPS_HOST: host }).WORKER_OPS_HOST).toBe(host);
    }
    for (const host of ["not-an-ip", "256.1.1.1", "example.com", "[::1]", "127.0.0.1:80"]) {
      expect(() => loadEnv({ HOST: host }), host).toThrow(/HOST: an IP address to bind/);
      expect(() => loadEnv({ METRICS_HOST: host }), host).toThrow(/METRICS_HOST: an IP address to bind/);
      expect(() => loadWorkerEnv({ DATABASE_URL: "postgres://x@h/db", WORKER_OPS_HOST: host }), host).toThrow(
        /WORKER_OPS_HOST: an IP address to bind/,
      );
    }
  });
});
