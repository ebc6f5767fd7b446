import type { InputShapeFromFields } from "@pothos/core";
import type { builder } from "../builder.ts";
import type { Context } from "../context.ts";
import { validDescription, validExternalId, validMetadata, validTags } from "../videos/cms-fields.ts";
import { type CreationOptions, type InheritedOptions, NEW_VIDEO_DEFAULTS } from "../videos/creation-options.ts";
import { DESCRIPTION_INPUT, EXTERNAL_ID_INPUT, METADATA_INPUT, MetadataEntryInput, TAGS_INPUT } from "./cms-fields.ts";
import { LoudnessInput, validLoudness, validWatermark, WatermarkInput } from "./media-filters.ts";
import { SegmentFormatEnum } from "./segment-format.ts";
import { ContentProtectionInput } from "./content-protection.ts";
import { refuseCencForTs, refuseStaticRenditions, validProtection } from "../content-protection/protection-choice.ts";
import { STATIC_RENDITIONS_INPUT, StaticRenditionNameEnum } from "./static-rendition.ts";
import { GENERATED_CAPTIONS_INPUT, validGeneratedCaptions } from "../captions/generated-captions.ts";

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/**
 * The per-video options every create mutation takes (CreationOptions), as input fields or
 * arguments. `defaults` says what an option left out means: the usual defaults, or (createClip)
 * the source video's.
 */
export function creationOptionFields<Kind extends "Arg" | "InputObject">(
  t: PothosSchemaTypes.InputFieldBuilder<Types, Kind>,
  defaults: "new video" | "source video" = "new video",
) {
  const inherits = defaults === "source video";
  return {
    segmentFormat: t.field<typeof SegmentFormatEnum, false>({
      type: SegmentFormatEnum,
      description: inherits
        ? "How the HLS segments are packaged; default: the source video's (null: TS)."
        : "How the HLS segments are packaged; default TS.",
    }),
    contentProtection: t.field<typeof ContentProtectionInput, false>({
      type: ContentProtectionInput,
      description: inherits
        ? "Encrypt its segments (with a key of its own). Default: the source video's protection; null: none."
        : "Encrypt its segments with keys made for it, served only with its playback token; default none.",
    }),
    loudness: t.field<typeof LoudnessInput, false>({
      type: LoudnessInput,
      description: inherits
        ? "Normalize the audio's loudness (EBU R128). Default: the source video's target; null: none."
        : "Normalize the audio's loudness (EBU R128).",
    }),
    watermark: t.field<typeof WatermarkInput, false>({
      type: WatermarkInput,
      description: inherits
        ? "Draw a tenant's image over the video. Default: the source video's watermark; null: none."
        : "Draw a tenant's image over the video.",
    }),
    staticRenditions: t.field<[typeof StaticRenditionNameEnum], false>({
      type: [StaticRenditionNameEnum],
      description: STATIC_RENDITIONS_INPUT,
    }),
    generatedCaptions: t.field<["String"], false>({
      type: ["String"],
      description: inherits
        ? `${GENERATED_CAPTIONS_INPUT} The clip's own (not the source video's).`
        : GENERATED_CAPTIONS_INPUT,
    }),
    description: t.field<"String", false>({
      type: "String",
      description: inherits ? `${DESCRIPTION_INPUT} The clip's own (not the source video's).` : DESCRIPTION_INPUT,
    }),
    metadata: t.field<[typeof MetadataEntryInput], false>({
      type: [MetadataEntryInput],
      description: inherits ? `${METADATA_INPUT} The clip's own (not the source video's).` : METADATA_INPUT,
    }),
    tags: t.field<["String"], false>({
      type: ["String"],
      description: inherits ? `${TAGS_INPUT} The clip's own (not the source video's).` : TAGS_INPUT,
    }),
    externalId: t.field<"String", false>({ type: "String", description: EXTERNAL_ID_INPUT }),
  };
}

type CreationOptionArgs = Partial<InputShapeFromFields<ReturnType<typeof creationOptionFields<"InputObject">>>>;

/**
 * The options a create mutation chose, checked, as the video stores them. An option left out
 * (undefined) is `defaults`'s; one given as null is none (TS segments, no filter). Another
 * tenant's watermark asset is not found.
 */
export async function validCreationOptions(
  ctx: Context,
  args: CreationOptionArgs,
  defaults: InheritedOptions = NEW_VIDEO_DEFAULTS,
): Promise<CreationOptions> {
  const chosen = <T, U>(arg: T | null | undefined, leftOut: U, none: U, valid: (value: T) => U | Promise<U>) =>
    arg === undefined ? leftOut : arg === null ? none : valid(arg);
  // The tenant's text is checked (lengths first) before anything reads the database.
  const cms = {
    description: validDescription(args.description ?? null),
    metadata: validMetadata(args.metadata ?? null),
    tags: validTags(args.tags ?? null),
    externalId: validExternalId(args.externalId ?? null),
  };
  const staticRenditions = args.staticRenditions ?? [];
  const protection = await chosen(args.contentProtection, defaults.contentProtection, null, validProtection);
  // Also for a protection a clip inherits: its MP4s would be its source's media in the clear.
  refuseStaticRenditions(protection?.method ?? null, staticRenditions.length);
  const segmentFormat = await chosen(args.segmentFormat, defaults.segmentFormat, "TS", (format) => format);
  refuseCencForTs(protection?.method ?? null, segmentFormat);
  return {
    segmentFormat,
    contentProtection: protection && { ...protection, key: ctx.contentKeys.create() },
    mediaFilters: {
      loudness: await chosen(args.loudness, defaults.mediaFilters.loudness, undefined, validLoudness),
      watermark: await chosen(args.watermark, defaults.mediaFilters.watermark, undefined, (w) =>
        validWatermark(ctx, w),
      ),
    },
    staticRenditions,
    captions: await validGeneratedCaptions(ctx, args.generatedCaptions ?? []),
    ...cms,
  };
}
