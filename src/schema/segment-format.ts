import { builder } from "../builder.ts";
import { SegmentFormat } from "../generated/prisma/enums.ts";

export const SegmentFormatEnum = builder.enumType(SegmentFormat, {
  name: "SegmentFormat",
  description: "How a video's HLS segments are packaged.",
  values: {
    TS: { description: "MPEG-TS segments (`.ts`): every HLS player." },
    FMP4: {
      description:
        "Fragmented MP4 (CMAF): an `init.mp4` per rung, named by `#EXT-X-MAP`, and `.m4s` media segments " +
        "(HLS version 7: iOS 10+, hls.js, Shaka).",
    },
  },
});

builder.prismaObjectFields("Video", (t) => ({
  segmentFormat: t.expose("segmentFormat", {
    type: SegmentFormatEnum,
    description: "How its HLS segments are packaged, as the mutation that created it chose.",
  }),
}));
