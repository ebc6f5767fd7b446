import v8 from "node:v8";
import { liveIngestHosts, loadEnv } from "./config.ts";
import type { EmbeddedDatabase } from "./db/embedded.ts";
import type { LocalWorker } from "./local-worker.ts";
import { log, setLogLevel } from "./log.ts";
import { loadConfigOrExit, parseCommandLine } from "./shared/command-line.ts";
import { srtGatewayBuilt } from "./live/srt-gateway-build.ts";
import { ListenerFailed, type ListenerNames, whyCannotListen } from "./shared/listen.ts";
import { createStopSignals, STOP_SIGNALS } from "./shared/stop-signals.ts";
import { startTracing } from "./shared/tracing.ts";

parseCommandLine(
  `usage: npm start
Runs the API on PORT (default 4000) with everything it needs: an embedded Postgres when
DATABASE_URL is unset, local storage under DATA_DIR, and a render worker beside it. Configured only
by environment variables (and a .env file): .env.template documents each one. Ctrl-C stops it.`,
  {},
);
const env = loadConfigOrExit(loadEnv);
/** After a second signal, how long the rest of the shutdown may take before the process exits anyway. */
const HURRIED_EXIT_MS = 10_000;
// V8 lets the old space grow to up to four times what was live after its last full collection before
// it collects again: with 10,000 subscribers, bursts of events left about 570 MiB of garbage in it and
// an RSS of 920 MiB. Growing it by at most 20 % keeps the peak near 600 MiB for the same load, at the
// same event latency (docs/performance.md, "Memory"). V8 reads this flag at each collection, so it
// takes effect here, before the API is loaded.
v8.setFlagsFromString("--heap-growing-percent=20");
setLogLevel(env.LOG_LEVEL);
// Before anything slow starts (an embedded Postgres, migrations, the admin key): a busy port is one
// line, at once, naming the listener and its setting.
const ingestHosts = liveIngestHosts(env);
const listeners: [port: number | "off" | undefined, host: string, names: ListenerNames][] = [
  [env.PORT, env.HOST, { port: "PORT", host: "HOST" }],
  [env.METRICS_PORT, env.METRICS_HOST, { port: "METRICS_PORT", host: "METRICS_HOST", what: "the metrics port" }],
  [
    env.LIVE_RTMP_PORT,
    ingestHosts.rtmp,
    { port: "LIVE_RTMP_PORT", host: "LIVE_RTMP_HOST", what: "the RTMP ingest's port" },
  ],
  [
    srtGatewayBuilt() ? env.LIVE_SRT_PORT : "off",
    ingestHosts.srt,
    { port: "LIVE_SRT_PORT", host: "LIVE_SRT_HOST", what: "the SRT ingest's UDP port", transport: "udp" },
  ],
];
for (const [port, host, names] of listeners) {
  const why = port === undefined || port === "off" || port === 0 ? null : await whyCannotListen(port, host, names);
  if (why) {
    process.stderr.write(`${why}\n`);
    process.exit(1);
  }
}
const tracing = await startTracing("videograph-api");

// Imported once the ports are known free: loading the schema and its clients takes seconds.
const [{ startEmbeddedPostgres }, { startLocalWorker }, { createApp }] = await Promise.all([
  import("./db/embedded.ts"),
  import("./local-worker.ts"),
  import("./server.ts"),
]);

let embedded: EmbeddedDatabase | null = null;
if (!env.DATABASE_URL) {
  log.info("DATABASE_URL is not set: starting an embedded Postgres under DATA_DIR");
  embedded = await startEmbeddedPostgres(env.DATA_DIR);
}
const databaseUrl = env.DATABASE_URL ?? embedded!.url;
const app = await createApp(env, databaseUrl);
let worker: LocalWorker | null = null;
let starting: Promise<unknown> = Promise.resolve();
const stops = createStopSignals({
  log,
  canHandBack: () => worker !== null,
  handBack: () => worker!.handBackNow(),
  handBackLine: (signal) => `${signal} again: the local worker hands its jobs back now; they resume on the next start`,
  hurriedExitMs: HURRIED_EXIT_MS,
});
for (const signal of STOP_SIGNALS) process.on(signal, () => stops.received(signal, () => void shutdown(signal)));

/** The ordered stop of the first signal. */
async function shutdown(signal: string): Promise<void> {
  log.info(`${signal}: shutting down`);
  if (worker)
    log.info(
      `stopping: the local worker finishes its jobs in flight, or hands them back after ` +
        `SHUTDOWN_GRACE_SECONDS (${env.SHUTDOWN_GRACE_SECONDS} s); ${signal === "SIGINT" ? "Ctrl-C" : signal} again ` +
        "hands them back now, and they resume on the next start",
    );
  try {
    // A signal during the start stops what started once the start has settled, in the same order.
    await starting.catch(() => {});
    // Subscribers go first, at once: a client reconnects elsewhere instead of giving up while
    // the local worker's jobs drain for up to SHUTDOWN_GRACE_SECONDS.
    const subscriptionsClosed = app.closeSubscriptions();
    // The live ingest before the worker: broadcasts are handed on (their runs stopped, their
    // publishers' reconnect to any instance continues them) instead of running until the
    // worker's grace aborts them.
    await app.stopLiveIngest();
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
}

try {
  starting = app.start({
    // The first request already finds the local worker's report, so a scene sent at once is
    // queued while its Manim is being tested, not refused.
    beforeListen: async () => {
      if (!env.LOCAL_WORKER) return;
      worker = startLocalWorker({
        databaseUrl,
        dataDir: env.DATA_DIR,
        concurrency: env.WORKER_CONCURRENCY,
        graceSeconds: env.SHUTDOWN_GRACE_SECONDS,
      });
      if (env.INGEST_EVENTS && !(await worker.reported(app.services.db, 30_000)))
        log.warn("the local worker has not reported within 30 s; serving without waiting for it");
    },
  });
  await starting;
} catch (err) {
  // A port checked free above can be taken meanwhile: still one line naming that listener, and what started stops.
  if (err instanceof ListenerFailed)
    process.stderr.write(`${(await whyCannotListen(err.port, err.host, err.names)) ?? err.message}\n`);
  else log.error("the API failed to start", { err });
  await (worker as LocalWorker | null)?.stop().catch(() => {});
  await app.stop().catch(() => {});
  await embedded?.stop().catch(() => {});
  process.exit(1);
}
