import { builder } from "../builder.ts";
import { hlsLayout, videoPrefix } from "../protocol/storage-layout.ts";
import { mediaUrl } from "./urls.ts";

builder.prismaObjectFields("Video", (t) => ({
  dashUrl: t.string({
    nullable: true,
    description:
      "Its MPEG-DASH MPD over the same fMP4 segments as `playbackUrl` (for dash.js, Shaka Player, ExoPlayer), with " +
      "its caption tracks as WebVTT text; a playback token for a SIGNED video. Null unless the video is READY with " +
      "segmentFormat FMP4: DASH needs ISO-BMFF segments, and its MPD is static, so a video still encoding plays as HLS. " +
      "Null for a protected video: its segments are encrypted whole, for HLS's AES-128.",
    select: {
      id: true,
      status: true,
      segmentFormat: true,
      masterKey: true,
      playbackPolicy: true,
      contentProtection: true,
    },
    resolve: (video, _args, ctx) =>
      video.status === "READY" && video.segmentFormat === "FMP4" && video.masterKey && video.contentProtection === null
        ? mediaUrl(ctx, hlsLayout(videoPrefix(video.id)).dashManifestKey, video)
        : null,
  }),
}));
