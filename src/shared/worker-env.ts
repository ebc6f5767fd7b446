import { MEDIA_TOOL_PATH_ENV } from "./media-tools.ts";
/**
 * The environment a worker process reads. The API starts its own worker (src/local-worker.ts) with
 * these variables only: the worker parses tenant media, so the API's secrets stay out of its reach.
 */

/**
 * The variables of the worker's configuration; render-worker/config.ts parses them with a schema
 * whose keys the compiler holds to exactly this list. `.env.template` documents each one.
 */
const WORKER_CONFIG_ENV_NAMES = [
  "TRANSPORT",
  "DATABASE_URL",
  "GOOGLE_CLOUD_PROJECT",
  "PUBSUB_TOPIC_PREFIX",
  "DATA_DIR",
  "STORAGE",
  "GCS_BUCKET",
  "GCS_SIGNED_URL_TTL_SECONDS",
  "GCS_API_ENDPOINT",
  "STORAGE_EMULATOR_HOST",
  "S3_BUCKET",
  "S3_ENDPOINT",
  "S3_REGION",
  "S3_FORCE_PATH_STYLE",
  "S3_SIGNED_URL_TTL_SECONDS",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
  "WORKER_ID",
  "WORKER_CAPABILITIES",
  "WORKER_CONCURRENCY",
  "WORKER_LIVE_SLOTS",
  "WORKER_MEMORY_LIMIT_BYTES",
  "WORKER_TMP_DIR",
  "PROGRESS_INTERVAL_MS",
  "HEARTBEAT_INTERVAL_SECONDS",
  "SHUTDOWN_GRACE_SECONDS",
  "NVENC_MAX_CONSECUTIVE_FAILURES",
  "X264_PRESET",
  "LIVE_PASSTHROUGH",
  "STORAGE_OUTAGE_PATIENCE_SECONDS",
  "LIVE_FULL_DISK_PATIENCE_SECONDS",
  "JOB_STALL_SECONDS",
  "MANIM_BIN",
  "WORKER_DETECT_MANIM",
  "WORKER_DETECT_ASR",
  "MANIM_SANDBOX_PATH",
  "MANIM_TIMEOUT_SECONDS",
  "LOG_LEVEL",
  "WORKER_OPS_PORT",
  "WORKER_OPS_HOST",
  "WORKER_METRICS_PATH",
  "LOG_FORMAT",
] as const;
export type WorkerConfigEnvName = (typeof WORKER_CONFIG_ENV_NAMES)[number];

/**
 * Every variable a worker process is given when the API starts it (the embedded default): the
 * configuration's, the media tools' paths, the Google client libraries' and the platform's. The API's
 * own secrets (BOOTSTRAP_API_KEY, JWT_SECRET, webhook and storage signing keys…) are not here.
 */
export const WORKER_ENV_NAMES: readonly string[] = [
  ...WORKER_CONFIG_ENV_NAMES,
  ...Object.values(MEDIA_TOOL_PATH_ENV),
  "ESPEAK_DATA_PATH",
  "QUIZ_FONT_DIR",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "PUBSUB_EMULATOR_HOST",
  "METADATA_SERVER_DETECTION",
  "PATH",
  "HOME",
  "LANG",
  "LC_ALL",
  "TZ",
  "TMPDIR",
  "NODE_EXTRA_CA_CERTS",
  // OpenTelemetry's standard variables: where the worker's spans go (docs/operations.md#traces).
  "OTEL_SDK_DISABLED",
  "OTEL_TRACES_EXPORTER",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_BSP_SCHEDULE_DELAY",
];

/** The AWS SDK's standard credential chain: a worker needs it only to reach S3 (STORAGE=s3). */
const AWS_CREDENTIAL_ENV_NAMES: readonly string[] = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_REGION",
  "AWS_CONFIG_FILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/**
 * The variables a worker started with `source` as its environment is given: WORKER_ENV_NAMES, and
 * AWS credentials with STORAGE=s3.
 */
export function workerEnvNames(source: NodeJS.ProcessEnv): readonly string[] {
  return source.STORAGE === "s3" ? [...WORKER_ENV_NAMES, ...AWS_CREDENTIAL_ENV_NAMES] : WORKER_ENV_NAMES;
}
