import type { Job, Video } from "../generated/prisma/client.ts";
import { PROTOCOL_VERSION, type JobMessage } from "../protocol/messages.ts";

export interface JobMessageSettings {
  segmentSeconds: number;
  maxDurationSeconds: number;
  /** createVideoFromUrl: the largest download, and the test-only private-address switch. */
  urlImport: { maxBytes: number; allowPrivateAddresses: boolean };
}

/** Where a render or import job stores the source it makes; the transcode then reads it. */
export const renderedSourceKeyFor = (videoId: string, name: string) => `videos/${videoId}/source/${name}`;
/** A tenant's Manim partial-movie cache (one folder per tenant, shared by its scenes). */
export const manimCachePrefixFor = (tenantId: string) => `tenants/${tenantId}/manim-cache`;

/**
 * The message for a job's current attempt, built from its row at every dispatch (so a retried
 * attempt carries the same input). Render and import jobs keep their input in `Job.input`.
 */
export function buildJobMessage(job: Job, video: Video, settings: JobMessageSettings): JobMessage {
  const base = { v: PROTOCOL_VERSION, jobId: job.id, attempt: job.attempt, videoId: job.videoId } as const;
  const input = (job.input ?? {}) as Record<string, unknown>;
  switch (job.kind) {
    case "TRANSCODE":
      if (!video.sourceKey) throw new Error(`Job ${job.id} has no source to transcode`);
      return {
        ...base,
        type: "transcode",
        sourceKey: video.sourceKey,
        outputPrefix: `videos/${job.videoId}`,
        options: {
          segmentSeconds: settings.segmentSeconds,
          maxDurationSeconds: settings.maxDurationSeconds,
          // retryVariant: only these rungs, the master still listing the whole ladder.
          ...(job.rungs.length > 0 ? { rungs: job.rungs } : {}),
        },
      };
    case "RENDER_MANIM":
      return {
        ...base,
        type: "render_manim",
        tenantId: video.tenantId,
        code: String(input.code),
        sceneName: String(input.sceneName),
        quality: input.quality as never,
        renderer: input.renderer as never,
        outputKey: renderedSourceKeyFor(job.videoId, "scene.mp4"),
        cachePrefix: manimCachePrefixFor(video.tenantId),
      };
    case "RENDER_COMPOSITION":
      return {
        ...base,
        type: "render_composition",
        template: "QUIZ",
        questions: input.questions as never,
        secondsPerQuestion: Number(input.secondsPerQuestion ?? 5),
        narration: (input.narration ?? null) as never,
        assets: (input.assets ?? {}) as never,
        width: Number(input.width ?? 1280),
        height: Number(input.height ?? 720),
        outputKey: renderedSourceKeyFor(job.videoId, "composition.mp4"),
      };
    case "IMPORT_URL":
      return {
        ...base,
        type: "import_url",
        url: String(input.url),
        maxBytes: settings.urlImport.maxBytes,
        allowPrivateAddresses: settings.urlImport.allowPrivateAddresses,
        outputKey: renderedSourceKeyFor(job.videoId, "import"),
      };
    default:
      throw new Error(`No job message for a ${job.kind} job`);
  }
}
