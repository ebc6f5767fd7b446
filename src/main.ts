import { loadEnv } from "./config.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./db/embedded.ts";
import { startLocalWorker, type LocalWorker } from "./local-worker.ts";
import { log, setLogLevel } from "./log.ts";
import { loadConfigOrExit, parseCommandLine } from "./protocol/command-line.ts";
import { startTracing } from "./protocol/tracing.ts";
import { createApp } from "./server.ts";

parseCommandLine(
  `usage: npm start
Runs the API on PORT (default 4000) with everything it needs: an embedded Postgres when
DATABASE_URL is unset, local storage under DATA_DIR, and a render worker beside it. Configured only
by environment variables (and a .env file): .env.template documents each one. Ctrl-C stops it.`,
  {},
);
const env = loadConfigOrExit(loadEnv);
setLogLevel(env.LOG_LEVEL);
const tracing = startTracing("videograph-api");

let embedded: EmbeddedDatabase | null = null;
if (!env.DATABASE_URL) {
  log.info("DATABASE_URL is not set: starting an embedded Postgres under DATA_DIR");
  embedded = await startEmbeddedPostgres(env.DATA_DIR);
}
const databaseUrl = env.DATABASE_URL ?? embedded!.url;
const app = await createApp(env, databaseUrl);
await app.start();

let worker: LocalWorker | null = null;
if (env.LOCAL_WORKER) {
  worker = startLocalWorker({
    databaseUrl,
    dataDir: env.DATA_DIR,
    concurrency: env.WORKER_CONCURRENCY,
    graceSeconds: env.SHUTDOWN_GRACE_SECONDS,
  });
}

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    if (stopping) {
      log.warn("second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info(`${signal}: shutting down`);
    try {
      // Subscribers go first, at once: a client reconnects elsewhere instead of giving up while
      // the local worker's jobs drain for up to SHUTDOWN_GRACE_SECONDS.
      const subscriptionsClosed = app.closeSubscriptions();
      await worker?.stop();
      await subscriptionsClosed;
      await app.stop();
      await embedded?.stop();
      await tracing.shutdown();
      process.exit(0);
    } catch (err) {
      log.error("shutdown failed", { err });
      process.exit(1);
    }
  });
}
