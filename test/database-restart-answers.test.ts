import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../src/db/embedded.ts";
import { ANALYTICS_PATHS } from "../src/shared/analytics-beacons.ts";
import { WebSocket } from "ws";
import { ADMIN_AUTH } from "./support/auth.ts";
import { createUpload } from "./support/uploads.ts";
import { startApiProcess, stopAllProcesses, type ServiceProcess } from "./support/processes.ts";

/** Each batch reports this much watch time: well within a view's bound at one batch every 25 ms. */
const WATCHED_MS = 10;
const VIEWS = 4;

/**
 * What the API answers while its database restarts (a real restart of an embedded Postgres of this
 * test's own, under a real API process) must match what it stored: a beacon batch answered `202`
 * counted is in the database afterwards, an upload `PUT` that cannot be recorded is a `503`
 * with `Retry-After`, not a `500`, and a WebSocket whose credential cannot be checked is closed with
 * 1013 (try again later), not graphql-ws' fatal 4500.
 */
/** A graphql-transport-ws connection_init with the admin key: how the server closed the socket, or its first frame. */
async function webSocketInit(url: string): Promise<{ code: number; reason: string } | { frame: string }> {
  const socket = new WebSocket(url, "graphql-transport-ws");
  return new Promise((resolve, reject) => {
    socket.on("error", reject);
    socket.on("open", () =>
      socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: ADMIN_AUTH.authorization } })),
    );
    socket.on("message", (data) => {
      resolve({ frame: String(data) });
      socket.close();
    });
    socket.on("close", (code, reason) => resolve({ code, reason: String(reason) }));
  });
}

describe("answers during a Postgres restart match what was stored", () => {
  let root: string;
  let postgres: EmbeddedDatabase;
  let port: number;
  let api: ServiceProcess & { url: string };

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "videograph-restart-answers-"));
    // As root, Postgres runs as the "postgres" user, which must reach its data dir.
    await chmod(root, 0o755);
    postgres = await startEmbeddedPostgres(path.join(root, "db"));
    port = Number(new URL(postgres.url).port);
    api = await startApiProcess("api", {
      DATABASE_URL: postgres.url,
      DATA_DIR: path.join(root, "data"),
      SIGNING_SECRET: "a-shared-secret-for-the-restart-answers-0",
      ANALYTICS_BATCHES_PER_VIEW_PER_MINUTE: "100000",
      ANALYTICS_REQUESTS_PER_CLIENT_PER_MINUTE: "100000",
    });
  }, 120_000);
  afterAll(async () => {
    await stopAllProcesses();
    await postgres?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const post = (pathname: string, body: unknown) =>
    fetch(`${api.url}${pathname}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it(`every beacon batch answered 202 counted is counted, an upload PUT gets 503 with Retry-After, and a \
WebSocket's connection_init a close to retry`, async () => {
    const { uploadUrl, id: videoId } = await createUpload(api.url, "restart");
    const views: Array<{ viewId: string; viewToken: string; seq: number }> = [];
    for (let i = 0; i < VIEWS; i++) {
      const res = await post(ANALYTICS_PATHS.views, { v: 1, videoId });
      expect(res.status).toBe(201);
      views.push({ ...((await res.json()) as { viewId: string; viewToken: string }), seq: 0 });
    }

    const answers: Array<{ status: number; counted: boolean }> = [];
    let sending = true;
    const senders = views.map(async (view) => {
      while (sending) {
        const batch = {
          v: 1,
          videoId,
          viewToken: view.viewToken,
          seq: view.seq++,
          events: [{ type: "watch", at: 1000, height: 180, watchedMs: WATCHED_MS }],
        };
        const res = await post(ANALYTICS_PATHS.beacons, batch).catch(() => null);
        if (res) {
          const body = (await res.json().catch(() => ({}))) as { counted?: boolean };
          answers.push({ status: res.status, counted: res.status === 202 && body.counted === true });
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    });

    await new Promise((r) => setTimeout(r, 1000));
    await postgres.stop();
    await new Promise((r) => setTimeout(r, 500));
    const [put, wsClosed] = await Promise.all([
      fetch(`${api.url}${uploadUrl}`, { method: "PUT", body: Buffer.alloc(1024) }),
      webSocketInit(`${api.url.replace("http", "ws")}/graphql`),
    ]);
    await new Promise((r) => setTimeout(r, 2500));
    postgres = await startEmbeddedPostgres(path.join(root, "db"), port);
    const answeredBefore = answers.length;
    // Until batches are counted again, and a little after.
    await expect
      .poll(() => answers.slice(answeredBefore).some((a) => a.counted), { timeout: 20_000, interval: 200 })
      .toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
    sending = false;
    await Promise.all(senders);
    // Anything still pending is written within the buffer's 250 ms.
    await new Promise((r) => setTimeout(r, 1000));

    expect(put.status).toBe(503);
    // A WebSocket whose credential cannot be checked is closed for a retry: graphql-ws' clients
    // take its 4500 (a throw in onConnect) as fatal and end every subscription on the socket.
    expect(wsClosed).toMatchObject({ code: 1013 });
    expect(put.headers.get("retry-after")).toBeTruthy();
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ watchMs: string }>(
        `SELECT COALESCE(sum("watchMs"), 0) AS "watchMs" FROM "AnalyticsView" WHERE "videoId" = $1`,
        [videoId],
      );
      const counted = answers.filter((a) => a.counted).length;
      expect(Number(rows[0]!.watchMs)).toBe(counted * WATCHED_MS);
    } finally {
      await client.end();
    }
    // The premise: the restart reached the beacons (they could not be written meanwhile).
    expect(answers.filter((a) => a.status === 503).length).toBeGreaterThan(0);
  }, 120_000);
});
