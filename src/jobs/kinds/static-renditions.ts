import { estimateRemuxAtEnqueue } from "../../costs/job-cost.ts";
import { StaticRenditionsJobMessage } from "../../protocol/static-rendition-messages.ts";
import { videoPrefix } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule } from "./job-kind-module.ts";

const input = StaticRenditionsJobMessage.pick({ renditions: true });

/** MP4/M4A files remuxed from a video's published rungs. */
export const staticRenditions = {
  input,
  row: inputColumn,
  capability: "cpu",
  // A remux of published rungs: no encode.
  gpuEncodable: false,
  messageType: "static_renditions",
  buildMessage: ({ job, input, envelope }) => ({
    ...envelope,
    type: "static_renditions",
    outputPrefix: videoPrefix(job.videoId),
    renditions: input.renditions,
  }),
  ratePoints: 2,
  // Its failure is its own: the video and its ladder stand.
  onLastFailure: "fail its static renditions",
  estimateAtEnqueue: (tx, costs, job, { renditions }) => {
    const remuxed = renditions.flatMap((r) =>
      [r.videoRung, r.audioRung].filter((name): name is string => name !== null),
    );
    return estimateRemuxAtEnqueue(tx, costs, { ...job, rungs: [...new Set(remuxed)] });
  },
} satisfies JobKindModule<typeof input, "static_renditions">;
