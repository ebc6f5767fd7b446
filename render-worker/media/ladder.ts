import { AUDIO_BITRATE, AUDIO_ONLY_PROFILES, VIDEO_PROFILES } from "../../src/protocol/ladder-profiles.ts";
import type { PlannedRung, ProbeResult, Rung, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { TranscodeOptions } from "../../src/protocol/transcode-messages.ts";
import { segmentPlan, targetDuration } from "./segments.ts";

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
/** The frame rate assumed of a source whose rate is unknown (its level, its frames' container costs). */
const ASSUMED_FPS = 30;
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

/** A rung as planned for the encoder (the contract's: a split transcode sends it to its chunks). */
export type { PlannedRung };

/** x264 rate control for a video rung, in bits per second. */
export interface VideoRateControl {
  bitrate: number;
  maxrate: number;
  bufsize: number;
}

/** The job's options a ladder depends on: its largest rung, and how its segments are cut and packaged. */
export type LadderOptions = Partial<Pick<TranscodeOptions, "maxHeight" | "segmentSeconds" | "segmentFormat">>;

const DEFAULT_OPTIONS = TranscodeOptions.parse({});

/**
 * Plans the HLS ladder for a probed source: video rungs by the frame's short side, never above the source
 * (a source between profiles is its own top rung, `1000p`), then one demuxed `audio` rung; an audio-only
 * source gets audio rungs alone. Each rung's bandwidth bounds its segments' peak, so it depends on the
 * segment length and format (docs/media-pipeline.md, "The ladder and the encoder").
 */
export function planLadder(probe: ProbeResult, opts: LadderOptions = {}): PlannedRung[] {
  const packaging: Packaging = {
    segmentSeconds: opts.segmentSeconds ?? DEFAULT_OPTIONS.segmentSeconds,
    format: opts.segmentFormat ?? "TS",
  };
  if (probe.width === null || probe.height === null) return planAudioOnlyLadder(probe, packaging);
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

  const fps = probe.fps > 0 ? probe.fps : ASSUMED_FPS;
  const audioBandwidth = probe.hasAudio ? audioPeakBitrate(AUDIO_BITRATE, 2, packaging) : 0;
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
      bandwidth: videoPeakBitrate(rate, fps, packaging) + audioBandwidth,
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
      bandwidth: audioBandwidth,
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
  const mbPerSecond = frameMbs * (fps > 0 ? fps : ASSUMED_FPS);
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
/** The audio rung's sample rate, as in AUDIO_ENCODER_OPTIONS: encode-ladder.ts's AAC priming assumes it. */
const SAMPLE_RATE = 48_000;

/**
 * The ladder of an audio-only source: AAC-LC rungs named by rate (`audio128k`), highest first; stereo gets
 * 128 and 64 kb/s, mono 64 and 32, none above the source's own rate (docs/media-pipeline.md, "Audio-only sources").
 */
function planAudioOnlyLadder(probe: ProbeResult, packaging: Packaging): PlannedRung[] {
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
    bandwidth: audioPeakBitrate(bitrate, channels, packaging),
    codecs: AUDIO_CODECS,
    bitrate,
    channels,
  }));
}

/**
 * An alternate audio track's one rung (`name`): AAC encoded with AUDIO_ENCODER_OPTIONS, the rate and
 * bound of the ladder's own audio rung, which the variants' CODECS already name.
 */
export function alternateAudioRung(name: string, opts: { segmentSeconds: number; segmentFormat: SegmentFormat }): Rung {
  const packaging: Packaging = { segmentSeconds: opts.segmentSeconds, format: opts.segmentFormat };
  const bandwidth = audioPeakBitrate(AUDIO_BITRATE, 2, packaging);
  return { name, kind: "AUDIO", width: null, height: null, bandwidth, codecs: AUDIO_CODECS };
}

/** How an audio rung is encoded: an audio-only rung at its own rate and channels, else AUDIO_ENCODER_OPTIONS. */
export function audioRungEncoderOptions(rung: PlannedRung): readonly string[] {
  if (rung.bitrate === undefined) return AUDIO_ENCODER_OPTIONS;
  const channels = rung.channels ?? 2;
  return ["-c:a", "aac", "-b:a", String(rung.bitrate), "-ac", String(channels), "-ar", String(SAMPLE_RATE)];
}

// BANDWIDTH: the peak a rung's segments can reach (RFC 8216 4.3.4.2), declared with the first segments
// before any is measured, so bounded by the encoder's VBV allowance and the container's overhead (FFmpeg
// 5.1's muxers, below); the last master states the measured peak. The measurements that fix these bounds:
// docs/media-pipeline.md, "The ladder and the encoder".

/** How a ladder's segments are cut and packaged. */
interface Packaging {
  segmentSeconds: number;
  format: SegmentFormat;
}

/** The rate control of a video rung over a segment: VBV lets it write `bufsize` above `maxrate` × the segment's length. */
function videoPeakBitrate(rate: VideoRateControl, fps: number, packaging: Packaging): number {
  const bitsPerSecond = rate.maxrate + rate.bufsize / packaging.segmentSeconds;
  return containerPeakBitrate({ kind: "VIDEO", bitsPerSecond, framesPerSecond: fps }, packaging);
}

