import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Client, createClient } from "graphql-ws";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { freePort } from "../src/free-port.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { startApiProcess, startWorkerProcess, stopAllProcesses } from "./support/processes.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql, operationText, type ResultOf } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

/** A ladder encode that never ends until it is killed: holds a job in the local worker while the API drains. */
const ENDLESS_ENCODE_FFMPEG = path.resolve(import.meta.dirname, "fixtures/stand-in-ffmpeg/endless-encode");
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status } } }`);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await stopAllProcesses();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let clip: Buffer;
beforeAll(async () => {
  clip = await readFile(await makeClip({ width: 320, height: 240, seconds: 2, audio: false }));
});

async function databaseAndDataDir(): Promise<{ database: TestDatabase; dataDir: string }> {
  const database = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(tmpdir(), "videograph-restart-"));
  cleanups.push(
    () => database.drop(),
    () => rm(dataDir, { recursive: true, force: true }),
  );
  return { database, dataDir };
}

async function upload(url: string): Promise<string> {
  const { uploadUrl, id } = await createUpload(url, "restart");
  const res = await fetch(`${url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(clip) });
  expect(res.status).toBe(200);
  return id;
}

/** The client of docs/api-guide.md's "Subscriptions that survive a restart", as a Node program writes it. */
function documentedClient(url: string, on: { closed: (code: number) => void }): Client {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: ADMIN_AUTH.authorization },
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: (retries) =>
      new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** retries, 10_000) + Math.random() * 1000)),
    on: { closed: (event) => on.closed((event as { code: number }).code) },
  });
  cleanups.push(async () => client.dispose());
  return client;
}

describe("graphql-ws subscribers across an API restart", () => {
  it(`SIGTERM closes every subscription socket at once with 1001 (going away), while the local worker still drains \
its job (a stand-in encode that never ends)`, async () => {
    const { database, dataDir } = await databaseAndDataDir();
    const api = await startApiProcess("api", {
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      LOCAL_WORKER: "true",
      FFMPEG_PATH: ENDLESS_ENCODE_FFMPEG,
      SHUTDOWN_GRACE_SECONDS: "8",
      HLS_SEGMENT_SECONDS: "2",
    });
    const id = await upload(api.url);
    await api.waitForLog('"message":"job started"', 30_000);

    const closes: { code: number; at: number }[] = [];
    const client = createClient({
      url: `${api.url.replace("http", "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: ADMIN_AUTH.authorization },
      retryAttempts: 0,
      on: { closed: (event) => closes.push({ code: (event as { code: number }).code, at: Date.now() }) },
    });
    cleanups.push(async () => client.dispose());
    const first = new Promise<void>((resolve) =>
      client.subscribe(
        { query: operationText(EVENTS), variables: { id } },
        { next: () => resolve(), error: () => {}, complete: () => {} },
      ),
    );
    await first;

    const exited = new Promise<number | null>((resolve) => api.child.once("exit", (code) => resolve(code)));
    const signalledAt = Date.now();
    api.child.kill("SIGTERM");
    const deadline = signalledAt + 5_000;
    while (closes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(closes[0]?.code).toBe(1001);
    expect(closes[0]!.at - signalledAt).toBeLessThan(1_500);
    // The drain (the worker's SHUTDOWN_GRACE_SECONDS) was still under way when the socket closed.
    expect(api.child.exitCode).toBeNull();
    // One signal: a second would force the exit.
    expect(await exited).toBe(0);
  });

  it(`a client with the documented retry policy reconnects to the restarted API (same port) and receives READY for a \
video that finished while no API ran`, async () => {
    const { database, dataDir } = await databaseAndDataDir();
    const port = await freePort();
    const env = {
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      PORT: String(port),
      SIGNING_SECRET: "a-shared-secret-for-both-instances-000",
      HLS_SEGMENT_SECONDS: "2",
    };
    const first = await startApiProcess("api-first", env);
    // No worker yet: the video waits QUEUED.
    const id = await upload(first.url);

    const closed: number[] = [];
    const client = documentedClient(`ws://127.0.0.1:${port}/graphql`, { closed: (code) => closed.push(code) });
    const statuses: string[] = [];
    let sawQueued!: () => void;
    const queued = new Promise<void>((resolve) => (sawQueued = resolve));
    const ended = new Promise<void>((resolve, reject) =>
      client.subscribe<ResultOf<typeof EVENTS>>(
        { query: operationText(EVENTS), variables: { id } },
        {
          next: (m) => {
            const status = m.data?.videoEvents.video.status;
            if (status) statuses.push(status);
            if (status === "QUEUED") sawQueued();
          },
          error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
          complete: () => resolve(),
        },
      ),
    );
    await queued;

    expect(await first.stop("SIGTERM")).toBe(0);
    // While no API runs, a worker encodes the video; its events wait in the queue.
    const worker = await startWorkerProcess("worker", { ...env, PROGRESS_INTERVAL_MS: "250" });
    await worker.waitForLog('"message":"job finished"', 60_000);
    expect(statuses).not.toContain("READY");

    await startApiProcess("api-second", env);
    await ended;
    expect(closed[0]).toBe(1001);
    expect(statuses[0]).toBe("QUEUED");
    expect(statuses.at(-1)).toBe("READY");
  });
});
