/**
 * Media filters (loudness normalization, a watermark): what a video's transcodes apply to its
 * source besides the ladder, chosen when the video is created, stored on it (`Video.mediaFilters`)
 * and carried by every transcode message of it, so a retry and a resumed run apply them the same way.
 */
import { z } from "zod";

/** An EBU R128 target for ffmpeg's two-pass `loudnorm` (its own ranges). */
export const LoudnessTarget = z.object({
  /** Integrated loudness, LUFS. */
  integratedLufs: z.number().min(-70).max(-5),
  /** Maximum true peak, dBTP. */
  truePeakDb: z.number().min(-9).max(0),
  /** Loudness range, LU. */
  lra: z.number().min(1).max(50),
});
export type LoudnessTarget = z.infer<typeof LoudnessTarget>;

/** The target when a video asks for normalization without naming one (streaming platforms' −16 LUFS). */
export const DEFAULT_LOUDNESS_TARGET: LoudnessTarget = { integratedLufs: -16, truePeakDb: -1.5, lra: 11 };

export const WatermarkPosition = z.enum(["TOP_LEFT", "TOP_RIGHT", "BOTTOM_LEFT", "BOTTOM_RIGHT"]);
export type WatermarkPosition = z.infer<typeof WatermarkPosition>;

/** The image formats a watermark may be; the worker opens the image as exactly this demuxer. */
export const WatermarkFormat = z.enum(["png", "jpeg"]);
export type WatermarkFormat = z.infer<typeof WatermarkFormat>;

/** The largest watermark image: its file and its pixels. */
export const WATERMARK_MAX_BYTES = 5 * 1024 * 1024;
export const WATERMARK_MAX_SIDE = 4096;

/**
 * A tenant's image drawn over every frame before the ladder is scaled, so every rung shows it at
 * the same place and the same share of the picture.
 */
export const Watermark = z.object({
  /** Storage key of the tenant's WATERMARK asset. */
  key: z.string().min(1),
  format: WatermarkFormat,
  position: WatermarkPosition,
  /** The image's width as a fraction of the video's width; its height keeps the image's aspect. */
  widthFraction: z.number().min(0.01).max(1),
  /** From the corner's two edges: a percentage of the video's shorter side, or pixels of the source. */
  margin: z.object({ value: z.number().min(0), unit: z.enum(["PERCENT", "PIXELS"]) }),
  opacity: z.number().min(0).max(1),
});
export type Watermark = z.infer<typeof Watermark>;

/** The media filters a video's transcodes apply; absent keys: nothing of that kind. */
export const MediaFilters = z.object({
  loudness: LoudnessTarget.optional(),
  watermark: Watermark.optional(),
});
export type MediaFilters = z.infer<typeof MediaFilters>;
