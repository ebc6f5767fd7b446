import { loadConfigOrExit, parseCommandLine } from "../src/protocol/command-line.ts";
import { loadWorkerEnv } from "./config.ts";
import { log } from "./log.ts";
import { createGcsWorkerStorage } from "./storage/gcs.ts";
import { createLocalWorkerStorage } from "./storage/local.ts";
import { createS3WorkerStorage } from "./storage/s3.ts";
import { createPostgresWorkerTransport } from "./transport/postgres.ts";
import { createPubSubWorkerTransport } from "./transport/pubsub.ts";
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

const worker = createWorker({
  workerId: env.WORKER_ID,
  capabilities: env.WORKER_CAPABILITIES,
  concurrency: env.WORKER_CONCURRENCY,
  memoryLimitBytes: env.WORKER_MEMORY_LIMIT_BYTES,
  transport:
    env.TRANSPORT === "pubsub"
      ? createPubSubWorkerTransport({
          projectId: env.GOOGLE_CLOUD_PROJECT!,
          workerId: env.WORKER_ID,
          topicPrefix: env.PUBSUB_TOPIC_PREFIX,
          leaseSeconds: env.JOB_STALL_SECONDS,
        })
      : createPostgresWorkerTransport(env.DATABASE_URL!),
  storage:
    env.STORAGE === "gcs"
      ? createGcsWorkerStorage({
          bucket: env.GCS_BUCKET!,
          apiEndpoint: env.GCS_API_ENDPOINT,
          signedUrlTtlSeconds: env.GCS_SIGNED_URL_TTL_SECONDS,
        })
      : env.STORAGE === "s3"
        ? createS3WorkerStorage({
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
  manim: {
    bin: env.MANIM_BIN,
    limits: { wallMs: env.MANIM_TIMEOUT_SECONDS * 1000 },
    sandboxPath: env.MANIM_SANDBOX_PATH,
  },
});

let stopping = false;
function shutdown(reason: string): void {
  if (stopping) {
    log.warn("second signal: exiting now");
    process.exit(1);
  }
  stopping = true;
  log.info(`${reason}: shutting down`, { graceSeconds: env.SHUTDOWN_GRACE_SECONDS });
  worker.shutdown(env.SHUTDOWN_GRACE_SECONDS).then(
    () => process.exit(0),
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
