import { builder } from "../builder.ts";
import { tenantOf, type Context } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { isUuid } from "../ids.ts";
import { storedMediaFilters } from "../videos/creation-options.ts";
import {
  DEFAULT_LOUDNESS_TARGET,
  LoudnessTarget,
  WATERMARK_MAX_BYTES,
  type Watermark,
  WatermarkFormat,
  WatermarkPosition,
} from "../protocol/media-filters.ts";

const WatermarkPositionEnum = builder.enumType("WatermarkPosition", { values: WatermarkPosition.options });
const MarginUnitEnum = builder.enumType("MarginUnit", {
  values: {
    PERCENT: { description: "Percent of the video's shorter side, the same share in every rung." },
    PIXELS: { description: "Pixels of the source, scaled with the picture in every rung." },
  } as const,
});

export const LoudnessInput = builder.inputType("LoudnessInput", {
  description:
    "EBU R128 loudness normalization (ffmpeg loudnorm, two passes: the audio is measured, then its gain " +
    "set so it reaches the target). A video without audio ignores it.",
  fields: (t) => ({
    integratedLufs: t.float({ description: "Integrated loudness, −70 to −5 LUFS. Default −16." }),
    truePeakDb: t.float({ description: "Maximum true peak, −9 to 0 dBTP. Default −1.5." }),
    lra: t.float({ description: "Loudness range, 1 to 50 LU. Default 11." }),
  }),
});

export const WatermarkInput = builder.inputType("WatermarkInput", {
  description: "An image drawn in a corner of every frame, before the ladder is scaled (so every rung shows it).",
  fields: (t) => ({
    assetId: t.id({ required: true, description: "A WATERMARK asset of the caller's tenant (uploadAsset)." }),
    position: t.field({ type: WatermarkPositionEnum, description: "Default BOTTOM_RIGHT." }),
    widthFraction: t.float({
      description: "The image's width as a fraction of the video's width, 0.01 to 1; default 0.15. Its aspect is kept.",
    }),
    margin: t.float({ description: "From the corner's edges, in `marginUnit`; default 3 (percent)." }),
    marginUnit: t.field({ type: MarginUnitEnum, description: "Default PERCENT (0 to 25); PIXELS 0 to 2000." }),
    opacity: t.float({ description: "0 (invisible) to 1 (opaque); default 0.8." }),
  }),
});

const LoudnessRef = builder.objectRef<LoudnessTarget>("Loudness").implement({
  description: "The EBU R128 target a video's audio is normalized to.",
  fields: (t) => ({
    integratedLufs: t.exposeFloat("integratedLufs"),
    truePeakDb: t.exposeFloat("truePeakDb"),
    lra: t.exposeFloat("lra"),
  }),
});

const WatermarkRef = builder.objectRef<Watermark>("Watermark").implement({
  description: "How a video's watermark is drawn (the image is the WATERMARK asset named at creation).",
  fields: (t) => ({
    position: t.field({ type: WatermarkPositionEnum, resolve: (w) => w.position }),
    widthFraction: t.exposeFloat("widthFraction"),
    margin: t.float({ resolve: (w) => w.margin.value }),
    marginUnit: t.field({ type: MarginUnitEnum, resolve: (w) => w.margin.unit }),
    opacity: t.exposeFloat("opacity"),
  }),
});

builder.prismaObjectFields("Video", (t) => ({
  loudness: t.field({
    type: LoudnessRef,
    nullable: true,
    description: "The loudness target its transcodes normalize the audio to; null: the audio as it is.",
    select: { mediaFilters: true },
    resolve: (video) => storedMediaFilters(video.mediaFilters).loudness ?? null,
  }),
  watermark: t.field({
    type: WatermarkRef,
    nullable: true,
    description: "The watermark its transcodes draw; null: none.",
    select: { mediaFilters: true },
    resolve: (video) => storedMediaFilters(video.mediaFilters).watermark ?? null,
  }),
}));

/** A loudness target as asked for, with its defaults, checked. */
export function validLoudness(input: {
  integratedLufs?: number | null;
  truePeakDb?: number | null;
  lra?: number | null;
}): LoudnessTarget {
  const target = {
    integratedLufs: input.integratedLufs ?? DEFAULT_LOUDNESS_TARGET.integratedLufs,
    truePeakDb: input.truePeakDb ?? DEFAULT_LOUDNESS_TARGET.truePeakDb,
    lra: input.lra ?? DEFAULT_LOUDNESS_TARGET.lra,
  };
  inRange("loudness.integratedLufs", target.integratedLufs, -70, -5, "LUFS");
  inRange("loudness.truePeakDb", target.truePeakDb, -9, 0, "dBTP");
  inRange("loudness.lra", target.lra, 1, 50, "LU");
  return LoudnessTarget.parse(target);
}

/** A watermark as asked for, with its defaults, checked; another tenant's asset is not found. */
export async function validWatermark(
  ctx: Context,
  input: {
    assetId: string | number;
    position?: WatermarkPosition | null;
    widthFraction?: number | null;
    margin?: number | null;
    marginUnit?: "PERCENT" | "PIXELS" | null;
    opacity?: number | null;
  },
): Promise<Watermark> {
  const unit = input.marginUnit ?? "PERCENT";
  const margin = input.margin ?? 3;
  const widthFraction = input.widthFraction ?? 0.15;
  const opacity = input.opacity ?? 0.8;
  inRange("watermark.opacity", opacity, 0, 1, "");
  inRange("watermark.widthFraction", widthFraction, 0.01, 1, "");
  inRange("watermark.margin", margin, 0, unit === "PERCENT" ? 25 : 2000, unit === "PERCENT" ? "%" : "px");
  const id = String(input.assetId);
  const asset = isUuid(id) ? await ctx.db.asset.findFirst({ where: { id, tenantId: tenantOf(ctx) } }) : null;
  if (!asset) throw new NotFoundError("asset", id);
  // uploadAsset checked a WATERMARK asset's bytes and stored the type it found.
  const format = WatermarkFormat.safeParse(asset.contentType.replace(/^image\//, ""));
  if (asset.kind !== "WATERMARK" || !format.success) {
    const what = `${asset.kind} asset (${asset.contentType})`;
    throw new ValidationError("watermark.assetId", `Asset ${asset.name} is a ${what}, not a WATERMARK image`);
  }
  if (asset.size > WATERMARK_MAX_BYTES) {
    throw new ValidationError("watermark.assetId", `A watermark image is at most ${WATERMARK_MAX_BYTES} bytes`);
  }
  return {
    key: asset.key,
    format: format.data,
    position: input.position ?? "BOTTOM_RIGHT",
    widthFraction,
    margin: { value: margin, unit },
    opacity,
  };
}

function inRange(field: string, value: number, min: number, max: number, unit: string): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ValidationError(field, `${field} is from ${min} to ${max}${unit ? ` ${unit}` : ""}, not ${value}`);
  }
}
