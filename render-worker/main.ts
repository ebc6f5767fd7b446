import { loadConfigOrExit, parseCommandLine } from "../src/protocol/command-line.ts";
import { startTracing } from "../src/protocol/tracing.ts";
import { loadWorkerEnv } from "./config.ts";
import { log } from "./log.ts";
import { type OpsServer, startOpsServer } from "./ops-server.ts";
import { createLocalWorkerStorage } from "./storage/local.ts";
import { createPostgresWorkerTransport } from "./transport/postgres.ts";
import { createWorker, defaultTmpDir } from "./worker.ts";

parseCommandLine(
  `usage: npm run worker
Runs a render worker: it takes jobs for WORKER_CAPABILITIES from TRANSPORT (postgres: needs
DATABASE_URL; pubsub: GOOGLE_CLOUD_PROJECT) and writes media to STORAGE. Configured only by
environment variables (and a .env file): .env.template documents each one. SIGTERM hands back
what is running after SHUTDOWN_GRACE_SECONDS.`,
  {},
);
const env = loadConfigOrExit(loadWorkerEnv);
const tracing = startTracing("videograph-worker");

// A cloud SDK is imported only when configured: each weighs tens of MiB of resident memory.
const worker = createWorker({
  workerId: env.WORKER_ID,
  capabilities: env.WORKER_CAPABILITIES,
  concurrency: env.WORKER_CONCURRENCY,
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
  storage:
    env.STORAGE === "gcs"
      ? (await import("./storage/gcs.ts")).createGcsWorkerStorage({
          bucket: env.GCS_BUCKET!,
          apiEndpoint: env.GCS_API_ENDPOINT,
          signedUrlTtlSeconds: env.GCS_SIGNED_URL_TTL_SECONDS,
        })
      : env.STORAGE === "s3"
        ? (await import("./storage/s3.ts")).createS3WorkerStorage({
            bucket: env.S3_BUCKET!,
            endpoint: env.S3_ENDPOINT,
            region: env.S3_REGION,
            forcePathStyle: env.S3_FORCE_PATH_STYLE,
            signedUrlTtlSeconds: env.S3_SIGNED_URL_TTL_SECONDS,
          })
        : createLocalWorkerStorage(env.DATA_DIR),
  tmpDir: defaultTmpDir(env.WORKER_TMP_DIR),
  progressIntervalMs: env.PROGRESS_INTERVAL_MS,
  heartbeatIntervalSeconds: env.HEARTBEAT_INTERVAL_SECONDS,
  nvencMaxConsecutiveFailures: env.NVENC_MAX_CONSECUTIVE_FAILURES,
  detectManim: env.WORKER_DETECT_MANIM,
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

let stopping = false;
function shutdown(reason: string): void {
  if (stopping) {
    log.warn("second signal: exiting now");
    process.exit(1);
  }
  stopping = true;
  log.info(`${reason}: shutting down`, { graceSeconds: env.SHUTDOWN_GRACE_SECONDS });
  worker
    .shutdown(env.SHUTDOWN_GRACE_SECONDS)
    .then(() => ops?.close())
    .then(
      () => tracing.shutdown().finally(() => process.exit(0)),
      (err) => {
        log.error("shutdown failed", { err });
        process.exit(1);
      },
    );
}
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => shutdown(signal));
// The API's local worker (src/local-worker.ts) has an IPC channel to it, closed when the API is
// gone; a shutdown already under way goes on.
process.on("disconnect", () => stopping || shutdown("API process gone"));

worker.start().catch((err) => {
  log.error("worker failed to start", { err });
  process.exit(1);
});
