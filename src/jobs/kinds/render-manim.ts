import { RenderManimJobMessage } from "../../protocol/source-messages.ts";
import { manimCachePrefix, sourceKey } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule, noEstimate } from "./job-kind-module.ts";

const input = RenderManimJobMessage.pick({ code: true, sceneName: true, quality: true, renderer: true });

/** A tenant's Manim scene rendered, in the sandbox, to a video's source. */
export const renderManim = {
  input,
  row: inputColumn,
  capability: "manim",
  // It encodes its source with libx264; its TRANSCODE child follows GPU routing.
  gpuEncodable: false,
  messageType: "render_manim",
  buildMessage: ({ job, video, input, envelope }) => ({
    ...envelope,
    type: "render_manim",
    tenantId: video.tenantId,
    ...input,
    outputKey: sourceKey(job.videoId, "scene.mp4"),
    cachePrefix: manimCachePrefix(video.tenantId),
  }),
  ratePoints: 5,
  onLastFailure: "fail the video",
  estimateAtEnqueue: noEstimate,
} satisfies JobKindModule<typeof input, "render_manim">;