/**
 * AAC's drift above its target: ffmpeg's encoder keeps no bit reservoir but holds close to it (measured in
 * docs/media-pipeline.md, "The ladder and the encoder"); the decoder's buffer bounds the rest.
 */
const AAC_DRIFT_BITS_PER_SECOND = 2_000;
const AAC_BUFFER_BITS_PER_CHANNEL = 6144;
/** Samples per AAC-LC frame. */
const AAC_FRAME_SAMPLES = 1024;

function audioPeakBitrate(bitrate: number, channels: number, packaging: Packaging): number {
  const bitsPerSecond =
    bitrate +
    AAC_DRIFT_BITS_PER_SECOND +
    (AAC_BUFFER_BITS_PER_CHANNEL * channels) / shortestPeakSeconds(packaging.segmentSeconds);
  return containerPeakBitrate(
    { kind: "AUDIO", bitsPerSecond, framesPerSecond: SAMPLE_RATE / AAC_FRAME_SAMPLES },
    packaging,
  );
}

/**
 * The shortest run of segments a peak is taken over: half the target duration (a last segment that
 * short counts alone; with segments of 2 s or less the 1 s first one does). What comes once a segment
 * (a container's tables and headers, the AAC allowance) is spread over this. VBV's allowance is spread
 * over a whole segment instead, or short segments would declare several times what any carries: over
 * a 1 s first segment x264 wrote 1.11 × the bitrate at most (above), the bound over 2 s is 1.85 ×.
 */
function shortestPeakSeconds(segmentSeconds: number): number {
  return targetDuration(segmentPlan(segmentSeconds)) / 2;
}

/** A stream as its container carries it: bits per second at its peak, in frames (H.264 pictures, AAC frames). */
interface StreamPeak {
  kind: "VIDEO" | "AUDIO";
  bitsPerSecond: number;
  framesPerSecond: number;
}

/**
 * MPEG-TS as FFmpeg 5.1's mpegts muxer writes each segment (libavformat/mpegtsenc.c, its defaults):
 * 188-byte packets of 4 header bytes. Each PES (a video frame; audio: AAC frames gathered up to
 * `audioPesBytes`) starts with its header, an adaptation field with the PCR, and for H.264 an access
 * unit delimiter the muxer adds; for AAC each frame gets an ADTS header. A PES's last packet is
 * stuffed: at most one packet more than its bytes fill. PAT and PMT (a packet each) are repeated with
 * the first PES `patSeconds` after the last, the SDT `sdtSeconds` after; each segment starts with all three.
 */
const MPEG_TS = {
  packetBytes: 188,
  payloadBytes: 184,
  /** PES header with PTS and DTS (video), + AUD (6), + adaptation field with PCR (8). */
  videoPesHeaderBytes: 19 + 6 + 8,
  /** PES header with PTS (audio), + adaptation field with PCR (8): the audio rung's stream carries the PCR. */
  audioPesHeaderBytes: 14 + 8,
  adtsHeaderBytes: 7,
  audioPesBytes: 2930,
  patSeconds: 0.1,
  sdtSeconds: 0.5,
  segmentStartPackets: 3,
};

/**
 * Fragmented MP4 as the publisher serves a segment: one fragment, its init left out. A moof (mfhd,
 * traf with tfhd, tfdt and trun) and the mdat header take at most `fragmentBytes`, each sample a trun
 * entry of at most `sampleBytes` (duration, size, flags, composition offset). Measured 9–12 bytes a
 * video frame and 4–6 an AAC frame, fragment headers included.
 */
const FRAGMENTED_MP4 = { fragmentBytes: 128, sampleBytes: 16 };

/** A stream's peak segment bit rate in its container, whole bits per second. */
function containerPeakBitrate(stream: StreamPeak, packaging: Packaging): number {
  const shortest = shortestPeakSeconds(packaging.segmentSeconds);
  const bytesPerSecond = stream.bitsPerSecond / 8;
  if (packaging.format === "FMP4") {
    const added = FRAGMENTED_MP4.sampleBytes * stream.framesPerSecond + FRAGMENTED_MP4.fragmentBytes / shortest;
    return Math.ceil((bytesPerSecond + added) * 8);
  }
  const ts = MPEG_TS;
  const audio = stream.kind === "AUDIO";
  const payload = bytesPerSecond + (audio ? ts.adtsHeaderBytes * stream.framesPerSecond : 0);
  const frameBytes = payload / stream.framesPerSecond;
  const pesPerSecond = audio
    ? stream.framesPerSecond / Math.max(1, Math.floor(ts.audioPesBytes / frameBytes))
    : stream.framesPerSecond;
  const headers = pesPerSecond * (audio ? ts.audioPesHeaderBytes : ts.videoPesHeaderBytes);
  // The muxer looks at the clock as each PES starts: tables come with every PES at most that often.
  const every = (seconds: number) => pesPerSecond / Math.ceil(pesPerSecond * seconds);
  const packets =
    (payload + headers) / ts.payloadBytes +
    pesPerSecond +
    2 * every(ts.patSeconds) +
    every(ts.sdtSeconds) +
    ts.segmentStartPackets / shortest;
  return Math.ceil(packets * ts.packetBytes * 8);
}
