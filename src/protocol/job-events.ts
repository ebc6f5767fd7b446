/** Events about one job attempt (worker → API), and what each is to its run. */
import { z } from "zod";
import { LiveRenditionHealth } from "./live-messages.ts";
import {
  BitRates,
  ChunkRange,
  ChunkSource,
  PlannedRung,
  ProbeResult,
  PublishedSegments,
  RenditionBitRates,
  Rung,
  Storyboard,
} from "./media-facts.ts";
import { StaticRenditionOutcome } from "./static-rendition-messages.ts";
import { readVersion, Traceparent } from "./version.ts";

const VariantProgress = z.object({
  name: z.string(),
  /** Media time of finished segments / duration, 0..1. */
  progress: z.number().min(0).max(1),
  segmentCount: z.number().int().nonnegative(),
});

/**
 * What a run used, reported with the event that ends it: CPU seconds of the worker process and
 * the child processes it reaped during the run (ffmpeg, ffprobe, manim), shared out between runs
 * that overlapped, and wall seconds from taking the delivery to the event. Absent from older workers.
 */
export const RunUsage = z.object({
  cpuSeconds: z.number().nonnegative(),
  wallSeconds: z.number().nonnegative(),
});
export type RunUsage = z.infer<typeof RunUsage>;

const jobEventBase = {
  v: readVersion,
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  /** Per-attempt sequence number, starting at 1. */
  seq: z.number().int().positive(),
  workerId: z.string().min(1),
  /**
   * One delivery of the job to a worker: every event of that run carries it, so two runs of one
   * attempt (a duplicate delivery) are told apart even on the same worker. Absent in events of
   * workers older than this field; the API then keys the run by job, attempt and worker.
   */
  runId: z.uuid().optional(),
  at: z.iso.datetime(),
  traceparent: Traceparent,
};

/**
 * One delivery of a job message as the transport that made it counts it: the message's id in the
 * transport (pg-boss's job id, Pub/Sub's message id) and how many times the transport has delivered
 * that message, this delivery included (pg-boss: its retry count + 1; Pub/Sub: the delivery attempt,
 * which it keeps only on a subscription with a dead-letter policy). A transport delivers a message
 * again only once the earlier delivery's claim lapsed (no heartbeat or lease renewal in time) or was
 * handed back, so a higher count for the same message says the earlier run no longer holds the job,
 * whatever its last heartbeat says. The worker copies both from the transport and never makes them up.
 */
export const JobDelivery = z.object({
  messageId: z.string().min(1).max(200),
  count: z.number().int().positive(),
});
export type JobDelivery = z.infer<typeof JobDelivery>;

