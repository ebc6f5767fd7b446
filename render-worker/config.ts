import { hostname } from "node:os";
import { z } from "zod";
import { Capability } from "../src/protocol/worker-messages.ts";
import { X264_PRESETS } from "./media/encode-ladder.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../src/shared/log.ts";
import { checkSharedEnv, envFlag, listenHost, parseEnv, sharedEnvShape } from "../src/shared/env.ts";
import type { WorkerConfigEnvName } from "../src/shared/worker-env.ts";

/**
 * Broadcasts a worker encodes at once unless WORKER_LIVE_SLOTS says: what a 2-core worker holds in
 * real time with 720p30 publishers and the default ladder (docs/live.md "Capacity").
 */
const DEFAULT_LIVE_SLOTS = 2;

/** Every environment variable of the worker's configuration; `.env.template` documents each one. */
const WorkerEnvSchema = z.object({
  ...sharedEnvShape,
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
  /** Broadcasts it encodes at once, beside WORKER_CONCURRENCY (docs/live.md "Capacity"). */
  WORKER_LIVE_SLOTS: z.coerce.number().int().min(1).max(64).default(DEFAULT_LIVE_SLOTS),
  /** Memory the worker's jobs may use; default: the cgroup's limit, else the machine's RAM. */
  WORKER_MEMORY_LIMIT_BYTES: z.coerce.number().int().positive().optional(),
  WORKER_TMP_DIR: z.string().optional(),
  PROGRESS_INTERVAL_MS: z.coerce.number().int().min(100).default(1000),
  HEARTBEAT_INTERVAL_SECONDS: z.coerce.number().min(1).default(10),
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).default(30),
  /** After this many nvenc encodes in a row failed, the worker drops `nvenc` (until restarted). */
  NVENC_MAX_CONSECUTIVE_FAILURES: z.coerce.number().int().min(1).default(3),
  /** One libx264 preset for every rung instead of the tuned ladder (LADDER_TUNING); unset: the tuned ladder. */
  X264_PRESET: z.enum(X264_PRESETS).optional(),
  /**
   * A broadcast's top rung is the publisher's own video when it can be (docs/live.md): a quarter to
   * a third less CPU, the same glass-to-glass latency. False: every rung encoded, no publisher byte
   * reaches a viewer.
   */
  LIVE_PASSTHROUGH: envFlag.default(true),
  /**
   * How long a run waits (retrying with back-off) for unreachable, failing or full storage, or a full
   * work dir, before its attempt fails.
   */
  STORAGE_OUTAGE_PATIENCE_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(24 * 3600)
    .default(300),
  /**
   * How long a broadcast waits for space (storage or its work dir full) without publishing a segment
   * before it ends with what it recorded (docs/live.md "A full disk"); within the 30 s of unpublished
   * media its feed keeps, so what the publisher sent meanwhile is still encoded when space comes back.
   */
  LIVE_FULL_DISK_PATIENCE_SECONDS: z.coerce.number().int().min(1).max(30).default(20),
  /** With Pub/Sub: the job's lease; a job whose worker died is redelivered about this long after. */
  JOB_STALL_SECONDS: z.coerce.number().int().min(10).max(600).default(30),
  /**
   * The manim program: a name on the sandbox's PATH (/usr/local/bin, /usr/bin, /bin) or a path.
   * Unset: the project's .tools/manim (npm run setup:manim), else `manim` on the sandbox's PATH.
   */
  MANIM_BIN: z.string().min(1).optional(),
  /**
   * Also take manim jobs when Manim is installed here (as MANIM_BIN finds it) and a test render
   * passes; nothing is said when it is not installed. The API's own worker sets it.
   */
  WORKER_DETECT_MANIM: envFlag.default(false),
  /**
   * Also take asr jobs (generated captions) when speech recognition is installed (`npm run setup:asr`);
   * nothing is said when it is not. The API's own worker sets it.
   */
  WORKER_DETECT_ASR: envFlag.default(false),
  /** PATH inside the sandbox, for what Manim runs (latex, dvisvgm); directories must be under /usr. */
  MANIM_SANDBOX_PATH: z.string().min(1).optional(),
  /** Wall-clock limit of one Manim render. */
  MANIM_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .max(6 * 3600)
    .default(15 * 60),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  /** `auto`: readable lines when stderr is a terminal, JSON otherwise (src/shared/log.ts reads it). */
  LOG_FORMAT: z.enum(LOG_FORMATS).default("auto"),
  /** The ops endpoint (health and metrics) on this port (0: a free one); unset: none. */
  WORKER_OPS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** Its address: loopback by default (a sidecar or a container's own healthcheck reaches it). */
  WORKER_OPS_HOST: listenHost.default("127.0.0.1"),
  WORKER_METRICS_PATH: z
    .string()
    .regex(/^\/[\w./-]*$/, "a path such as /metrics")
    .refine((p) => !["/livez", "/readyz", "/health"].includes(p), "taken by a health endpoint")
    .default("/metrics"),
} satisfies Record<WorkerConfigEnvName, z.ZodType>);

export type WorkerEnv = Readonly<z.infer<typeof WorkerEnvSchema>>;

const CheckedWorkerEnvSchema = WorkerEnvSchema.superRefine((env, ctx) => {
  if (env.TRANSPORT === "postgres" && !env.DATABASE_URL) {
    const message = "required with TRANSPORT=postgres: its queues live in Postgres";
    ctx.addIssue({ code: "custom", path: ["DATABASE_URL"], message });
  }
  checkSharedEnv(env, ctx);
});

export function loadWorkerEnv(source: NodeJS.ProcessEnv = process.env): WorkerEnv {
  return parseEnv(CheckedWorkerEnvSchema, source, "worker configuration");
}
