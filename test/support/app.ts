import { mkdtemp, rm } from "node:fs/promises";
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
import {
  type Checked,
  type DataOf,
  type GraphqlAnswer,
  type Operation,
  operationText,
  postGraphql,
  type VariablesFor,
} from "./graphql.ts";

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
  gql<D extends Operation>(
    operation: D & Checked<D>,
    variables?: VariablesFor<D>,
    authorization?: string,
  ): Promise<GraphqlAnswer<DataOf<D>>>;
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
        // Speech recognition: only the tests that transcribe ask for it (WORKER_CAPABILITIES asr).
        WORKER_DETECT_ASR: "false",
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
    gql: (operation, variables, authorization = ADMIN_AUTH.authorization) =>
      postGraphql(url, operation, variables, authorization),
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

/**
 * Collects every event of a subscription until it completes (or errors): typed by a `graphql`
 * document, or `T` for a string.
 */
export function collectSubscription<T = never, D extends Operation = Operation>(
  client: Client,
  operation: D & Checked<D>,
  variables: VariablesFor<D>,
) {
  type Event = [T] extends [never] ? DataOf<D> : T;
  const events: Event[] = [];
  const done = new Promise<Event[]>((resolve, reject) => {
    client.subscribe<Event>(
      { query: operationText<D>(operation), variables },
      {
        next: (msg) => {
          if (msg.errors) reject(new Error(JSON.stringify(msg.errors)));
          else events.push(msg.data as Event);
        },
        error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
        complete: () => resolve(events),
      },
    );
  });
  return { events, done };
}

/** POSTs an operation to the API at `url` as the admin key and returns `data`; GraphQL errors throw. */
export async function gqlAt<D extends Operation>(
  url: string,
  operation: D & Checked<D>,
  variables: VariablesFor<D> = {} as VariablesFor<D>,
): Promise<DataOf<D>> {
  const body = await postGraphql(url, operation, variables, ADMIN_AUTH.authorization);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}
