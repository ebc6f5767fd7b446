import { describe, expect, it } from "vitest";
import { Rung, type ProbeResult } from "../../src/protocol/media-facts.ts";
import { masterPlaylist } from "../../src/shared/hls-playlists.ts";
import { AUDIO_ENCODER_OPTIONS, audioRungEncoderOptions, planLadder } from "../../render-worker/media/ladder.ts";

function audioSource(channels: number, bitrate: number | null): ProbeResult {
  return {
    duration: 600,
    width: null,
    height: null,
    fps: 0,
    rotation: 0,
    hasAudio: true,
    videoCodec: null,
    audioCodec: "mp3",
    audioChannels: channels,
    audioBitrate: bitrate,
  };
}

const summary = (probe: ProbeResult) => planLadder(probe).map((r) => [r.name, r.bitrate, r.channels]);

describe("planLadder for an audio-only source", () => {
  it("gives stereo 128k and 64k AAC rungs and no video rung", () => {
    // Bandwidth for the shipped 4 s MPEG-TS segments: the AAC target, 2 kb/s of drift and the AAC
    // decoder's buffer (12,288 bits for stereo) over 2 s, ADTS, PES and table packets (ladder.ts).
    // Measured peaks of these rungs: 162.4 and 82.7 kb/s.
    const ladder = planLadder(audioSource(2, 192_000));
    expect(ladder).toEqual([
      {
        name: "audio128k",
        kind: "AUDIO",
        width: null,
        height: null,
        bandwidth: 177_979,
        codecs: "mp4a.40.2",
        bitrate: 128_000,
        channels: 2,
      },
      {
        name: "audio64k",
        kind: "AUDIO",
        width: null,
        height: null,
        bandwidth: 96_878,
        codecs: "mp4a.40.2",
        bitrate: 64_000,
        channels: 2,
      },
    ]);
    // What goes over the wire keeps the bitrate and drops the encoder's channel count.
    expect(Rung.parse(ladder[0])).toEqual({ ...ladder[0], channels: undefined });
  });

  it("keeps mono mono, at 64k and 32k, and downmixes surround to stereo", () => {
    expect(summary(audioSource(1, 320_000))).toEqual([
      ["audio64k", 64_000, 1],
      ["audio32k", 32_000, 1],
    ]);
    expect(summary(audioSource(6, 640_000))).toEqual([
      ["audio128k", 128_000, 2],
      ["audio64k", 64_000, 2],
    ]);
  });

  it("plans no rung above the source's bitrate, and one at the source's own rate below every profile", () => {
    expect(summary(audioSource(2, 96_000))).toEqual([["audio64k", 64_000, 2]]);
    // A VBR source a little under a profile still justifies it.
    expect(summary(audioSource(2, 124_000))).toEqual([
      ["audio128k", 128_000, 2],
      ["audio64k", 64_000, 2],
    ]);
    expect(summary(audioSource(1, 24_500))).toEqual([["audio24k", 24_000, 1]]);
    expect(summary(audioSource(1, 8_000))).toEqual([["audio16k", 16_000, 1]]);
  });

  it("gives every profile when the source's bitrate is unknown (lossless, some containers)", () => {
    expect(summary(audioSource(2, null))).toEqual([
      ["audio128k", 128_000, 2],
      ["audio64k", 64_000, 2],
    ]);
  });

  it("encodes an audio-only rung at its rate and channels, 48 kHz; the video ladder's audio rung as before", () => {
    const [top, low] = planLadder(audioSource(1, null));
    expect(audioRungEncoderOptions(top!)).toEqual(["-c:a", "aac", "-b:a", "64000", "-ac", "1", "-ar", "48000"]);
    expect(audioRungEncoderOptions(low!)).toEqual(["-c:a", "aac", "-b:a", "32000", "-ac", "1", "-ar", "48000"]);
    const video = { ...audioSource(2, null), width: 640, height: 360, fps: 25, videoCodec: "h264" };
    const audio = planLadder(video).find((r) => r.kind === "AUDIO")!;
    expect(audioRungEncoderOptions(audio)).toBe(AUDIO_ENCODER_OPTIONS);
  });
});

describe("masterPlaylist of an audio-only ladder", () => {
  it("lists each audio rung as a variant with BANDWIDTH and CODECS, no RESOLUTION or audio group", () => {
    const probe = audioSource(2, null);
    expect(masterPlaylist(planLadder(probe), probe)).toBe(
      [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-STREAM-INF:BANDWIDTH=177979,CODECS="mp4a.40.2"',
        "audio128k/index.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=96878,CODECS="mp4a.40.2"',
        "audio64k/index.m3u8",
        "",
      ].join("\n"),
    );
  });
});
