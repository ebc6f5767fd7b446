import { messageProtection } from "../../content-protection/job-protection.ts";
import type { z } from "zod";
import type { Db } from "../../db/client.ts";
import type { CostSettings } from "../../costs/cost-model.ts";
import { estimateTranscodeAtEnqueue } from "../../costs/job-cost.ts";
import { MediaFilters } from "../../protocol/media-filters.ts";
import { TranscodeChunkJobMessage } from "../../protocol/transcode-messages.ts";
import { videoPrefix } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule } from "./job-kind-module.ts";

const chunkInput = TranscodeChunkJobMessage.pick({ chunk: true, ladder: true, source: true });

/** A part of a split transcode's source, queued by its transcode's run (docs/chunked-transcoding.md). */
export const transcodeChunk = {
  input: chunkInput,
  row: inputColumn,
  // Encoded with libx264, as the split run that planned it (only a cpu run splits).
  capability: "cpu",
  gpuEncodable: false,
  messageType: "transcode_chunk",
  buildMessage: ({ job, video, input, settings, envelope }) => {
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
        ...messageProtection(video, settings.contentKeys),
      },
    };
  },
  // Queued by a split transcode, never by a mutation: its transcode's points cover it.
  ratePoints: 0,
  onLastFailure: "fail the video",
  estimateAtEnqueue: (tx, costs, job, input) => estimateChunk(tx, costs, job, input),
} satisfies JobKindModule<typeof chunkInput, "transcode_chunk">;

/**
 * The estimate columns of a split transcode's chunk: a transcode of its part of the source, its
 * video rungs only (none before the source is probed).
 */
export function estimateChunk(
  tx: Pick<Db, "video" | "variant">,
  costs: CostSettings,
  job: { videoId: string; capability: string },
  input: z.output<typeof chunkInput>,
) {
  return estimateTranscodeAtEnqueue(tx, costs, {
    videoId: job.videoId,
    capability: job.capability,
    rungs: input.ladder.map((r) => r.name),
    seconds: input.chunk.toSeconds - input.chunk.fromSeconds,
  });
}
