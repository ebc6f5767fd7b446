import { WATERMARK_MAX_SIDE, type Watermark } from "../../src/protocol/media-filters.ts";
import type { FfmpegInput } from "./ffmpeg-process.ts";

/**
 * The watermark image as an ffmpeg input: a local file, opened as exactly the image format the API
 * found in its bytes, and no larger than a watermark may be.
 */
export function watermarkInput(file: string, watermark: Watermark): FfmpegInput {
  const demuxer = `${watermark.format}_pipe`;
  return {
    source: `file:${file}`,
    options: [
      "-protocol_whitelist",
      "file",
      "-format_whitelist",
      demuxer,
      "-f",
      demuxer,
      "-max_pixels",
      String(WATERMARK_MAX_SIDE * WATERMARK_MAX_SIDE),
    ],
  };
}

/**
 * The graph that draws input 1 (the image) over the decoded source `[0:V:0]` into `[src]`, before
 * the ladder is scaled: the image is sized as a share of the source's width (inside the picture,
 * aspect kept), made `opacity` transparent, and placed in its corner; the overlay repeats the
 * image's one frame for the whole video.
 */
export function watermarkGraph(watermark: Watermark, probe: { width: number; height: number }): string {
  const { width, height } = probe;
  const margin = Math.round(
    watermark.margin.unit === "PERCENT"
      ? (watermark.margin.value / 100) * Math.min(width, height)
      : watermark.margin.value,
  );
  const boxWidth = Math.max(2, Math.round(watermark.widthFraction * width));
  const boxHeight = Math.max(2, height - 2 * margin);
  const x = watermark.position.endsWith("LEFT") ? `${margin}` : `main_w-overlay_w-${margin}`;
  const y = watermark.position.startsWith("TOP") ? `${margin}` : `main_h-overlay_h-${margin}`;
  const image =
    `[1:v:0]scale=${boxWidth}:${boxHeight}:force_original_aspect_ratio=decrease:flags=bicubic,` +
    `format=rgba,colorchannelmixer=aa=${watermark.opacity}[wmark]`;
  return `${image};[0:V:0][wmark]overlay=x=${x}:y=${y}:eof_action=repeat:format=auto[src]`;
}
