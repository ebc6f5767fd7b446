import { loadConfigOrExit, parseCommandLine } from "../src/shared/command-line.ts";
import { createStopSignals, STOP_SIGNALS } from "../src/shared/stop-signals.ts";
import type { OpsServer } from "./ops-server.ts";
import type { WorkerStorage } from "./storage/types.ts";

parseCommandLine(
  `usage: npm run worker
Runs a render worker: it takes jobs for WORKER_CAPABILITIES from TRANSPORT (postgres: needs
DATABASE_URL; pubsub: GOOGLE_CLOUD_PROJECT) and writes media to STORAGE. Configured only by
environment variables (and a .env file): .env.template documents each one. SIGTERM hands back
what is running after SHUTDOWN_GRACE_SECONDS; a second signal hands it back at once.`,
  {},
);
// The worker's modules are imported once the command line is read: --help needs none of them.
const [
  { s3CredentialsOf },
  { startTracing },
  { loadWorkerEnv },
  { log },
  { startOpsServer },
  { createLocalWorkerStorage },
  { createPostgresWorkerTransport },
  { createWorker, defaultTmpDir },
] = await Promise.all([
  import("../src/shared/env.ts"),
  import("../src/shared/tracing.ts"),
  import("./config.ts"),
  import("./log.ts"),
  import("./ops-server.ts"),
  import("./storage/local.ts"),
  import("./transport/postgres.ts"),
  import("./worker.ts"),
]);
const env = loadConfigOrExit(loadWorkerEnv);
/** How long a worker whose API is gone, or told twice to stop, spends handing jobs back before it exits anyway. */
const PARENT_GONE_EXIT_MS = 3000;
const tracing = await startTracing("videograph-worker");

// A cloud SDK is imported only when configured: each weighs tens of MiB of resident memory.
const worker = createWorker({
  workerId: env.WORKER_ID,
  capabilities: env.WORKER_CAPABILITIES,
  concurrency: env.WORKER_CONCURRENCY,
  liveSlots: env.WORKER_LIVE_SLOTS,
  memoryLimitBytes: env.WORKER_MEMORY_LIMIT_BYTES,
  transport:
    env.TRANSPORT === "pubsub"
      ? (await import("./transport/pubsub.ts")).createPubSubWorkerTransport({
          projectId: env.GOOGLE_CLOUD_PROJECT!,
          workerId: env.WORKER_ID,
          topicPrefix: env.PUBSUB_TOPIC_PREFIX,
          leaseSeconds: env.JOB_STALL_SECONDS,
        })
      : createPostgresWorkerTransport(env.DATABASE_URL!),
  storage: await workerStorage(),
  storageOutagePatienceSeconds: env.STORAGE_OUTAGE_PATIENCE_SECONDS,
  tmpDir: defaultTmpDir(env.WORKER_TMP_DIR),
  progressIntervalMs: env.PROGRESS_INTERVAL_MS,
  heartbeatIntervalSeconds: env.HEARTBEAT_INTERVAL_SECONDS,
  nvencMaxConsecutiveFailures: env.NVENC_MAX_CONSECUTIVE_FAILURES,
  x264Preset: env.X264_PRESET,
  livePassthrough: env.LIVE_PASSTHROUGH,
  liveFullDiskPatienceSeconds: env.LIVE_FULL_DISK_PATIENCE_SECONDS,
  detectManim: env.WORKER_DETECT_MANIM,
  detectAsr: env.WORKER_DETECT_ASR,
  manim: {
    bin: env.MANIM_BIN,
    limits: { wallMs: env.MANIM_TIMEOUT_SECONDS * 1000 },
    sandboxPath: env.MANIM_SANDBOX_PATH,
  },
});

// Before the capability probes, so liveness answers while they run.
const ops: OpsServer | null =
  env.WORKER_OPS_PORT === undefined
    ? null
    : await startOpsServer({
        host: env.WORKER_OPS_HOST,
        port: env.WORKER_OPS_PORT,
        metricsPath: env.WORKER_METRICS_PATH,
        readiness: () => worker.readiness(),
      }).catch((err) => {
        log.error("ops endpoint failed to start", { err });
        process.exit(1);
      });

const stops = createStopSignals({
  log,
  handBack: () => worker.handBackNow(),
  handBackLine: (reason) => `${reason}: handing the jobs in flight back now`,
  hurriedExitMs: PARENT_GONE_EXIT_MS,
});
/** The ordered stop: the jobs in flight get `graceSeconds` to finish before they are handed back. */
function shutdown(reason: string, graceSeconds = env.SHUTDOWN_GRACE_SECONDS): void {
  log.info(`${reason}: shutting down`, { graceSeconds });
  worker
    .shutdown(graceSeconds)
    .then(() => ops?.close())
    .then(
      () => tracing.shutdown().finally(() => process.exit(0)),
      (err) => {
        log.error("shutdown failed", { err });
        process.exit(1);
      },
    );
}
for (const signal of STOP_SIGNALS) process.on(signal, () => stops.received(signal, () => shutdown(signal)));
// The API's local worker (src/local-worker.ts) has an IPC channel to it, closed when the API is
// gone. The database its events go to may have died with the API (the embedded one), so its jobs
// are handed back at once and what cannot be sent within a few seconds is given up: the transport
// redelivers a job whose worker stopped heartbeating.
process.on("disconnect", () => {
  setTimeout(() => {
    log.warn("API process gone: exiting without finishing the shutdown");
    process.exit(1);
  }, PARENT_GONE_EXIT_MS).unref();
  if (!stops.stopping) stops.received("API process gone", () => shutdown("API process gone", 0));
  else worker.handBackNow();
});

worker.start().catch((err) => {
  log.error("worker failed to start", { err });
  process.exit(1);
});

/** The storage STORAGE names; a backend added to the setting fails to compile here until it is built. */
async function workerStorage(): Promise<WorkerStorage> {
  switch (env.STORAGE) {
    case "gcs":
      return (await import("./storage/gcs.ts")).createGcsWorkerStorage({
        bucket: env.GCS_BUCKET!,
        apiEndpoint: env.GCS_API_ENDPOINT,
        signedUrlTtlSeconds: env.GCS_SIGNED_URL_TTL_SECONDS,
      });
    case "s3":
      return (await import("./storage/s3.ts")).createS3WorkerStorage({
        bucket: env.S3_BUCKET!,
        endpoint: env.S3_ENDPOINT,
        region: env.S3_REGION,
        forcePathStyle: env.S3_FORCE_PATH_STYLE,
        credentials: s3CredentialsOf(env),
        signedUrlTtlSeconds: env.S3_SIGNED_URL_TTL_SECONDS,
      });
    case "local":
      return createLocalWorkerStorage(env.DATA_DIR);
    default:
      throw new Error(`unknown STORAGE ${env.STORAGE satisfies never}`);
  }
}
