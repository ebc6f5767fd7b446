import type { ProbeResult } from "../../src/protocol/messages.ts";
import { AUDIO_CODECS, AUDIO_ENCODER_OPTIONS, type PlannedRung } from "./ladder.ts";

/** AAC-LC bitrates of an audio-only ladder by output channels, highest first. */
const AUDIO_ONLY_PROFILES: Readonly<Record<1 | 2, readonly number[]>> = {
  2: [128_000, 64_000],
  1: [64_000, 32_000],
};
/** The lowest rate an audio-only rung is encoded at, whatever the source's. */
const MIN_AUDIO_ONLY_BITRATE = 16_000;
/** A source this close below a profile (a VBR MP3 at 126 kb/s) still justifies it. */
const SOURCE_BITRATE_SLACK = 1.05;
/**
 * MPEG-TS carries AAC with far more overhead than video (PES headers, part-filled packets, the
 * tables at each segment's start): measured peaks per segment were 128k → 161 kb/s, 64k → 84 kb/s,
 * mono 32k → 52 kb/s. BANDWIDTH declares the peak, so it is this much above the encoder's rate.
 */
const TS_AUDIO_OVERHEAD = { factor: 1.2, bitsPerSecond: 16_000 };
/** The audio rung's sample rate, as in AUDIO_ENCODER_OPTIONS: encode-ladder.ts's AAC priming assumes it. */
const SAMPLE_RATE = 48_000;

/**
 * The ladder of an audio-only source (a podcast, music): AAC-LC rungs and no video. Stereo (and
 * surround, downmixed) gets 128 and 64 kb/s, mono stays mono at 64 and 32 kb/s. No rung is above
 * what the source justifies: a profile above the source's bitrate is left out, and a source below
 * every profile gets one rung at its own rate (at least 16 kb/s). A source whose bitrate ffprobe
 * does not know (lossless, some containers) gets every profile. Rungs are named by their rate,
 * `audio128k`, and listed from the highest.
 */
export function planAudioOnlyLadder(probe: ProbeResult): PlannedRung[] {
  const channels = probe.audioChannels === 1 ? 1 : 2;
  const profiles = AUDIO_ONLY_PROFILES[channels];
  const source = probe.audioBitrate ?? Number.POSITIVE_INFINITY;
  const justified = profiles.filter((bitrate) => bitrate <= source * SOURCE_BITRATE_SLACK);
  const bitrates =
    justified.length > 0 ? justified : [Math.max(MIN_AUDIO_ONLY_BITRATE, Math.floor(source / 1000) * 1000)];
  return bitrates.map((bitrate) => ({
    name: `audio${bitrate / 1000}k`,
    kind: "AUDIO",
    width: null,
    height: null,
    bandwidth: Math.round(bitrate * TS_AUDIO_OVERHEAD.factor + TS_AUDIO_OVERHEAD.bitsPerSecond),
    codecs: AUDIO_CODECS,
    bitrate,
    channels,
  }));
}

/** How an audio rung is encoded: an audio-only rung at its own rate and channels, else AUDIO_ENCODER_OPTIONS. */
export function audioRungEncoderOptions(rung: PlannedRung): readonly string[] {
  if (rung.bitrate === undefined) return AUDIO_ENCODER_OPTIONS;
  const channels = rung.channels ?? 2;
  return ["-c:a", "aac", "-b:a", String(rung.bitrate), "-ac", String(channels), "-ar", String(SAMPLE_RATE)];
}
