import { isIP } from "node:net";
import { z } from "zod";
import { DEFAULT_TOPIC_PREFIX } from "../protocol/queues.ts";

/** A boolean variable: `true`/`false` or `1`/`0`. */
export const envFlag = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/**
 * An address a listener binds: an IPv4 or IPv6 address, or `localhost`. A host name is refused
 * here rather than resolved at bind time, after Postgres has started.
 */
export const listenHost = z
  .string()
  .refine(
    (v) => isIP(v) !== 0 || v === "localhost",
    "an IP address to bind (0.0.0.0, 127.0.0.1, ::, ::1) or localhost",
  );

// V4 (GCS) and SigV4 (S3) signed URLs live at most 7 days.
const signedUrlSeconds = z.coerce
  .number()
  .int()
  .min(300)
  .max(7 * 24 * 3600)
  .default(6 * 3600);

/**
 * How jobs travel and where media lives: settings the API and its workers must agree on, so both
 * parse them with these schemas. `.env.template` documents each one.
 */
export const sharedEnvShape = {
  TRANSPORT: z.enum(["postgres", "pubsub"]).default("postgres"),
  DATABASE_URL: z.url().optional(),
  GOOGLE_CLOUD_PROJECT: z.string().min(1).optional(),
  PUBSUB_TOPIC_PREFIX: z
    .string()
    .regex(/^[a-zA-Z][\w.~+%-]*$/)
    .default(DEFAULT_TOPIC_PREFIX),
  DATA_DIR: z.string().default("./data"),
  STORAGE: z.enum(["local", "gcs", "s3"]).default("local"),
  GCS_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, "not a bucket name")
    .optional(),
  GCS_SIGNED_URL_TTL_SECONDS: signedUrlSeconds,
  /** Origin of a GCS-compatible server (fake-gcs-server); unset: Google. */
  GCS_API_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  /** Only checked: the Node client takes it as its JSON API base URL, which misroutes uploads and signed URLs. */
  STORAGE_EMULATOR_HOST: z.string().optional(),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "not a bucket name")
    .optional(),
  /** An S3-compatible service's endpoint (R2, Spaces, MinIO); unset: AWS S3 itself. */
  S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  S3_REGION: z.string().min(1).default("us-east-1"),
  S3_FORCE_PATH_STYLE: envFlag.default(false),
  /**
   * Static keys for the bucket (an S3-compatible service's, say), both or neither; unset: the AWS
   * SDK's default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, a role).
   */
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_SIGNED_URL_TTL_SECONDS: signedUrlSeconds,
};

type SharedEnv = z.output<z.ZodObject<typeof sharedEnvShape>>;

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * The static keys S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY name (both or neither: checkSharedEnv),
 * for `createS3Client`; undefined: the SDK's default chain. Here, not beside the client: reading
 * them loads no AWS SDK.
 */
export function s3CredentialsOf(env: Pick<SharedEnv, "S3_ACCESS_KEY_ID" | "S3_SECRET_ACCESS_KEY">) {
  return env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY
    ? ({ accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY } satisfies S3Credentials)
    : undefined;
}

/** The S3 key pair's rule, which the API, the worker and `npm run setup:s3` all apply. */
export const S3_KEY_PAIR_RULE = "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together";

/** The half of the S3 key pair that is missing when only the other is set (S3_KEY_PAIR_RULE), or null. */
export function missingS3KeyHalf(
  env: Pick<SharedEnv, "S3_ACCESS_KEY_ID" | "S3_SECRET_ACCESS_KEY">,
): "S3_ACCESS_KEY_ID" | "S3_SECRET_ACCESS_KEY" | null {
  if (!env.S3_ACCESS_KEY_ID === !env.S3_SECRET_ACCESS_KEY) return null;
  return env.S3_ACCESS_KEY_ID ? "S3_SECRET_ACCESS_KEY" : "S3_ACCESS_KEY_ID";
}

/** The rules between shared settings (a bucket for its storage, a project for Pub/Sub). */
export function checkSharedEnv(env: SharedEnv, ctx: z.RefinementCtx): void {
  const refuse = (path: keyof SharedEnv, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  if (env.TRANSPORT === "pubsub" && !env.GOOGLE_CLOUD_PROJECT) {
    refuse("GOOGLE_CLOUD_PROJECT", "required when TRANSPORT=pubsub");
  }
  if (env.STORAGE === "gcs" && !env.GCS_BUCKET) refuse("GCS_BUCKET", "required when STORAGE=gcs");
  if (env.STORAGE === "gcs" && env.STORAGE_EMULATOR_HOST) {
    refuse("STORAGE_EMULATOR_HOST", "not supported: set GCS_API_ENDPOINT to the emulator's origin instead");
  }
  if (env.STORAGE === "s3" && !env.S3_BUCKET) refuse("S3_BUCKET", "required when STORAGE=s3");
  const missing = missingS3KeyHalf(env);
  if (missing) refuse(missing, S3_KEY_PAIR_RULE);
}

/**
 * Parses a program's environment once (empty variables count as unset); throws an error that
 * lists every invalid variable.
 */
export function parseEnv<Schema extends z.ZodType>(
  schema: Schema,
  source: NodeJS.ProcessEnv,
  what: string,
): Readonly<z.output<Schema>> {
  const input = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== ""));
  const result = schema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid ${what}:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
}