/** Events about one job attempt; `seq` orders them within the attempt. */
export const JobEvent = z.discriminatedUnion("type", [
  z.object({
    ...jobEventBase,
    type: z.literal("job.started"),
    /**
     * The transport's delivery this run took on. Absent from older workers and where the transport
     * does not count deliveries; the API then stops a newcomer while another run's heartbeat is fresh.
     */
    delivery: JobDelivery.optional(),
  }),
  z.object({
    ...jobEventBase,
    type: z.literal("job.probed"),
    probe: ProbeResult,
    ladder: z.array(Rung).min(1),
    /** The attempt kept what an earlier run published and encodes from here; absent: from the start. */
    resumed: z.object({ segments: z.number().int().positive(), fromSeconds: z.number().positive() }).optional(),
  }),
  z.object({
    ...jobEventBase,
    type: z.literal("job.progress"),
    /** Overall progress 0..1. */
    progress: z.number().min(0).max(1),
    fps: z.number().nonnegative().nullable(),
    /** Encoding speed as a multiple of real time. */
    speed: z.number().nonnegative().nullable(),
    etaSeconds: z.number().nonnegative().nullable(),
    variants: z.array(VariantProgress),
  }),
  z.object({
    ...jobEventBase,
    type: z.literal("variant.ready"),
    name: z.string(),
    /** The rung again, so the event is complete on its own even if it arrives before `job.probed`. */
    rung: Rung,
    playlistKey: z.string(),
    segmentCount: z.number().int().nonnegative(),
    /**
     * What the rung's published segments carry (`Variant.peakBitRate`, `averageBitRate`): absent
     * from older workers, and where the run could not measure every segment.
     */
    bitRates: BitRates.optional(),
  }),
  /**
   * Storage refused a rung's files: that rung failed alone (the master playlist leaves it out) and
   * the job goes on; `retryVariant` encodes it again.
   */
  z.object({ ...jobEventBase, type: z.literal("variant.failed"), name: z.string(), rung: Rung, error: z.string() }),
  /** The master playlist and the first segment of every rung are published. */
  z.object({ ...jobEventBase, type: z.literal("video.playable"), masterKey: z.string() }),
  /** A transcode is done: its HLS master and poster (render and import jobs end with `source.ready`). */
  z.object({
    ...jobEventBase,
    type: z.literal("job.succeeded"),
    masterKey: z.string(),
    posterKey: z.string().nullable(),
    /** The storyboard the run made; null when making it failed, absent when the run made none (a retried rung). */
    storyboard: Storyboard.nullable().optional(),
    /** The delivery found the job's output complete in storage (a finished job delivered again) and did no work. */
    alreadyDone: z.boolean().optional(),
    /** A live recording's length in seconds, known only at its end (its `job.probed` said 0). */
    duration: z.number().nonnegative().optional(),
    /**
     * A live recording's source file (`source/recording.mp4`: its top rung and audio remuxed into
     * one MP4), stored so that clips can be cut from it; absent when making it failed.
     */
    sourceKey: z.string().min(1).optional(),
    /**
     * Why a live run cut its recording short, the recording being what was published until then:
     * `disk full`, storage or the worker's work dir stayed full, and the broadcast ended (or its
     * publisher stopped) before there was room (render-worker/handlers/live-full-disk.ts). The
     * stream's `lastError` says so.
     */
    endedEarly: z.enum(["disk full"]).optional(),
    /**
     * The run split the transcode (`job.split`) and encoded the first chunk of every video rung
     * (these segments, their playlists left open) and the whole of every audio rung: the video is
     * ready once the API has listed every chunk's segments.
     */
    firstChunk: z
      .object({
        /** The `#EXT-X-TARGETDURATION` of the playlists it published, which every later version keeps. */
        targetDuration: z.number().int().positive(),
        variants: z.array(PublishedSegments).min(1),
        /**
         * What the audio rungs it published whole carry (`segmentBitRates`, bits per second): the API
         * adds them to the video rungs' when it measures the master's variants, once every chunk is
         * in. Absent from older workers, and for a rung whose segments the run did not all store.
         */
        audioBitRates: z.array(RenditionBitRates).optional(),
        /**
         * How many chunks the run split the transcode into (its `job.split`'s): the API judges the
         * video once that split is applied too, whichever of the two events arrives first. Absent
         * from older workers: the API then takes an end with no chunk queued for a split that failed.
         */
        chunkCount: z.number().int().min(2).max(10_000).optional(),
      })
      .optional(),
    usage: RunUsage.optional(),
  }),
  /**
   * The run split the transcode into `chunks` (at least two, in order, covering every segment):
   * it encodes the first and the audio, and the API queues a `transcode_chunk` job for each later
   * one, with `ladder` (the video rungs).
   */
  z.object({
    ...jobEventBase,
    type: z.literal("job.split"),
    chunks: z
      .array(ChunkRange)
      .min(2)
      .max(10_000)
      .refine(
        (chunks) => chunks.every((c, i) => c.index === i && c.fromSegment === (i === 0 ? 0 : chunks[i - 1]!.toSegment)),
        { message: "chunks must be numbered from 0 and follow each other from segment 0" },
      ),
    ladder: z.array(PlannedRung).min(1),
    /** The source as this run probed it, for the chunks (workers before it do not send it). */
    source: ChunkSource.optional(),
  }),
  /** A `transcode_chunk` job published its segments of every rung. */
  z.object({
    ...jobEventBase,
    type: z.literal("chunk.succeeded"),
    chunk: z.number().int().nonnegative(),
    variants: z.array(PublishedSegments).min(1),
    /** Never set by this release's workers (a chunk run again encodes again); read as for every run's end. */
    alreadyDone: z.boolean().optional(),
    usage: RunUsage.optional(),
  }),
  /**
   * Where a job that runs in steps is, sampled on a timer: a Manim scene's animations, a quiz's
   * questions, a transcode's steps before its encode (measuring loudness).
   */
  z.object({
    ...jobEventBase,
    type: z.literal("step.progress"),
    /** The step being rendered, from 0 (Manim's `Animation N` / `Waiting N`, a quiz's question). */
    index: z.number().int().nonnegative(),
    /** Steps in the job, when they can be counted before it runs (no loops, no helpers). */
    count: z.number().int().positive().nullable(),
    /** Of the current step, 0..100. */
    percent: z.number().min(0).max(100),
    /** The current step's description, e.g. `Create(Square)` as Manim prints it. */
    description: z.string().nullable(),
    /** Steps rendered and taken from the cache so far. */
    renderedCount: z.number().int().nonnegative(),
    cachedCount: z.number().int().nonnegative(),
  }),
  /**
   * A render or import job finished: its output, a source for a transcode, is stored at
   * `outputKey`. These jobs end with this instead of `job.succeeded`, which describes an HLS ladder.
   */
  z.object({
    ...jobEventBase,
    type: z.literal("source.ready"),
    outputKey: z.string(),
    duration: z.number().nonnegative(),
    /** Null for an audio-only source (an imported podcast). */
    width: z.number().int().positive().nullable(),
    height: z.number().int().positive().nullable(),
    fps: z.number().nonnegative(),
    /** Steps rendered and taken from the cache (0 and 0 for an import). */
    renderedCount: z.number().int().nonnegative(),
    cachedCount: z.number().int().nonnegative(),
    /** The delivery found the job's output stored (a finished job delivered again) and did no work. */
    alreadyDone: z.boolean().optional(),
    usage: RunUsage.optional(),
  }),
  /** A static renditions job is done: each rendition READY or FAILED. */
  z.object({
    ...jobEventBase,
    type: z.literal("static_renditions.done"),
    renditions: z.array(StaticRenditionOutcome).min(1),
    alreadyDone: z.boolean().optional(),
    usage: RunUsage.optional(),
  }),
  /** An audio track's rung is published whole (its playlist ended). */
  z.object({
    ...jobEventBase,
    type: z.literal("audio_track.done"),
    /** Seconds of the source's audio, before it was padded or cut to the video's length. */
    sourceDuration: z.number().nonnegative(),
    /** Media seconds published (the video's length). */
    publishedSeconds: z.number().nonnegative(),
    alreadyDone: z.boolean().optional(),
    usage: RunUsage.optional(),
  }),
  /** A transcribe job stored its captions: a WebVTT file at `key` (a TranscribeJobMessage's `outputKey`). */
  z.object({
    ...jobEventBase,
    type: z.literal("captions.generated"),
    key: z.string().min(1),
    cueCount: z.number().int().nonnegative(),
    /** End of the last cue, in seconds. */
    lastCueEnd: z.number().nonnegative(),
    size: z.number().int().positive(),
    /** Seconds of audio transcribed. */
    audioSeconds: z.number().nonnegative(),
    alreadyDone: z.boolean().optional(),
    usage: RunUsage.optional(),
  }),
  /** A live encode's health, sampled on a timer (docs/live.md). */
  z.object({
    ...jobEventBase,
    type: z.literal("live.progress"),
    /** Media seconds encoded since the broadcast started. */
    mediaSeconds: z.number().nonnegative(),
    fps: z.number().nonnegative().nullable(),
    /** Encoding speed as a multiple of real time: below 1 the broadcast falls behind. */
    speed: z.number().nonnegative().nullable(),
    /** Segments of the top rung published so far. */
    segments: z.number().int().nonnegative(),
    /** Seconds from the newest published segment's end to now, as the worker saw it (the part of the latency it adds). */
    behindSeconds: z.number().nonnegative().nullable(),
    /**
     * Media seconds of the top rung in storage, from the broadcast's start (earlier runs' included):
     * the API lets go of the feed's media before it, and measures how far publication is behind
     * what the publisher sent. Absent from workers before it was added.
     */
    publishedSeconds: z.number().nonnegative().optional(),
    /** Each rendition's health (absent from workers before it was added). */
    renditions: z.array(LiveRenditionHealth).max(16).optional(),
  }),
  /** A simulcast target's forwarding changed state (docs/live.md, "Simulcast"). */
  z.object({
    ...jobEventBase,
    type: z.literal("live.simulcast"),
    targetId: z.uuid(),
    state: z.enum(["CONNECTING", "LIVE", "RETRYING", "STOPPED"]),
    /** Why its connection failed (RETRYING), stream key removed. */
    error: z.string().max(500).nullable(),
  }),
  /** The worker stopped the attempt because it was canceled (a control message). */
  z.object({ ...jobEventBase, type: z.literal("job.canceled"), usage: RunUsage.optional() }),
  z.object({
    ...jobEventBase,
    type: z.literal("job.failed"),
    /** Readable reason, shown to users. */
    error: z.string(),
    /** False when retrying cannot help (the source is not a video, say). */
    retryable: z.boolean(),
    /** For operators: the command line and the tail of its stderr, when a process failed. */
    command: z.string().optional(),
    stderrTail: z.string().optional(),
    exitCode: z.number().int().nullable().optional(),
    usage: RunUsage.optional(),
  }),
]);
export type JobEvent = z.infer<typeof JobEvent>;

