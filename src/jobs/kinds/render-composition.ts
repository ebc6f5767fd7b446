import { RenderCompositionJobMessage } from "../../protocol/source-messages.ts";
import { sourceKey } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule, noEstimate } from "./job-kind-module.ts";

const input = RenderCompositionJobMessage.pick({
  template: true,
  questions: true,
  secondsPerQuestion: true,
  narration: true,
  assets: true,
  width: true,
  height: true,
});

/** A template composition (a quiz) rendered to a video's source. */
export const renderComposition = {
  input,
  row: inputColumn,
  capability: "cpu",
  // It encodes its source with libx264; its TRANSCODE child follows GPU routing.
  gpuEncodable: false,
  messageType: "render_composition",
  buildMessage: ({ job, input, envelope }) => ({
    ...envelope,
    type: "render_composition",
    ...input,
    outputKey: sourceKey(job.videoId, "composition.mp4"),
  }),
  ratePoints: 5,
  onLastFailure: "fail the video",
  estimateAtEnqueue: noEstimate,
} satisfies JobKindModule<typeof input, "render_composition">;
