/**
 * The contract between the API and render workers: job messages (API → worker) and worker
 * events (worker → API). Both sides parse every message with these schemas; a message is
 * `unknown` until it does. The worker imports nothing else from `src/`.
 *
 * Versioning: every message carries `v`. A breaking change adds a new version and both sides
 * accept the old one until every producer is upgraded: version 2 renamed the render events
 * (`render.progress` counts steps, `source.ready` replaced `render.succeeded`); the parsers below
 * still read version 1 and turn it into version 2. Upgrade workers before the API. Workers of the
 * previous release send `step.progress` as `render.progress`; the API reads it as `step.progress`.
 */
import { z } from "zod";
import { LoudnessTarget, Watermark } from "./media-filters.ts";

export const PROTOCOL_VERSION = 2 as const;
/** Versions still read, the current one last. */
const READ_VERSIONS = [1, PROTOCOL_VERSION] as const;
/** `v` of a message read from the other side: the current version or one still accepted. */
const readVersion = z.literal(READ_VERSIONS).transform(() => PROTOCOL_VERSION);

/**
 * The W3C trace context (`traceparent`) of the span that sent a message, so the receiver's spans
 * join the sender's trace (docs/operations.md#traces). Optional, and a malformed one is dropped
 * rather than failing the message: readers of version 2 without it still accept every message.
 */
const Traceparent = z
  .string()
  .regex(/^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/)
  .optional()
  .catch(undefined);

/**
 * What a worker can do; each capability has its own job queue/topic. `local` is the queue of the
 * API's own worker (npm start): the API sends a job there when no worker with the job's
 * capability is alive and LOCAL_FALLBACK is on.
 */
export const Capability = z.enum(["cpu", "nvenc", "manim", "local", "live"]);
export type Capability = z.infer<typeof Capability>;

/**
 * How a ladder's segments are packaged: MPEG-TS segments (`seg_00000.ts`…), or fragmented MP4
 * (CMAF: one `init.mp4` per rung and `seg_00000.m4s`…, rung playlists with `#EXT-X-MAP`).
 */
export const SegmentFormat = z.enum(["TS", "FMP4"]);
export type SegmentFormat = z.infer<typeof SegmentFormat>;

/**
 * A video's storyboard: `tileCount` frames, one every `intervalSeconds` from 0, scaled to
 * `tileWidth`×`tileHeight` and laid out row by row in sheets of `columns`×`rows` tiles (the last
 * sheet may be partly empty); the WebVTT file at `vttKey` has one cue per tile,
 * `sheet-N.jpg#xywh=x,y,w,h`.
 */
export const Storyboard = z.object({
  vttKey: z.string(),
  sheetKeys: z.array(z.string()).min(1),
  intervalSeconds: z.number().positive(),
  tileWidth: z.number().int().positive(),
  tileHeight: z.number().int().positive(),
  columns: z.number().int().positive(),
  rows: z.number().int().positive(),
  tileCount: z.number().int().positive(),
});
export type Storyboard = z.infer<typeof Storyboard>;

/** Encoding options the API passes along; the worker has defaults for each. */
export const TranscodeOptions = z.object({
  /** Target HLS segment length in seconds. */
  segmentSeconds: z.number().min(1).max(10).default(4),
  /** How segments are packaged; absent: TS. */
  segmentFormat: SegmentFormat.optional(),
  /** Never plan rungs above this height (in addition to never above the source). */
  maxHeight: z.number().int().positive().optional(),
  /** Sources longer than this are refused before encoding (a guard against duration bombs). */
  maxDurationSeconds: z.number().positive().optional(),
  /**
   * Encode only these rungs of the planned ladder (retryVariant); the master playlist still lists
   * the whole ladder. Absent: every rung.
   */
  rungs: z
    .array(z.string().regex(/^[a-z0-9]+$/))
    .min(1)
    .optional(),
  /** Normalize the audio to this EBU R128 target (two-pass loudnorm); absent: the audio as it is. */
  loudness: LoudnessTarget.optional(),
  /** Draw this image over the video before the ladder is scaled. */
  watermark: Watermark.optional(),
  /**
   * Encode only this range of the source, in seconds, cut frame-accurately (a clip, createClip): the
   * published video starts at `start` and lasts `end - start` (less when the source ends first).
   */
  trim: z
    .object({ start: z.number().nonnegative().finite(), end: z.number().positive().finite() })
    .refine((t) => t.end > t.start, { message: "trim.end must be after trim.start" })
    .optional(),
  /**
   * The worker may split this transcode into time chunks that other workers encode
   * (docs/chunked-transcoding.md): chunks of about `chunkSeconds`, the first about
   * `firstChunkSeconds`. The API sets it only while more than one worker can take the job's chunks;
   * a source no longer than one chunk is not split. Absent: one run encodes the whole ladder.
   * `slots`: how many cpu jobs the workers alive then run at once (their WORKER_CONCURRENCY summed),
   * so that the last round of chunks is not left partly idle (APIs before it do not send it,
   * workers before it ignore it).
   */
  chunking: z
    .object({
      chunkSeconds: z.number().min(2).max(3600),
      firstChunkSeconds: z.number().min(1).max(3600),
      slots: z.number().int().min(1).max(100_000).optional(),
    })
    .optional(),
});
export type TranscodeOptions = z.infer<typeof TranscodeOptions>;

