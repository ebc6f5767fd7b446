import { messageProtection } from "../../content-protection/job-protection.ts";
import { z } from "zod";
import { estimateTranscodeAtEnqueue } from "../../costs/job-cost.ts";
import type { Video } from "../../generated/prisma/client.ts";
import { MediaFilters } from "../../protocol/media-filters.ts";
import { TranscodeOptions } from "../../protocol/transcode-messages.ts";
import { videoPrefix } from "../../protocol/storage-layout.ts";
import type { JobKindModule } from "./job-kind-module.ts";

const input = z.object({ rungs: TranscodeOptions.shape.rungs });

/** A video's source to its HLS ladder: all of it, or the rungs `retryVariant` asks for again. */
export const transcode = {
  input,
  // Its rungs in `Job.rungs` (empty: the whole ladder), which the cost and the queue read too.
  row: {
    write: ({ rungs }) => (rungs ? { rungs } : {}),
    read: (job) => ({ rungs: job.rungs.length > 0 ? job.rungs : undefined }),
  },
  capability: "cpu",
  gpuEncodable: true,
  messageType: "transcode",
  buildMessage: ({ job, video, input, settings, envelope }) => {
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
        ...messageProtection(video, settings.contentKeys),
      },
    };
  },
  ratePoints: 5,
  onLastFailure: "fail the video",
  estimateAtEnqueue: (tx, costs, job, { rungs }) =>
    estimateTranscodeAtEnqueue(tx, costs, { ...job, rungs: rungs ?? [] }),
} satisfies JobKindModule<typeof input, "transcode">;

/** A clip's range of its source, which every transcode of the clip (retries included) encodes. */
function clipTrim(video: Video): { trim?: { start: number; end: number } } {
  return video.clipStart === null || video.clipEnd === null
    ? {}
    : { trim: { start: video.clipStart, end: video.clipEnd } };
}
