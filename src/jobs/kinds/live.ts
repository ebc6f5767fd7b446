import { LiveJobMessage } from "../../protocol/live-messages.ts";
import { videoPrefix } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule, noEstimate } from "./job-kind-module.ts";

const input = LiveJobMessage.pick({ feedUrl: true, input: true, options: true });

/** A live broadcast's feed encoded to an HLS ladder while it lasts (docs/live.md); queued when a publisher connects. */
export const live = {
  input,
  row: inputColumn,
  // A queue of its own: a broadcast holds a slot for as long as it lasts, beside the cpu slots.
  capability: "live",
  // A broadcast cannot wait for a GPU worker, nor move to another mid-stream.
  gpuEncodable: false,
  messageType: "live",
  buildMessage: ({ job, input, envelope }) => ({
    ...envelope,
    type: "live",
    outputPrefix: videoPrefix(job.videoId),
    ...input,
  }),
  // Never queued by a mutation (live streams have limits of their own).
  ratePoints: 0,
  onLastFailure: "fail the video",
  // A broadcast's length is unknown until it ends.
  estimateAtEnqueue: noEstimate,
} satisfies JobKindModule<typeof input, "live">;
