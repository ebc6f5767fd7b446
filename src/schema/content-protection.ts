import { builder } from "../builder.ts";
import { ContentProtection } from "../generated/prisma/enums.ts";
import { KEY_ROTATION_LIMITS } from "../shared/segment-keys.ts";

const ContentProtectionEnum = builder.enumType(ContentProtection, {
  name: "ContentProtection",
  description: "How a video's HLS segments are encrypted (docs/security.md says what this protects against).",
  values: {
    AES_128: {
      description:
        "Whole segments encrypted with AES-128-CBC (`#EXT-X-KEY:METHOD=AES-128`), TS or fMP4; the key is served " +
        "only with the video's playback token, never stored beside the segments. Every HLS player.",
    },
    CENC: {
      description:
        "Common Encryption (scheme `cenc`, AES-128-CTR) of the samples in fMP4 segments (`#EXT-X-KEY:METHOD=SAMPLE-AES-CTR`, " +
        '`KEYFORMAT="org.w3.clearkey"`), for players with EME (hls.js `emeEnabled` with a ClearKey `licenseUrl`); ' +
        "the licence is served only with the video's playback token. FMP4 only; no key rotation yet.",
    },
  },
});

export const ContentProtectionInput = builder.inputType("ContentProtectionInput", {
  description:
    "Encrypt the video's segments with keys made for it. No static renditions (an MP4 download is the media in " +
    "the clear) and no DASH manifest.",
  fields: (t) => ({
    method: t.field({ type: ContentProtectionEnum, required: true }),
    keyRotationSegments: t.int({
      description:
        `A new key every this many segments (${KEY_ROTATION_LIMITS.min} to ${KEY_ROTATION_LIMITS.max}); ` +
        "default: one key for the whole video.",
    }),
  }),
});

const ContentProtectionRef = builder
  .objectRef<{ method: ContentProtection; keyRotationSegments: number | null }>("ContentProtectionSettings")
  .implement({
    description: "How a video's segments are encrypted, as its creator chose.",
    fields: (t) => ({
      method: t.expose("method", { type: ContentProtectionEnum }),
      keyRotationSegments: t.exposeInt("keyRotationSegments", {
        nullable: true,
        description: "A new key every this many segments; null: one key for the whole video.",
      }),
    }),
  });

builder.prismaObjectFields("Video", (t) => ({
  contentProtection: t.field({
    type: ContentProtectionRef,
    nullable: true,
    description: "How its segments are encrypted; null: not encrypted.",
    select: { contentProtection: true, keyRotationSegments: true },
    resolve: (video) =>
      video.contentProtection === null
        ? null
        : { method: video.contentProtection, keyRotationSegments: video.keyRotationSegments },
  }),
}));
