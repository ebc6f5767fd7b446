import { z } from "zod";

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/** Every environment variable the API reads; `.env.template` documents each one. */
const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  PUBLIC_URL: z.url().optional(),
  DATABASE_URL: z.url().optional(),
  DATA_DIR: z.string().default("./data"),
  MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(5 * 1024 ** 3),
  MULTIPART_MAX_BYTES: z.coerce.number().int().positive().default(100 * 1024 ** 2),
  GRAPHQL_MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 ** 2),
  UPLOAD_URL_TTL_SECONDS: z.coerce.number().int().positive().default(24 * 3600),
  SIGNING_SECRET: z.string().min(32).optional(),
  STORAGE: z.enum(["local", "gcs"]).default("local"),
  GCS_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, "not a bucket name").optional(),
  // V4 signed URLs live at most 7 days.
  GCS_SIGNED_URL_TTL_SECONDS: z.coerce.number().int().min(300).max(7 * 24 * 3600).default(6 * 3600),
  GCS_NOTIFICATION_SUBSCRIPTION: z.string().min(1).optional(),
  TRANSPORT: z.enum(["postgres", "pubsub"]).default("postgres"),
  GOOGLE_CLOUD_PROJECT: z.string().min(1).optional(),
  PUBSUB_TOPIC_PREFIX: z.string().regex(/^[a-zA-Z][\w.~+%-]*$/).default("videograph"),
  LOCAL_WORKER: bool.default(true),
  INGEST_EVENTS: bool.default(true),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  JOB_STALL_SECONDS: z.coerce.number().int().min(10).default(30),
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).default(30),
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  HLS_SEGMENT_SECONDS: z.coerce.number().min(1).max(10).default(4),
  MAX_DURATION_SECONDS: z.coerce.number().positive().default(6 * 3600),
  PROGRESS_WRITE_INTERVAL_MS: z.coerce.number().int().min(0).default(2000),
  GRAPHIQL: bool.optional(),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

export type Env = Readonly<z.infer<typeof EnvSchema>>;

const CheckedEnvSchema = EnvSchema.superRefine((env, ctx) => {
  if (env.TRANSPORT === "pubsub" && !env.GOOGLE_CLOUD_PROJECT) {
    ctx.addIssue({ code: "custom", path: ["GOOGLE_CLOUD_PROJECT"], message: "required when TRANSPORT=pubsub" });
  }
  if (env.STORAGE === "gcs" && !env.GCS_BUCKET) {
    ctx.addIssue({ code: "custom", path: ["GCS_BUCKET"], message: "required when STORAGE=gcs" });
  }
  if (env.GCS_NOTIFICATION_SUBSCRIPTION && !env.GCS_NOTIFICATION_SUBSCRIPTION.startsWith("projects/") && !env.GOOGLE_CLOUD_PROJECT) {
    ctx.addIssue({ code: "custom", path: ["GOOGLE_CLOUD_PROJECT"], message: "required with GCS_NOTIFICATION_SUBSCRIPTION, unless that is a full projects/…/subscriptions/… name" });
  }
});

/** Parses the environment once; lists every invalid variable before the process exits. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const input = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== ""));
  const result = CheckedEnvSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
}