/**
 * What each job event is to its run: `ends run` (its last event, which carries what the run used,
 * `usage`), `progress` (sampled on a timer; it changes no state and says nothing once a later event
 * is applied) or `state` (a step of the run). A new event type does not compile until it is listed.
 */
const JOB_EVENT_ROLES = {
  "job.started": "state",
  "job.probed": "state",
  "job.progress": "progress",
  "variant.ready": "state",
  "variant.failed": "state",
  "video.playable": "state",
  "job.succeeded": "ends run",
  "job.split": "state",
  "chunk.succeeded": "ends run",
  "step.progress": "progress",
  "source.ready": "ends run",
  "static_renditions.done": "ends run",
  "audio_track.done": "ends run",
  "captions.generated": "ends run",
  "live.progress": "progress",
  "live.simulcast": "state",
  "job.canceled": "ends run",
  "job.failed": "ends run",
} as const satisfies Record<JobEvent["type"], "ends run" | "progress" | "state">;
type JobEventRoles = typeof JOB_EVENT_ROLES;
type JobEventTypeOfRole<R> = {
  [T in keyof JobEventRoles]: JobEventRoles[T] extends R ? T : never;
}[keyof JobEventRoles];

/** An event that ends a run. */
export type RunEndEvent = Extract<JobEvent, { type: JobEventTypeOfRole<"ends run"> }>;

/** Whether `e` ends its run (JOB_EVENT_ROLES); takes an event or a handler's event body. */
export function endsRun<E extends { type: JobEvent["type"] }>(
  e: E,
): e is Extract<E, { type: JobEventTypeOfRole<"ends run"> }> {
  return JOB_EVENT_ROLES[e.type] === "ends run";
}

/** Whether `e` is progress sampled on a timer (JOB_EVENT_ROLES). */
export function isProgressEvent(e: { type: JobEvent["type"] }): boolean {
  return JOB_EVENT_ROLES[e.type] === "progress";
}

/** Distributive Omit, so each event kind keeps its own fields. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A job event as a handler writes it; the worker's emitter adds the envelope and a start's `delivery`. */
export type JobEventBody = DistributiveOmit<
  JobEvent,
  "v" | "jobId" | "attempt" | "seq" | "workerId" | "runId" | "at" | "traceparent" | "delivery"
>;
