import { AUDIO_BITRATE, AUDIO_ONLY_PROFILES, VIDEO_PROFILES } from "../../src/protocol/ladder-profiles.ts";
import type { ProbeResult, Rung } from "../../src/protocol/messages.ts";

const LARGEST_PROFILE = VIDEO_PROFILES[0]!;
const SMALLEST_PROFILE = VIDEO_PROFILES.at(-1)!;

const AUDIO_CODECS = "mp4a.40.2";
const AUDIO_RUNG_NAME = "audio";
/** How audio is encoded, in the audio rung and in a composed render: AAC-LC (AUDIO_CODECS), stereo, 48 kHz. */
export const AUDIO_ENCODER_OPTIONS: readonly string[] = [
  "-c:a",
  "aac",
  "-b:a",
  String(AUDIO_BITRATE),
  "-ac",
  "2",
  "-ar",
  "48000",
];

/** Peak video rate allowed above the target, as passed to x264's VBV. */
const MAXRATE_FACTOR = 1.1;
/** MPEG-TS packetisation adds roughly this much on top of the elementary streams. */
const TS_OVERHEAD_FACTOR = 1.1;
/** A profile rung this close below a source-sized top rung adds nothing a player would notice. */
const NEAR_DUPLICATE_RATIO = 0.9;

/** H.264 levels: level_idc, max frame size in macroblocks, max macroblocks per second. */
const H264_LEVELS: ReadonlyArray<{ idc: number; maxFrameMbs: number; maxMbPerSecond: number }> = [
  { idc: 30, maxFrameMbs: 1620, maxMbPerSecond: 40_500 },
  { idc: 31, maxFrameMbs: 3600, maxMbPerSecond: 108_000 },
  { idc: 32, maxFrameMbs: 5120, maxMbPerSecond: 216_000 },
  { idc: 40, maxFrameMbs: 8192, maxMbPerSecond: 245_760 },
  { idc: 42, maxFrameMbs: 8704, maxMbPerSecond: 522_240 },
  { idc: 50, maxFrameMbs: 22_080, maxMbPerSecond: 589_824 },
  { idc: 51, maxFrameMbs: 36_864, maxMbPerSecond: 983_040 },
  { idc: 52, maxFrameMbs: 36_864, maxMbPerSecond: 2_073_600 },
];
const HIGHEST_H264_LEVEL = H264_LEVELS.at(-1)!;

/** A rung as planned: the contract's Rung, and for a video rung the H.264 level its codecs string names. */
export interface PlannedRung extends Rung {
  /** H.264 level_idc (31 is level 3.1); absent on the audio rung. */
  h264Level?: number;
  /** An audio-only ladder's rung: 1 (mono stays mono) or 2 channels. */
  channels?: 1 | 2;
}

/** x264 rate control for a video rung, in bits per second. */
export interface VideoRateControl {
  bitrate: number;
  maxrate: number;
  bufsize: number;
}

/**
 * Plans the HLS ladder for a probed source.
 *
 * Video rungs follow the profiles by the frame's short side, so a portrait 1080x1920 source gets
 * `1080p` at 1080x1920. No rung is larger than the source (or than `maxHeight`, also a short
 * side); when the source falls between profiles its own size is the top rung, named after its
 * short side (`1000p`). Dimensions are even and keep the aspect ratio. A source whose short side
 * is under 144 gets a single rung at its own size.
 *
 * Audio is demuxed: when the source has audio there is one `audio` rung (AAC-LC 128k stereo),
 * video rungs are video-only, and each video rung's bandwidth counts the audio it plays with.
 * Order: video rungs from the highest, then audio. An audio-only source gets audio rungs alone
 * (planAudioOnlyLadder).
 */
