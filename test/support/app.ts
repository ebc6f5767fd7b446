import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { loadEnv } from "../../src/config.ts";
import { startLocalWorker, type LocalWorker } from "../../src/local-worker.ts";
import { setLogLevel } from "../../src/log.ts";
import { createApp, type App } from "../../src/server.ts";
import { ADMIN_AUTH, TEST_ADMIN_KEY } from "./auth.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";

export interface TestApp {
  app: App;
  url: string;
  /** The metrics URL when the app was started with METRICS_PORT, else null. */
  metricsUrl: string | null;
  dataDir: string;
  database: TestDatabase;
  worker: LocalWorker | null;
  /** Every worker process the app started (`workers`), `worker` first. */
  workers: LocalWorker[];
  /**
   * POSTs a GraphQL operation with fetch, like a CMS would: as the admin key unless `authorization` says otherwise (""
   * sends none).
   */
  gql<T = any>(
    query: string,
    variables?: Record<string, unknown>,
    authorization?: string,
  ): Promise<{ data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] }>;
  /** A graphql-ws client on this app (as the admin key unless `authorization` says otherwise); closed by `stop`. */
  wsClient(authorization?: string): Client;
  stop(): Promise<void>;
}

/**
 * Variables the tests' workers get beyond those the API hands a worker (WORKER_ENV_NAMES): the tests'
 * compile cache (vitest.config.ts). The API passes a worker no Node settings of its own.
 */
export const TESTS_OWN_WORKER_ENV = ["NODE_COMPILE_CACHE"] as const;

function testsOwnWorkerEnv(): Record<string, string> {
  return Object.fromEntries(
    TESTS_OWN_WORKER_ENV.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
  );
}

/**
 * A whole service on a random port: its own database (cloned from the template), its own data
 * dir and, unless `worker: false`, real render worker processes (`workers`, default 1, each with
 * one slot). `stop` disposes of all of it. With `instanceOf`, a second API instance of that
 * service (stop it first).
 */
export async function startTestApp(
  options: {
    env?: Record<string, string>;
    worker?: boolean;
    workers?: number;
    workerEnv?: Record<string, string>;
    /** Another API instance of `app`'s deployment: its database and data dir (so its signing secret); `app` drops them. */
    instanceOf?: TestApp;
  } = {},
): Promise<TestApp> {
  const shared = options.instanceOf;
  const database = shared?.database ?? (await createTestDatabase());
  const dataDir = shared?.dataDir ?? (await mkdtemp(path.join(tmpdir(), "videograph-test-data-")));
  const env = loadEnv({
    NODE_ENV: "test",
    HOST: "127.0.0.1",
    PORT: "0",
    DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    HLS_SEGMENT_SECONDS: "2",
    PROGRESS_WRITE_INTERVAL_MS: "500",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    BOOTSTRAP_API_KEY: TEST_ADMIN_KEY,
    WEBHOOK_ALLOW_PRIVATE_URLS: "true",
    // Each app's RTMP ingest on a free port (tests run side by side).
    LIVE_RTMP_PORT: "0",
    // The SRT ingest (a gateway process) only where a test publishes over SRT.
    LIVE_SRT_PORT: "off",
    ...options.env,
  });
  // The API in this process logs at the app's LOG_LEVEL (warn unless the run sets one), as src/main.ts sets it.
  setLogLevel(env.LOG_LEVEL);
  const app = await createApp(env, database.url);
  const { url, metricsUrl } = await app.start();
  const workerCount = options.worker === false ? 0 : (options.workers ?? 1);
  const workers = Array.from({ length: workerCount }, (_, i) =>
    startLocalWorker({
      databaseUrl: database.url,
      dataDir,
      concurrency: 1,
      graceSeconds: 5,
      ...(i > 0 ? { workerId: `local-${process.pid}-${i + 1}` } : {}),
      extraEnv: {
        // A test render of Manim costs seconds of CPU: only the tests that render scenes ask for it.
        WORKER_DETECT_MANIM: "false",
        PROGRESS_INTERVAL_MS: "250",
        HEARTBEAT_INTERVAL_SECONDS: "2",
        LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
        TRANSPORT: env.TRANSPORT,
        JOB_STALL_SECONDS: String(env.JOB_STALL_SECONDS),
        ...(env.GOOGLE_CLOUD_PROJECT ? { GOOGLE_CLOUD_PROJECT: env.GOOGLE_CLOUD_PROJECT } : {}),
        PUBSUB_TOPIC_PREFIX: env.PUBSUB_TOPIC_PREFIX,
        ...testsOwnWorkerEnv(),
        ...options.workerEnv,
      },
    }),
  );
  const worker = workers[0] ?? null;
  const clients: Client[] = [];
  return {
    app,
    url,
    metricsUrl,
    dataDir,
    database,
    worker,
    workers,
    async gql(query, variables, authorization = ADMIN_AUTH.authorization) {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return res.json() as never;
    },
    wsClient(authorization = ADMIN_AUTH.authorization) {
      const client = wsClientAt(url, authorization);
      clients.push(client);
      return client;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.dispose()));
      await Promise.all(workers.map((w) => w.stop()));
      await app.stop();
      if (shared) return;
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A graphql-ws client on the API at `url` (as the admin key unless `authorization` says otherwise; ""
 * sends none), not retrying; the caller disposes of it.
 */
export function wsClientAt(url: string, authorization: string = ADMIN_AUTH.authorization): Client {
  return createClient({
    url: `${url.replace("http", "ws")}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: authorization ? { authorization } : {},
  });
}

/** Collects every event of a subscription until it completes (or errors). */
export function collectSubscription<T>(client: Client, query: string, variables: Record<string, unknown>) {
  const events: T[] = [];
  const done = new Promise<T[]>((resolve, reject) => {
    client.subscribe<T>(
      { query, variables },
      {
        next: (msg) => {
          if (msg.errors) reject(new Error(JSON.stringify(msg.errors)));
          else events.push(msg.data as T);
        },
        error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
        complete: () => resolve(events),
      },
    );
  });
  return { events, done };
}

/** Resolves at the first VariantProgressEvent of a video: its encode is under way. */
function firstProgress(client: Client, videoId: string): Promise<void> {
  return new Promise((resolve) => {
    client.subscribe(
      { query: `subscription($id: ID!) { videoEvents(videoId: $id) { __typename } }`, variables: { id: videoId } },
      {
        next: (m: any) => m.data?.videoEvents.__typename === "VariantProgressEvent" && resolve(),
        error: () => {},
        complete: () => {},
      },
    );
  });
}

/** POSTs an operation to the API at `url` and returns `data`; GraphQL errors throw. */
export async function gqlAt(url: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...ADMIN_AUTH },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/**
 * Creates an upload on the API at `url`, PUTs `clip` to it and resolves once the worker is
 * encoding (the first VariantProgressEvent); `final` collects the video's `events` subscription
 * until it ends.
 */
export async function uploadUntilEncoding(url: string, client: Client, clip: string, title: string, events: string) {
  const { uploadUrl, video } = (
    await gqlAt(
      url,
      `mutation($title: String!) { createUpload(input: { title: $title }) { ... on CreateUploadSuccess { uploadUrl ` +
        `video { id } } } }`,
      { title },
    )
  ).createUpload;
  const id = video.id as string;
  const started = firstProgress(client, id);
  const final = collectSubscription<any>(client, events, { id });
  const res = await fetch(`${url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) });
  if (res.status !== 200) throw new Error(`upload answered ${res.status}`);
  await started;
  return { id, final };
}
