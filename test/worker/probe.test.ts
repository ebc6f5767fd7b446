import { open, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ProbeResult } from "../../src/protocol/media-facts.ts";
import { MediaError } from "../../render-worker/media/errors.ts";
import { probeResultFrom, probeSource } from "../../render-worker/media/probe.ts";
import {
  fixturesDir,
  makeClip,
  makeDataOnly,
  makeManyChannelAudio,
  makeUndecodableAudio,
  makeZeroLengthAudio,
  runFfmpeg,
} from "../support/media-fixtures.ts";

async function probeError(input: string): Promise<MediaError> {
  const error = await probeSource(input).then(
    () => null,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(MediaError);
  const mediaError = error as MediaError;
  expect(mediaError.retryable).toBe(false);
  return mediaError;
}

describe("probeSource", () => {
  it("reads size, duration, frame rate and audio of a clip", async () => {
    const { probe } = await probeSource(await makeClip({ width: 640, height: 360, seconds: 3, audio: true }));
    expect(() => ProbeResult.parse(probe)).not.toThrow();
    expect(probe).toMatchObject({
      width: 640,
      height: 360,
      fps: 25,
      rotation: 0,
      hasAudio: true,
      videoCodec: "h264",
      audioCodec: "aac",
    });
    expect(probe.duration).toBeGreaterThan(2.8);
    expect(probe.duration).toBeLessThan(3.2);
  });

  it("reports a clip without audio and its own frame rate", async () => {
    const { probe } = await probeSource(await makeClip({ width: 320, height: 180, seconds: 2, audio: false, fps: 30 }));
    expect(probe).toMatchObject({ width: 320, height: 180, fps: 30, hasAudio: false, audioCodec: null });
    expect(Math.abs(probe.duration - 2)).toBeLessThanOrEqual(0.2);
  });

  it("applies the display matrix: a rotated clip reports display dimensions", async () => {
    const { probe } = await probeSource(
      await makeClip({ width: 320, height: 180, seconds: 1, audio: false, rotate: 90 }),
    );
    expect(probe).toMatchObject({ width: 180, height: 320 });
    // FFmpeg 5.1's muxer stores `rotate=90` as a +90° (counterclockwise) display matrix, which
    // ffmpeg itself plays turned a quarter turn counterclockwise: 270° clockwise.
    expect(probe.rotation).toBe(270);
  });

  it("refuses a text file as not a video", async () => {
    const text = "These are meeting notes, not a video.\n".repeat(20);
    // With a .txt name ffmpeg's tty demuxer would read it as ANSI art; without one, nothing reads it.
    const named = path.join(fixturesDir(), "notes.txt");
    const unnamed = path.join(fixturesDir(), "notes");
    await writeFile(named, text);
    await writeFile(unnamed, text);
    expect((await probeError(named)).message).toBe("The file is not a video ffmpeg can read: it is a text file");
    const error = await probeError(unnamed);
    expect(error.message).toBe("The file is not a video ffmpeg can read: Invalid data found when processing input");
    expect(error.command).toMatch(/^ffprobe .*notes$/);
    expect(error.exitCode).toBe(1);
  });

  it("refuses an empty file", async () => {
    const file = path.join(fixturesDir(), "empty.mp4");
    await writeFile(file, "");
    const error = await probeError(file);
    expect(error.message).toBe("The file is not a video ffmpeg can read: the file is empty (0 bytes)");
  });

  it("refuses a truncated mp4", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: true });
    const head = Buffer.alloc(2048);
    const handle = await open(clip);
    try {
      await handle.read(head, 0, 2048, 0);
    } finally {
      await handle.close();
    }
    const file = path.join(fixturesDir(), "truncated.mp4");
    await writeFile(file, head);
    const error = await probeError(file);
    expect(error.message).toMatch(/^The file is not a video ffmpeg can read: .*moov atom not found/);
    expect(error.stderrTail).toMatch(/moov atom not found/);
  });

  it("reads an audio-only file: no frame, its channels and bitrate", async () => {
    const file = path.join(fixturesDir(), "voice.m4a");
    await runFfmpeg(["-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-c:a", "aac", "-b:a", "48k", file]);
    const { probe } = await probeSource(file);
    expect(() => ProbeResult.parse(probe)).not.toThrow();
    expect(probe).toMatchObject({
      width: null,
      height: null,
      fps: 0,
      hasAudio: true,
      videoCodec: null,
      audioCodec: "aac",
      audioChannels: 1,
    });
    expect(probe.audioBitrate).toBeGreaterThan(30_000);
    expect(probe.audioBitrate).toBeLessThan(70_000);
    expect(probe.duration).toBeCloseTo(1, 1);
  });

  it("refuses audio-only files that cannot become a ladder, each for its reason", async () => {
    expect((await probeError(await makeUndecodableAudio(2))).message).toBe(
      "The file's audio stream (aac) does not decode: Invalid data found when processing input",
    );
    expect((await probeError(await makeZeroLengthAudio())).message).toBe(
      "The audio has no duration: the file may be truncated or hold no samples",
    );
    expect((await probeError(await makeManyChannelAudio(12))).message).toBe(
      "The audio has 12 channels; the limit is 8 (7.1 surround)",
    );
    expect((await probeError(await makeDataOnly())).message).toBe(
      "The file has no audio or video stream: there is nothing to play in it",
    );
  });

  it("accepts 5.1 audio (downmixed by the ladder) and refuses a header declaring 1024 channels", async () => {
    const { probe } = await probeSource(await makeManyChannelAudio(6));
    expect(probe).toMatchObject({ width: null, audioChannels: 6, audioCodec: "pcm_s16le" });
    const header = Buffer.alloc(44);
    header.write("RIFF", 0, "latin1");
    header.writeUInt32LE(36 + 2048 * 10, 4);
    header.write("WAVEfmt ", 8, "latin1");
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(1024, 22);
    header.writeUInt32LE(48_000, 24);
    header.writeUInt32LE(48_000 * 2048, 28);
    header.writeUInt16LE(2048, 32);
    header.writeUInt16LE(16, 34);
    header.write("data", 36, "latin1");
    header.writeUInt32LE(2048 * 10, 40);
    const file = path.join(fixturesDir(), "channels-1024.wav");
    await writeFile(file, Buffer.concat([header, Buffer.alloc(2048 * 10)]));
    expect((await probeError(file)).message).toBe("The file is not a video ffmpeg can read: Too many channels: 1024");
  });

  it("calls an unreadable URL retryable rather than not a video", async () => {
    const server = createServer((_req, res) => res.writeHead(403).end("expired"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/source.mp4?signature=old`;
      const error = await probeSource(url).then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(MediaError);
      expect(error).toMatchObject({
        retryable: true,
        message: expect.stringMatching(/^Could not read the source: .*403/),
      });
    } finally {
      server.close();
    }
  });

  it("refuses frames larger than 8192 px", async () => {
    const file = path.join(fixturesDir(), "wide.mkv");
    await runFfmpeg(["-f", "lavfi", "-i", "testsrc2=size=8200x16:rate=5:duration=1", "-c:v", "ffv1", file]);
    const error = await probeError(file);
    expect(error.message).toMatch(/frame size 8200x16 exceeds the 8192 px limit/);
  });
});

describe("probeResultFrom", () => {
  const video = {
    index: 0,
    codec_type: "video",
    codec_name: "h264",
    width: 1920,
    height: 1080,
    avg_frame_rate: "30000/1001",
  };

  it("takes the legacy clockwise rotate tag when there is no display matrix", () => {
    const probe = probeResultFrom({ format: { duration: "5" }, streams: [{ ...video, tags: { rotate: "270" } }] });
    expect(probe).toMatchObject({ width: 1080, height: 1920, rotation: 270, fps: 29.97 });
  });

  it("falls back to r_frame_rate and the stream duration", () => {
    const probe = probeResultFrom({
      format: {},
      streams: [{ ...video, avg_frame_rate: "0/0", r_frame_rate: "25/1", duration: "7.5" }],
    });
    expect(probe).toMatchObject({ fps: 25, duration: 7.5 });
  });

  it("widens non-square pixels to display width", () => {
    const probe = probeResultFrom({
      format: { duration: "5" },
      streams: [{ ...video, width: 720, height: 576, sample_aspect_ratio: "16:15" }],
    });
    expect(probe).toMatchObject({ width: 768, height: 576 });
  });

  it("ignores cover art: an mp3 with a picture is audio-only", () => {
    const data = {
      format: { duration: "5" },
      streams: [
        { index: 0, codec_type: "audio", codec_name: "mp3", channels: 2, sample_rate: "44100", bit_rate: "128000" },
        { ...video, index: 1, codec_name: "mjpeg", disposition: { attached_pic: 1 } },
      ],
    };
    expect(probeResultFrom(data)).toEqual({
      duration: 5,
      width: null,
      height: null,
      fps: 0,
      rotation: 0,
      hasAudio: true,
      videoCodec: null,
      audioCodec: "mp3",
      audioChannels: 2,
      audioBitrate: 128_000,
    });
  });

  it("refuses audio-only over the duration limit, calling it audio", () => {
    const audio = { index: 0, codec_type: "audio", codec_name: "mp3", channels: 2, sample_rate: "44100" };
    expect(() => probeResultFrom({ format: { duration: "25920" }, streams: [audio] })).toThrow(
      new MediaError("The audio is 7 h 12 min long; the limit is 6 h", { retryable: false }),
    );
  });

  it("refuses a stream without duration, as a still image has", () => {
    expect(() => probeResultFrom({ format: { format_name: "png_pipe" }, streams: [video] })).toThrow(/no duration/);
  });

  it("refuses a source over the duration limit, saying how long it is", () => {
    expect(() => probeResultFrom({ format: { duration: "25920" }, streams: [video] })).toThrow(
      new MediaError("The video is 7 h 12 min long; the limit is 6 h", { retryable: false }),
    );
    expect(() => probeResultFrom({ format: { duration: "21600" }, streams: [video] })).not.toThrow();
    expect(() =>
      probeResultFrom({ format: { duration: "90.5" }, streams: [video] }, { maxDurationSeconds: 90 }),
    ).toThrow("The video is 1 min 31 s long; the limit is 1 min 30 s");
  });

  it("counts a stream's declared duration when it is longer than the container's", () => {
    expect(() => probeResultFrom({ format: { duration: "5" }, streams: [{ ...video, duration: "86400" }] })).toThrow(
      /is 24 h long; the limit is 6 h/,
    );
  });

  it("allows DCI 8K and refuses a frame past 36 megapixels", () => {
    expect(
      probeResultFrom({ format: { duration: "5" }, streams: [{ ...video, width: 8192, height: 4320 }] }),
    ).toMatchObject({ width: 8192, height: 4320 });
    expect(() =>
      probeResultFrom({ format: { duration: "5" }, streams: [{ ...video, width: 8192, height: 4400 }] }),
    ).toThrow("The video's frame size 8192x4400 (36.1 megapixels) exceeds the 36 megapixel limit");
  });

  it("allows 240 fps and refuses more, from the average or else the nominal rate", () => {
    expect(
      probeResultFrom({ format: { duration: "5" }, streams: [{ ...video, avg_frame_rate: "240/1" }] }),
    ).toMatchObject({ fps: 240 });
    expect(() =>
      probeResultFrom({
        format: { duration: "5" },
        streams: [{ ...video, avg_frame_rate: "0/0", r_frame_rate: "1000/1" }],
      }),
    ).toThrow("The video's frame rate of 1000 fps is above the 240 fps limit");
  });
});