export function planLadder(probe: ProbeResult, opts: { maxHeight?: number } = {}): PlannedRung[] {
  if (probe.width === null || probe.height === null) return planAudioOnlyLadder(probe);
  const landscape = probe.width >= probe.height;
  const sourceShort = Math.min(probe.width, probe.height);
  const sourceLong = Math.max(probe.width, probe.height);
  const limit = Math.min(sourceShort, opts.maxHeight ?? Number.POSITIVE_INFINITY);
  const longLimit = Math.max(2, floorEven(sourceLong));

  const shortSides: number[] = [];
  const profilesWithin = VIDEO_PROFILES.map((p) => p.shortSide).filter((s) => s <= limit);
  const topProfile = profilesWithin[0];
  const ownSize = Math.max(2, floorEven(limit));
  if (topProfile === undefined || (limit > topProfile && topProfile < LARGEST_PROFILE.shortSide)) {
    shortSides.push(ownSize);
    shortSides.push(...profilesWithin.filter((s) => s / ownSize <= NEAR_DUPLICATE_RATIO));
  } else {
    shortSides.push(...profilesWithin);
  }

  const audioBitrate = probe.hasAudio ? AUDIO_BITRATE : 0;
  const rungs: PlannedRung[] = shortSides.map((short) => {
    const long = Math.min(longLimit, roundEven((sourceLong * short) / sourceShort));
    const width = landscape ? long : short;
    const height = landscape ? short : long;
    const rate = videoRateControlFor(short);
    const h264Level = h264LevelIdc(width, height, probe.fps);
    return {
      name: `${short}p`,
      kind: "VIDEO",
      width,
      height,
      bandwidth: Math.round((rate.maxrate + audioBitrate) * TS_OVERHEAD_FACTOR),
      codecs: avc1HighCodecs(h264Level),
      h264Level,
    };
  });
  if (probe.hasAudio) {
    rungs.push({
      name: AUDIO_RUNG_NAME,
      kind: "AUDIO",
      width: null,
      height: null,
      bandwidth: Math.round(AUDIO_BITRATE * TS_OVERHEAD_FACTOR),
      codecs: AUDIO_CODECS,
    });
  }
  return rungs;
}

/** Rate control for a video rung, from its short side; the encoder and the plan share it. */
export function videoRateControl(rung: Rung): VideoRateControl {
  if (rung.width === null || rung.height === null) throw new Error(`Rung ${rung.name} is not a video rung`);
  return videoRateControlFor(Math.min(rung.width, rung.height));
}

/** The RFC 6381 codecs string of H.264 High profile (`6400`) at a level: 31 → `avc1.64001f`. */
function avc1HighCodecs(levelIdc: number): string {
  return `avc1.6400${levelIdc.toString(16).padStart(2, "0")}`;
}

function videoRateControlFor(shortSide: number): VideoRateControl {
  const bitrate = Math.round(bitrateForShortSide(shortSide));
  return { bitrate, maxrate: Math.round(bitrate * MAXRATE_FACTOR), bufsize: Math.round(bitrate * 1.5) };
}

/** Profile bitrate, interpolated linearly between profiles for in-between sizes. */
function bitrateForShortSide(shortSide: number): number {
  const smallest = SMALLEST_PROFILE;
  if (shortSide <= smallest.shortSide) return Math.max(50_000, (smallest.bitrate * shortSide) / smallest.shortSide);
  for (const [i, upper] of VIDEO_PROFILES.entries()) {
    const lower = VIDEO_PROFILES[i + 1];
    if (lower && shortSide >= lower.shortSide && shortSide <= upper.shortSide) {
      const t = (shortSide - lower.shortSide) / (upper.shortSide - lower.shortSide);
      return lower.bitrate + t * (upper.bitrate - lower.bitrate);
    }
  }
  return LARGEST_PROFILE.bitrate;
}

/** The lowest level whose frame size and macroblock rate fit; 30 fps when the rate is unknown. */
function h264LevelIdc(width: number, height: number, fps: number): number {
  const frameMbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  const mbPerSecond = frameMbs * (fps > 0 ? fps : 30);
  const level = H264_LEVELS.find((l) => frameMbs <= l.maxFrameMbs && mbPerSecond <= l.maxMbPerSecond);
  return (level ?? HIGHEST_H264_LEVEL).idc;
}

function roundEven(n: number): number {
  return Math.max(2, Math.round(n / 2) * 2);
}

function floorEven(n: number): number {
  return Math.floor(n / 2) * 2;
}

// Audio-only sources (a podcast, music): a ladder of AAC rungs alone.

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
function planAudioOnlyLadder(probe: ProbeResult): PlannedRung[] {
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
