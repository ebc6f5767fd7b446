import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { JobMessage } from "../../src/protocol/job-message.ts";
import type { X264Preset } from "../media/encode-ladder.ts";
import type { VideoEncoder } from "../media/nvenc.ts";
import type { SandboxLimits } from "../sandbox/bubblewrap.ts";
import type { WorkerStorage } from "../storage/types.ts";

/** What the worker gives a job handler. A handler reports failure by throwing. */
export interface JobContext {
  storage: WorkerStorage;
  /** Sends an event about this job attempt; the worker adds the envelope (ids, seq, time). */
  emit(event: JobEventBody): Promise<void>;
  /**
   * Sends events that are ready together, in order, in one send to the transport
   * (`WorkerTransport.publishEvents`): a run's end, its rungs' outcomes and its `job.succeeded`.
   * Handlers call it through `emitTogether`; a context made by hand (a test's) may leave it out.
   */
  emitAll?(events: JobEventBody[]): Promise<void>;
  /** Fires when the job is canceled or the worker hands it back. */
  signal: AbortSignal;
  /** An empty temp dir for this job, created and removed by the caller. */
  workDir: string;
  progressIntervalMs: number;
  /** The H.264 encoder of the queue the job came from (nvenc: h264_nvenc); default libx264. */
  encoder?: VideoEncoder;
  /** One libx264 preset for every rung (X264_PRESET); unset: the tuned ladder (LADDER_TUNING). */
  x264Preset?: X264Preset;
  /** Whether a broadcast's top rung may be the publisher's own video (LIVE_PASSTHROUGH); default false. */
  livePassthrough?: boolean;
  /** How long a broadcast waits for space before it ends with what it recorded; default FULL_DISK_PATIENCE_MS. */
  liveFullDiskPatienceMs?: number;
  /**
   * Reserves memory for the encode and returns its release; throws when it does not fit now
   * (the job is handed back) or on this worker at all (the job fails). Absent: no accounting.
   */
  reserveMemory?(bytes: number): () => void;
  /** For Manim jobs; defaults: the Manim locateManim finds and DEFAULT_MANIM_LIMITS. */
  manim?: ManimSettings;
}

/** Runs one kind of job; reports failure by throwing. */
export type JobHandler<Job extends JobMessage> = (job: Job, ctx: JobContext) => Promise<void>;

export interface ManimSettings {
  /** The manim program: a name on the sandbox's PATH, or a path; default: see locateManim. */
  bin?: string;
  limits?: Partial<SandboxLimits>;
  /** PATH inside the sandbox, for programs Manim runs (latex, dvisvgm); default DEFAULT_SANDBOX_PATH. */
  sandboxPath?: string;
}

/** Sends `events` in order, in one send where the context can (`JobContext.emitAll`), else one by one. */
export async function emitTogether(ctx: Pick<JobContext, "emit" | "emitAll">, events: JobEventBody[]): Promise<void> {
  if (ctx.emitAll) return ctx.emitAll(events);
  for (const event of events) await ctx.emit(event);
}
