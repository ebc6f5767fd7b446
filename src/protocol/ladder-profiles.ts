/**
 * The ladder's profiles, which both programs read: the worker plans and encodes its rungs from
 * them (render-worker/media/ladder.ts), the API estimates a transcode's cost from them
 * (src/costs/cost-model.ts). A rung is added here, once.
 */

/** Video rungs by short side (the height of a landscape frame) → H.264 target bits per second, highest first. */
export const VIDEO_PROFILES: ReadonlyArray<{ shortSide: number; bitrate: number }> = [
  { shortSide: 2160, bitrate: 16_000_000 },
  { shortSide: 1440, bitrate: 10_000_000 },
  { shortSide: 1080, bitrate: 5_000_000 },
  { shortSide: 720, bitrate: 2_800_000 },
  { shortSide: 540, bitrate: 1_800_000 },
  { shortSide: 480, bitrate: 1_400_000 },
  { shortSide: 360, bitrate: 800_000 },
  { shortSide: 240, bitrate: 400_000 },
  { shortSide: 144, bitrate: 200_000 },
];

/** AAC-LC bits per second of the audio rung beside the video rungs (stereo). */
export const AUDIO_BITRATE = 128_000;

/** AAC-LC bitrates of an audio-only ladder by output channels, highest first. */
export const AUDIO_ONLY_PROFILES: Readonly<Record<1 | 2, readonly number[]>> = {
  2: [128_000, 64_000],
  1: [64_000, 32_000],
};
