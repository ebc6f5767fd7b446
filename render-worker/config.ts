import { hostname } from "node:os";
import { z } from "zod";
import { Capability } from "../src/protocol/messages.ts";
import { DEFAULT_TOPIC_PREFIX } from "../src/protocol/queues.ts";
import type { WorkerConfigEnvName } from "../src/protocol/worker-env.ts";

/** Every environment variable of the worker's configuration; `.env.template` documents each one. */
const WorkerEnvSchema = z.object({
  TRANSPORT: z.enum(["postgres", "pubsub"]).default("postgres"),
  DATABASE_URL: z.url().optional(),
  GOOGLE_CLOUD_PROJECT: z.string().min(1).optional(),
  PUBSUB_TOPIC_PREFIX: z.string().default(DEFAULT_TOPIC_PREFIX),
  DATA_DIR: z.string().default("./data"),
  STORAGE: z.enum(["local", "gcs", "s3"]).default("local"),
  GCS_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, "not a bucket name")
    .optional(),
  GCS_SIGNED_URL_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(300)
    .max(7 * 24 * 3600)
    .default(6 * 3600),
  /** Origin of a GCS-compatible server (fake-gcs-server); unset: Google. */
  GCS_API_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  /** Only checked: the Node client takes it as its JSON API base URL, which misroutes uploads and signed URLs. */
  STORAGE_EMULATOR_HOST: z.string().optional(),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "not a bucket name")
    .optional(),
  S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  S3_REGION: z.string().min(1).default("us-east-1"),
  S3_FORCE_PATH_STYLE: z
    .enum(["true", "false", "1", "0"])
    .transform((v) => v === "true" || v === "1")
    .default(false),
  S3_SIGNED_URL_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(300)
    .max(7 * 24 * 3600)
    .default(6 * 3600),
  WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  WORKER_CAPABILITIES: z
    .string()
    .default("cpu")
    .transform((s) =>
      s
        .split(",")
        .map((c) => c.trim())
        .filter(Boolean),
    )
    .pipe(z.array(Capability).min(1)),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  /** Memory the worker's jobs may use; default: the cgroup's limit, else the machine's RAM. */
  WORKER_MEMORY_LIMIT_BYTES: z.coerce.number().int().positive().optional(),
  WORKER_TMP_DIR: z.string().optional(),
  PROGRESS_INTERVAL_MS: z.coerce.number().int().min(100).default(1000),
  HEARTBEAT_INTERVAL_SECONDS: z.coerce.number().min(1).default(10),
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).default(30),
  /** With Pub/Sub: the job's lease; a job whose worker died is redelivered about this long after. */
  JOB_STALL_SECONDS: z.coerce.number().int().min(10).max(600).default(30),
  /**
   * The manim program: a name on the sandbox's PATH (/usr/local/bin, /usr/bin, /bin) or a path.
   * Unset: the project's .tools/manim (npm run setup:manim), else `manim` on the sandbox's PATH.
   */
  MANIM_BIN: z.string().min(1).optional(),
  /** PATH inside the sandbox, for what Manim runs (latex, dvisvgm); directories must be under /usr. */
  MANIM_SANDBOX_PATH: z.string().min(1).optional(),
  /** Wall-clock limit of one Manim render. */
  MANIM_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .max(6 * 3600)
    .default(15 * 60),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
} satisfies Record<WorkerConfigEnvName, z.ZodType>);

export type WorkerEnv = Readonly<z.infer<typeof WorkerEnvSchema>>;

const CheckedWorkerEnvSchema = WorkerEnvSchema.superRefine((env, ctx) => {
  if (env.TRANSPORT === "postgres" && !env.DATABASE_URL) {
    const message = "required with TRANSPORT=postgres: its queues live in Postgres";
    ctx.addIssue({ code: "custom", path: ["DATABASE_URL"], message });
  }
  if (env.TRANSPORT === "pubsub" && !env.GOOGLE_CLOUD_PROJECT) {
    ctx.addIssue({ code: "custom", path: ["GOOGLE_CLOUD_PROJECT"], message: "required when TRANSPORT=pubsub" });
  }
  if (env.STORAGE === "gcs" && !env.GCS_BUCKET) {
    ctx.addIssue({ code: "custom", path: ["GCS_BUCKET"], message: "required when STORAGE=gcs" });
  }
  if (env.STORAGE === "gcs" && env.STORAGE_EMULATOR_HOST) {
    const message = "not supported: set GCS_API_ENDPOINT to the emulator's origin instead";
    ctx.addIssue({ code: "custom", path: ["STORAGE_EMULATOR_HOST"], message });
  }
  if (env.STORAGE === "s3" && !env.S3_BUCKET) {
    ctx.addIssue({ code: "custom", path: ["S3_BUCKET"], message: "required when STORAGE=s3" });
  }
});

export function loadWorkerEnv(source: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const input = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== ""));
  const result = CheckedWorkerEnvSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid worker configuration:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
}
