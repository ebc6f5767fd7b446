import { timestampMapFor } from "../../captions/subtitle-playlists.ts";
import { captionKey } from "../../protocol/storage-layout.ts";
import { TranscribeJobMessage } from "../../protocol/transcribe-messages.ts";
import { inputColumn, type JobKindModule, noEstimate } from "./job-kind-module.ts";

const input = TranscribeJobMessage.pick({ captionId: true, language: true });

/** Speech recognition of a READY video's audio into a generated caption track (src/captions/generated-captions.ts). */
export const transcribe = {
  input,
  row: inputColumn,
  capability: "asr",
  gpuEncodable: false,
  messageType: "transcribe",
  buildMessage: ({ job, video, input, settings, envelope }) => {
    if (!video.sourceKey) throw new Error(`Job ${job.id} has no source to transcribe`);
    return {
      ...envelope,
      type: "transcribe",
      ...input,
      sourceKey: video.sourceKey,
      ...(video.clipStart === null || video.clipEnd === null
        ? {}
        : { trim: { start: video.clipStart, end: video.clipEnd } }),
      outputKey: captionKey(job.videoId, input.captionId),
      timestampMap: timestampMapFor(video.segmentFormat),
      maxDurationSeconds: settings.maxDurationSeconds,
    };
  },
  ratePoints: 3,
  // Its failure is its caption's: the video and its ladder stand.
  onLastFailure: "fail its caption",
  // Its actual cost (CPU seconds of the run, the model's included) is recorded when its run ends.
  estimateAtEnqueue: noEstimate,
} satisfies JobKindModule<typeof input, "transcribe">;