export const TranscodeJobMessage = z.object({
  v: readVersion,
  type: z.literal("transcode"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  /** Storage key of the source file, e.g. `videos/{videoId}/source/upload`. */
  sourceKey: z.string().min(1),
  /** Storage prefix of the video's media, e.g. `videos/{videoId}`; HLS goes under `{prefix}/hls/`. */
  outputPrefix: z.string().min(1),
  options: TranscodeOptions.default({ segmentSeconds: 4 }),
});
export type TranscodeJobMessage = z.infer<typeof TranscodeJobMessage>;

/**
 * A time chunk of a chunked transcode: segments `fromSegment` to `toSegment - 1` of every video
 * rung, from `fromSeconds` to `toSeconds` of the source (render-worker/media/chunks.ts plans them).
 */
export const ChunkRange = z
  .object({
    index: z.number().int().nonnegative(),
    fromSegment: z.number().int().nonnegative(),
    /** Exclusive. */
    toSegment: z.number().int().positive(),
    fromSeconds: z.number().nonnegative(),
    toSeconds: z.number().positive(),
  })
  .refine((c) => c.toSegment > c.fromSegment && c.toSeconds > c.fromSeconds, { message: "an empty chunk" });
export type ChunkRange = z.infer<typeof ChunkRange>;

/**
 * Encodes one chunk of a split transcode (`job.split`): the video rungs of `ladder`, segments
 * `chunk.fromSegment` to `chunk.toSegment - 1`, published under `{outputPrefix}/hls/` with the
 * numbers a one-process encode gives them. It writes no playlist: the API lists the segments
 * (`chunk.succeeded`) once every earlier chunk's are listed.
 */
export const TranscodeChunkJobMessage = z.object({
  v: readVersion,
  type: z.literal("transcode_chunk"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  /** The split transcode's job. */
  parentJobId: z.uuid(),
  sourceKey: z.string().min(1),
  outputPrefix: z.string().min(1),
  chunk: ChunkRange,
  /** The video rungs the first run planned, encoded with exactly its settings. */
  ladder: z.array(z.lazy(() => PlannedRung)).min(1),
  /** The source as the split run probed it (APIs before it do not send it: the chunk probes). */
  source: z.lazy(() => ChunkSource).optional(),
  /** The split transcode's options the chunk's encode depends on. */
  options: TranscodeOptions.pick({
    segmentSeconds: true,
    segmentFormat: true,
    watermark: true,
    maxDurationSeconds: true,
  }),
});
export type TranscodeChunkJobMessage = z.infer<typeof TranscodeChunkJobMessage>;

/** Manim's quality presets: `-ql` 854x480 15 fps, `-qm` 1280x720 30, `-qh` 1920x1080 60, `-qk` 3840x2160 60. */
export const ManimQuality = z.enum(["LOW", "MEDIUM", "HIGH", "FOURK"]);
export type ManimQuality = z.infer<typeof ManimQuality>;
export const ManimRenderer = z.enum(["CAIRO", "OPENGL"]);
export type ManimRenderer = z.infer<typeof ManimRenderer>;

/**
 * Renders one scene of a Manim (Community Edition) script to an MP4 at `outputKey`, in a sandbox.
 * Partial movie files (one per animation) are kept under `cachePrefix`, so a re-render of an
 * edited scene renders only the animations whose Manim hash changed.
 */
export const RenderManimJobMessage = z.object({
  v: readVersion,
  type: z.literal("render_manim"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  /** Whose cache this is; the API builds `cachePrefix` from it. */
  tenantId: z.string().min(1),
  /** The Python source of the script. */
  code: z.string().min(1).max(1_000_000),
  /** The Scene subclass to render. */
  sceneName: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not a Python class name"),
  quality: ManimQuality,
  renderer: ManimRenderer.default("CAIRO"),
  /** Storage key of the rendered MP4, e.g. `videos/{videoId}/source/scene.mp4`. */
  outputKey: z.string().min(1),
  /** Storage prefix of the tenant's partial movie files, e.g. `manim-cache/{tenantId}`. */
  cachePrefix: z.string().min(1),
});
export type RenderManimJobMessage = z.infer<typeof RenderManimJobMessage>;

// --- Quiz compositions and URL imports ---

/** One quiz question: 2 to 6 choices, `answerIndex` the correct one (0-based). */
export const QuizQuestion = z
  .object({
    question: z.string().trim().min(1).max(500),
    choices: z.array(z.string().trim().min(1).max(200)).min(2).max(6),
    answerIndex: z.number().int().nonnegative(),
    explanation: z.string().max(1000).optional(),
  })
  .refine((q) => q.answerIndex < q.choices.length, {
    message: "answerIndex must point at one of the choices",
    path: ["answerIndex"],
  });
export type QuizQuestion = z.infer<typeof QuizQuestion>;

/** Renders a quiz to one mp4 at `outputKey` (a render job; its transcode is a separate job). */
export const RenderCompositionJobMessage = z.object({
  v: readVersion,
  type: z.literal("render_composition"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  template: z.literal("QUIZ"),
  questions: z.array(QuizQuestion).min(1).max(100),
  /** How long each question shows with its timer, before the answer is revealed. */
  secondsPerQuestion: z.number().min(1).max(60).default(5),
  /** espeak-ng reads each question and its choices; the voice name goes to `espeak-ng -v`. */
  narration: z
    .object({ voice: z.string().regex(/^[A-Za-z0-9_+-]{1,64}$/) })
    .nullable()
    .default(null),
  /** Storage keys of tenant-uploaded assets; each replaces a built-in look or sound. */
  assets: z
    .object({
      backgroundKey: z.string().min(1).optional(),
      timerKey: z.string().min(1).optional(),
      correctSoundKey: z.string().min(1).optional(),
    })
    .default({}),
  width: z.number().int().min(320).max(3840).multipleOf(2).default(1280),
  height: z.number().int().min(240).max(2160).multipleOf(2).default(720),
  /** Storage key of the rendered mp4, e.g. `videos/{videoId}/source/composition.mp4`. */
  outputKey: z.string().min(1),
});
export type RenderCompositionJobMessage = z.infer<typeof RenderCompositionJobMessage>;

/** Downloads a video from a public http(s) URL into storage at `outputKey`. */
export const ImportUrlJobMessage = z.object({
  v: readVersion,
  type: z.literal("import_url"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  url: z.string().min(1).max(8192),
  /** Larger responses are refused, whether they say so in Content-Length or not. */
  maxBytes: z.number().int().positive(),
  outputKey: z.string().min(1),
  /** Test-only: lets the worker fetch loopback and private addresses. Never set it in production. */
  allowPrivateAddresses: z.boolean().default(false),
});
export type ImportUrlJobMessage = z.infer<typeof ImportUrlJobMessage>;

/** A progressive file made beside the HLS ladder: `HIGHEST` and `LOW` as MP4, `AUDIO` as M4A. */
const StaticRenditionName = z.enum(["HIGHEST", "LOW", "AUDIO"]);

const RungName = z.string().regex(/^[a-z0-9]+$/);

/** One static rendition to make, from the published HLS rungs named (at least one of them). */
export const StaticRenditionPlan = z
  .object({ name: StaticRenditionName, videoRung: RungName.nullable(), audioRung: RungName.nullable() })
  .refine((r) => r.videoRung !== null || r.audioRung !== null, { message: "a rendition needs a rung" })
  .refine((r) => (r.name === "AUDIO") === (r.videoRung === null), { message: "AUDIO alone has no video rung" });
export type StaticRenditionPlan = z.infer<typeof StaticRenditionPlan>;

/**
 * Remuxes a READY video's published HLS rungs into progressive files under `{outputPrefix}/mp4/`
 * (stream copy, `+faststart`, no encode). Ends with `static_renditions.done`.
 */
export const StaticRenditionsJobMessage = z.object({
  v: readVersion,
  type: z.literal("static_renditions"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  outputPrefix: z.string().min(1),
  renditions: z.array(StaticRenditionPlan).min(1).max(StaticRenditionName.options.length),
});
export type StaticRenditionsJobMessage = z.infer<typeof StaticRenditionsJobMessage>;

/** The largest picture a broadcast may have (its width, its height and their product): the ingest refuses more. */
export const MAX_LIVE_INPUT = { width: 3840, height: 2160 } as const;

/**
 * What the API saw of a live publisher's stream when it accepted it (the stream's metadata, which
 * the publisher sends and the API bounded, and the size its H.264 decodes to, checked equal): the
 * ladder is planned from it.
 */
export const LiveInput = z.object({
  width: z.number().int().min(16).max(MAX_LIVE_INPUT.width),
  height: z.number().int().min(16).max(MAX_LIVE_INPUT.height),
  fps: z.number().positive().max(120),
  hasAudio: z.boolean(),
});
export type LiveInput = z.infer<typeof LiveInput>;

/**
 * A live run holds its feed while it lives: GET `feedUrl` with this header (its own id) is answered
 * with no body and kept open; POST with it says the run is done. The connection closing without
 * that POST is the run's death, which the API holding the feed takes the broadcast over for, also
 * after the feed has ended (docs/live.md, "When the encode's process dies").
 */
export const LIVE_PRESENCE_HEADER = "x-videograph-run-presence";

/**
 * Encodes a live broadcast (docs/live.md): reads the publisher's stream as FLV from `feedUrl` (the
 * API that accepted the publisher serves it, the token in the URL bound to this video) until it
 * ends, and publishes an HLS ladder under `{outputPrefix}/hls/` as segments are cut: event
 * playlists while live, ended (a VOD recording) when the feed ends. Ends with `job.succeeded`.
 */
export const LiveJobMessage = z.object({
  v: readVersion,
  type: z.literal("live"),
  jobId: z.uuid(),
  attempt: z.number().int().positive(),
  traceparent: Traceparent,
  videoId: z.uuid(),
  outputPrefix: z.string().min(1),
  feedUrl: z.url({ protocol: /^https?$/ }),
  input: LiveInput,
  options: z.object({
    segmentSeconds: z.number().min(1).max(10),
    /** The longest broadcast: the encode stops there and the recording ends. */
    maxDurationSeconds: z.number().positive(),
    /**
     * Whether the recording is kept (its stream's `recording`): when false, the worker makes no
     * recording source or storyboard at the end, and the API deletes the broadcast's media.
     */
    record: z.boolean().default(true),
    /**
     * How long the broadcast waits for its publisher (its stream's reconnect window): a run whose
     * feed's connection broke (the API instance holding it died) waits this long for the feed to come
     * back through another instance before it ends the broadcast with what was published. Default:
     * LIVE_RECONNECT_GRACE_SECONDS' default, for messages of an API before it was sent.
     */
    reconnectWindowSeconds: z.number().min(0).max(120).default(30),
  }),
});
export type LiveJobMessage = z.infer<typeof LiveJobMessage>;

/** Every job message kind, discriminated by `type`. */
export const JobMessage = z.discriminatedUnion("type", [
  TranscodeJobMessage,
  RenderManimJobMessage,
  RenderCompositionJobMessage,
  ImportUrlJobMessage,
  StaticRenditionsJobMessage,
  TranscodeChunkJobMessage,
  LiveJobMessage,
]);
export type JobMessage = z.infer<typeof JobMessage>;

/** Facts the worker's probe found about the source. */
export const ProbeResult = z.object({
  duration: z.number().nonnegative(),
  /** Display dimensions (rotation applied); null for an audio-only source. */
  width: z.number().int().positive().nullable(),
  height: z.number().int().positive().nullable(),
  fps: z.number().nonnegative(),
  rotation: z.number().int(),
  hasAudio: z.boolean(),
  /** Null for an audio-only source. */
  videoCodec: z.string().nullable(),
  audioCodec: z.string().nullable(),
  /** The audio stream's channel count, when it has one and ffprobe knows it. */
  audioChannels: z.number().int().positive().nullable().optional(),
  /** The audio stream's bits per second, when ffprobe knows it (not for lossless or unknown rates). */
  audioBitrate: z.number().int().positive().nullable().optional(),
});
export type ProbeResult = z.infer<typeof ProbeResult>;

/**
 * A split transcode's source as its first run probed it, handed to its chunks (`job.split`, then
 * each `transcode_chunk`): a chunk opens the source as `format` with this probe instead of probing
 * it again, which on cloud storage reads the source over HTTP before each chunk's encode. A worker
 * whose upload whitelist does not name `format`, or a chunk without it (split by a worker before
 * it), probes the source itself.
 */
const ChunkSource = z.object({
  probe: ProbeResult,
  /** The container ffprobe found, one of the worker's upload formats (`mov`, `matroska`, …). */
  format: z.string().regex(/^[a-z0-9_]{1,32}$/),
  /** The container's start time in seconds, which a seek into it counts from (absent: the chunk reads it). */
  startTime: z.number().min(-86_400).max(86_400).optional(),
});
export type ChunkSource = z.infer<typeof ChunkSource>;

/** One rung of the planned ladder. */
export const Rung = z.object({
  /** Directory name under `hls/` and the variant's name: `720p`, `audio`. */
  name: z.string().regex(/^[a-z0-9]+$/),
  kind: z.enum(["VIDEO", "AUDIO"]),
  width: z.number().int().positive().nullable(),
  height: z.number().int().positive().nullable(),
  /** Peak bits per second, as declared in the master playlist. */
  bandwidth: z.number().int().positive(),
  /** RFC 6381 codecs string, e.g. `avc1.64001f` or `mp4a.40.2`. */
  codecs: z.string(),
  /** The encoder's target bits per second (without MPEG-TS overhead); set on an audio-only ladder's rungs. */
  bitrate: z.number().int().positive().optional(),
});
export type Rung = z.infer<typeof Rung>;

/** A rung as the worker planned it for its encoder: the H.264 level, an audio-only rung's channels. */
export const PlannedRung = Rung.extend({
  /** H.264 level_idc (31 is level 3.1); absent on audio rungs. */
  h264Level: z.number().int().positive().optional(),
  /** An audio-only ladder's rung: 1 (mono stays mono) or 2 channels. */
  channels: z.union([z.literal(1), z.literal(2)]).optional(),
});
export type PlannedRung = z.infer<typeof PlannedRung>;

/** A rung's segments as published, in order: what a playlist of them lists. */
export const PublishedSegments = z.object({
  name: z.string().regex(/^[a-z0-9]+$/),
  segments: z.array(
    z.object({
      uri: z.string().regex(/^seg_[0-9]{5,9}\.(?:ts|m4s)$/),
      duration: z.number().positive().finite(),
      /**
       * The bytes storage holds for it (an fMP4 segment's without its init), where the run uploaded it
       * or found it uploaded: what the master's measured BANDWIDTH counts. Absent from older workers.
       */
      bytes: z.number().int().positive().optional(),
    }),
  ),
});
export type PublishedSegments = z.infer<typeof PublishedSegments>;

/** What a rendition's published segments carry, in bits per second (`segmentBitRates`). */
export const BitRates = z.object({
  // Stored in Variant's INTEGER columns.
  peak: z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1),
  average: z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1),
});

/** What a named rung's published segments carry (`BitRates`). */
export const RenditionBitRates = BitRates.extend({ name: z.string().regex(/^[a-z0-9]+$/) });

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

/** How one static rendition came out: stored at `key`, or failed (alone: the others and the video stand). */
export const StaticRenditionOutcome = z.discriminatedUnion("status", [
  z.object({
    name: StaticRenditionName,
    status: z.literal("READY"),
    key: z.string().min(1),
    width: z.number().int().positive().nullable(),
    height: z.number().int().positive().nullable(),
    /** Average bits per second of the file. */
    bitrate: z.number().int().nonnegative(),
    sizeBytes: z.number().int().positive(),
  }),
  z.object({ name: StaticRenditionName, status: z.literal("FAILED"), error: z.string() }),
]);
export type StaticRenditionOutcome = z.infer<typeof StaticRenditionOutcome>;

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

/** One rendition of a live encode, in `live.progress`. */
export const LiveRenditionHealth = z.object({
  /** The rung's name (`720p`, `audio`). */
  name: z.string().min(1).max(32),
  /** Segments of it published so far. */
  segments: z.number().int().nonnegative(),
  /** Bits per second of its newest segments (up to three), as published; null before its first. */
  bitrate: z.number().int().nonnegative().nullable(),
  /** Whether it is the publisher's own video, copied (LIVE_PASSTHROUGH), not encoded. */
  copied: z.boolean(),
});
export type LiveRenditionHealth = z.infer<typeof LiveRenditionHealth>;

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
  "live.progress": "progress",
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

/** Sent by every worker on a timer, with what it can do and what it is running. */
export const WorkerHeartbeat = z.object({
  v: readVersion,
  type: z.literal("worker.heartbeat"),
  workerId: z.string().min(1),
  capabilities: z.array(Capability),
  /**
   * Capabilities it is testing (Manim's test render) and takes once the test passes; the API
   * accepts their jobs meanwhile. Absent from older workers.
   */
  probing: z.array(Capability).optional(),
  /** Jobs it runs at once (WORKER_CONCURRENCY); absent from older workers, which count as 1. */
  slots: z.number().int().positive().optional(),
  /**
   * Broadcasts it encodes at once when it serves `live` (WORKER_LIVE_SLOTS), beside its `slots`;
   * absent from older workers, whose live queue took `slots` broadcasts.
   */
  liveSlots: z.number().int().positive().optional(),
  /** Jobs (id and attempt) the worker is running right now. */
  activeJobs: z.array(z.object({ jobId: z.uuid(), attempt: z.number().int().positive() })),
  at: z.iso.datetime(),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeat>;

/**
 * Sent by the API to every worker (broadcast); a worker acts on the jobs it runs and ignores the
 * rest. Delivery is best effort: a worker that misses a cancel finds out when its events are
 * refused, and the API repeats the cancel when a canceled job starts or appears in the worker's
 * heartbeat (which a worker sends at once when its control channel comes back).
 */
export const ControlMessage = z.discriminatedUnion("type", [
  z.object({
    v: readVersion,
    type: z.literal("job.cancel"),
    jobId: z.uuid(),
    attempt: z.number().int().positive(),
    /** Only this worker stops (a duplicate run of a job another worker is running); all when absent. */
    workerId: z.string().optional(),
    /** Only this run stops (a duplicate run, which may be on the same worker as the original). */
    runId: z.uuid().optional(),
  }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

/** Parses an unknown message into a control message, with a readable error for old or foreign ones. */
export function parseControlMessage(data: unknown): ControlMessage {
  const result = ControlMessage.safeParse(data);
  if (!result.success) throw new ProtocolError("control message", data, result.error);
  return result.data;
}

/** Everything a worker sends to the API. */
export const WorkerEvent = z.union([JobEvent, WorkerHeartbeat]);
export type WorkerEvent = z.infer<typeof WorkerEvent>;

/** Distributive Omit, so each event kind keeps its own fields. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A job event as a handler writes it; the worker's emitter adds the envelope and a start's `delivery`. */
export type JobEventBody = DistributiveOmit<
  JobEvent,
  "v" | "jobId" | "attempt" | "seq" | "workerId" | "runId" | "at" | "traceparent" | "delivery"
>;

/** Parses an unknown message into a job message, with a readable error for old or foreign ones. */
export function parseJobMessage(data: unknown): JobMessage {
  const result = JobMessage.safeParse(data);
  if (!result.success) throw new ProtocolError("job message", data, result.error);
  return result.data;
}

/** Parses an unknown message into a worker event, with a readable error for old or foreign ones. */
export function parseWorkerEvent(data: unknown): WorkerEvent {
  const result = WorkerEvent.safeParse(renameOlderEvent(data));
  if (!result.success) throw new ProtocolError("worker event", data, result.error);
  return result.data;
}

/** Events under the names older workers send them by, renamed; everything else as it is. */
function renameOlderEvent(data: unknown): unknown {
  if (typeof data !== "object" || data === null) return data;
  const event = data as Record<string, unknown>;
  if (event.type === "render.progress") {
    if (event.v !== 1) return { ...event, type: "step.progress" };
    const { animationIndex, animationCount, ...rest } = event;
    return { ...rest, type: "step.progress", index: animationIndex, count: animationCount };
  }
  if (event.v === 1 && event.type === "render.succeeded") {
    const { animationsRendered, animationsCached, ...rest } = event;
    return { ...rest, type: "source.ready", renderedCount: animationsRendered, cachedCount: animationsCached };
  }
  return data;
}

export class ProtocolError extends Error {
  constructor(what: string, data: unknown, cause: z.ZodError) {
    const v = typeof data === "object" && data !== null && "v" in data ? (data as { v: unknown }).v : undefined;
    const known = (READ_VERSIONS as readonly unknown[]).includes(v);
    const version = known ? "" : ` (protocol version ${JSON.stringify(v)}, expected ${READ_VERSIONS.join(" or ")})`;
    super(`Invalid ${what}${version}: ${z.prettifyError(cause)}`, { cause });
    this.name = "ProtocolError";
  }
}
