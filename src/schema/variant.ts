import { builder } from "../builder.ts";
import { mediaUrl } from "./urls.ts";

export const VariantStatusEnum = builder.enumType("VariantStatus", {
  values: ["PENDING", "ENCODING", "READY", "FAILED", "SKIPPED"] as const,
});
export const VariantKindEnum = builder.enumType("VariantKind", { values: ["VIDEO", "AUDIO"] as const });

export const VariantRef = builder.prismaObject("Variant", {
  description: "One rung of the HLS ladder.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    kind: t.expose("kind", { type: VariantKindEnum }),
    width: t.exposeInt("width", { nullable: true }),
    height: t.exposeInt("height", { nullable: true }),
    bandwidth: t.exposeInt("bandwidth", { description: "Peak bits per second, as in the master playlist." }),
    codecs: t.exposeString("codecs"),
    status: t.expose("status", { type: VariantStatusEnum }),
    progress: t.exposeFloat("progress", { description: "Media time of finished segments over duration, 0..1." }),
    segmentCount: t.exposeInt("segmentCount"),
    error: t.exposeString("error", { nullable: true }),
    playlistUrl: t.string({
      nullable: true,
      description: "The rung's media playlist, once its first segment is published.",
      select: { video: { select: { id: true, playbackPolicy: true } } },
      resolve: (variant, _args, ctx) =>
        variant.status === "READY" || variant.segmentCount > 0
          ? mediaUrl(ctx, `videos/${variant.videoId}/hls/${variant.name}/index.m3u8`, variant.video)
          : null,
    }),
  }),
});
