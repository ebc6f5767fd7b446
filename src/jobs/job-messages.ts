import type { Job, JobKind, Video } from "../generated/prisma/client.ts";
import { MediaFilters } from "../protocol/media-filters.ts";
import { PROTOCOL_VERSION, type JobMessage } from "../protocol/messages.ts";
import { manimCachePrefix, sourceKey, videoPrefix } from "../protocol/storage-layout.ts";
import { parseJobInput, type StoredJobInput } from "./create-job.ts";

export interface JobMessageSettings {
  segmentSeconds: number;
  maxDurationSeconds: number;
  /** createVideoFromUrl: the largest download, and the test-only private-address switch. */
  urlImport: { maxBytes: number; allowPrivateAddresses: boolean };
}

/** The message type each job kind is sent as. */
const MESSAGE_TYPE = {
  TRANSCODE: "transcode",
  RENDER_MANIM: "render_manim",
  RENDER_COMPOSITION: "render_composition",
  IMPORT_URL: "import_url",
  STATIC_RENDITIONS: "static_renditions",
  TRANSCODE_CHUNK: "transcode_chunk",
  LIVE: "live",
} as const satisfies Record<JobKind, JobMessage["type"]>;

type MessageOf<K extends JobKind> = Extract<JobMessage, { type: (typeof MESSAGE_TYPE)[K] }>;
type Envelope = Pick<JobMessage, "v" | "jobId" | "attempt" | "videoId">;

/** Everything a builder needs: the job's row, its video, its input parsed by its kind's schema. */
interface BuildFrom<K extends JobKind> {
  job: Job;
  video: Video;
  input: StoredJobInput<K>;
  settings: JobMessageSettings;
  envelope: Envelope;
}

// A message type of the contract that no job kind sends fails to compile here.
type UnsentMessageType = Exclude<JobMessage["type"], (typeof MESSAGE_TYPE)[JobKind]>;
const everyMessageTypeIsSent: [UnsentMessageType] extends [never] ? true : UnsentMessageType = true;
void everyMessageTypeIsSent;

const builders = {
  TRANSCODE: ({ job, video, input, settings, envelope }) => {
    if (!video.sourceKey) throw new Error(`Job ${job.id} has no source to transcode`);
    return {
      ...envelope,
      type: "transcode",
      sourceKey: video.sourceKey,
      outputPrefix: videoPrefix(job.videoId),
      options: {
        segmentSeconds: settings.segmentSeconds,
        maxDurationSeconds: settings.maxDurationSeconds,
        segmentFormat: video.segmentFormat,
        // retryVariant: only these rungs, the master still listing the whole ladder.
        ...(input.rungs ? { rungs: input.rungs } : {}),
        // The video's loudness target and watermark: every attempt and every job of it the same.
        ...(video.mediaFilters === null ? {} : MediaFilters.parse(video.mediaFilters)),
        ...clipTrim(video),
      },
    };
  },
  RENDER_MANIM: ({ job, video, input, envelope }) => ({
    ...envelope,
    type: "render_manim",
    tenantId: video.tenantId,
    ...input,
    outputKey: sourceKey(job.videoId, "scene.mp4"),
    cachePrefix: manimCachePrefix(video.tenantId),
  }),
  RENDER_COMPOSITION: ({ job, input, envelope }) => ({
    ...envelope,
    type: "render_composition",
    ...input,
    outputKey: sourceKey(job.videoId, "composition.mp4"),
  }),
  IMPORT_URL: ({ job, input, settings, envelope }) => ({
    ...envelope,
    type: "import_url",
    url: input.url,
    maxBytes: settings.urlImport.maxBytes,
    allowPrivateAddresses: settings.urlImport.allowPrivateAddresses,
    outputKey: sourceKey(job.videoId, "import"),
  }),
  STATIC_RENDITIONS: ({ job, input, envelope }) => ({
    ...envelope,
    type: "static_renditions",
    outputPrefix: videoPrefix(job.videoId),
    renditions: input.renditions,
  }),
  TRANSCODE_CHUNK: ({ job, video, input, settings, envelope }) => {
    if (!video.sourceKey || !job.parentId) throw new Error(`Job ${job.id} has no source or no split transcode`);
    const { watermark } = video.mediaFilters === null ? {} : MediaFilters.parse(video.mediaFilters);
    return {
      ...envelope,
      type: "transcode_chunk",
      parentJobId: job.parentId,
      sourceKey: video.sourceKey,
      outputPrefix: videoPrefix(job.videoId),
      chunk: input.chunk,
      ladder: input.ladder,
      ...(input.source ? { source: input.source } : {}),
      options: {
        segmentSeconds: settings.segmentSeconds,
        maxDurationSeconds: settings.maxDurationSeconds,
        segmentFormat: video.segmentFormat,
        // The same mark as the split run drew on the first chunk; the audio is not a chunk's.
        ...(watermark ? { watermark } : {}),
      },
    };
  },
  LIVE: ({ job, input, envelope }) => ({
    ...envelope,
    type: "live",
    outputPrefix: videoPrefix(job.videoId),
    ...input,
  }),
} satisfies { [K in JobKind]: (from: BuildFrom<K>) => MessageOf<K> };

/** A clip's range of its source, which every transcode of the clip (retries included) encodes. */
function clipTrim(video: Video): { trim?: { start: number; end: number } } {
  return video.clipStart === null || video.clipEnd === null
    ? {}
    : { trim: { start: video.clipStart, end: video.clipEnd } };
}

/**
 * The message for a job's current attempt, built from its row at every dispatch (so a retried
 * attempt carries the same input). Throws when the row's input does not fit its kind's schema.
 */
export function buildJobMessage(job: Job, video: Video, settings: JobMessageSettings): JobMessage {
  const envelope = { v: PROTOCOL_VERSION, jobId: job.id, attempt: job.attempt, videoId: job.videoId };
  const stored = job.kind === "TRANSCODE" ? { rungs: job.rungs.length > 0 ? job.rungs : undefined } : job.input;
  const input = parseJobInput(job.kind, stored);
  const build = builders[job.kind] as (from: BuildFrom<JobKind>) => JobMessage;
  return build({ job, video, input, settings, envelope });
}
