import { readFile } from "node:fs/promises";
import path from "node:path";
import type { RtmpAvPacket } from "node-media-server/src/protocol/rtmp.js";
import { describe, expect, it } from "vitest";
import { flvReader } from "../src/live/flv.ts";
import { H264TagReader, spsPicture } from "../src/live/h264-sps.ts";
import { fixturesDir, runFfmpeg } from "./support/media-fixtures.ts";

// The SPSs real encodes write (x264 through ffmpeg's FLV muxer), and hostile ones written by hand.

/** The FLV video tags of two frames of `size` encoded with x264 (`x264` adds its options), in order. */
async function encodedVideoTags(name: string, size: string, x264: string[] = []): Promise<RtmpAvPacket[]> {
  const file = path.join(fixturesDir(), `${name}.flv`);
  await runFfmpeg([
    ...["-y", "-hide_banner", "-loglevel", "error"],
    ...["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=25`, "-frames:v", "2"],
    ...["-c:v", "libx264", "-preset", "ultrafast", ...x264, "-an", "-f", "flv", file],
  ]);
  const packets: RtmpAvPacket[] = [];
  const refused = flvReader(
    1 << 24,
    (p) => packets.push({ ...p, data: Buffer.from(p.data.subarray(0, p.size)) }),
    (e) => e,
  )(await readFile(file));
  expect(refused).toBeNull();
  return packets.filter((p) => p.codec_type === 9);
}

/** The SPS NAL units of an FLV AVC sequence header's body. */
function spsOf(header: Buffer): Buffer[] {
  const units: Buffer[] = [];
  let at = 11;
  for (let i = 0; i < (header[10]! & 0x1f); i++) {
    const length = header.readUInt16BE(at);
    units.push(header.subarray(at + 2, at + 2 + length));
    at += 2 + length;
  }
  return units;
}

/** A NAL unit from a string of bits (padded with a stop bit and zeros), emulation prevention left out. */
function nalOfBits(bits: string): Buffer {
  let all = `${bits}1`;
  while (all.length % 8) all += "0";
  return Buffer.from(Array.from({ length: all.length / 8 }, (_, i) => Number.parseInt(all.slice(i * 8, i * 8 + 8), 2)));
}

/** An FLV video tag body of NAL units with 4-byte lengths (AVCPacketType 1). */
const frameOf = (keyframe: boolean, ...nals: Buffer[]) =>
  Buffer.concat([
    Buffer.from([keyframe ? 0x17 : 0x27, 1, 0, 0, 0]),
    ...nals.flatMap((nal) => [Buffer.from([0, 0, 0, 0].map((_, i) => (nal.length >>> (24 - 8 * i)) & 0xff)), nal]),
  ]);

describe("the picture an H.264 SPS declares", () => {
  it("is the cropped size of real encodes, progressive or interlaced, 4:2:0 or 4:2:2, with the coded size beside it", async () => {
    const cases = [
      {
        name: "qvga",
        size: "320x240",
        x264: [],
        picture: { width: 320, height: 240, coded: { width: 320, height: 240 } },
      },
      {
        name: "hd",
        size: "1920x1080",
        x264: [],
        picture: { width: 1920, height: 1080, coded: { width: 1920, height: 1088 } },
      },
      {
        name: "dci",
        size: "4096x2176",
        x264: [],
        picture: { width: 4096, height: 2176, coded: { width: 4096, height: 2176 } },
      },
      // 4:2:2 crops by rows, not pairs of rows (node-media-server's parser says 228).
      {
        name: "high422",
        size: "320x234",
        x264: ["-pix_fmt", "yuv422p"],
        picture: { width: 320, height: 234, coded: { width: 320, height: 240 } },
      },
      // Interlaced: map units are pairs of macroblock rows (16 rows cropped from 256).
      {
        name: "interlaced",
        size: "320x240",
        x264: ["-x264-params", "interlaced=1"],
        picture: { width: 320, height: 240, coded: { width: 320, height: 256 } },
      },
    ];
    for (const c of cases) {
      const [header] = await encodedVideoTags(c.name, c.size, c.x264);
      const units = spsOf(header!.data);
      expect(units, c.name).toHaveLength(1);
      expect(spsPicture(units[0]!), c.name).toEqual(c.picture);
    }
  });

  it("is read in bounded time from a hostile SPS: a pic_order_cnt cycle of 2^30 entries, a truncated one, a code of 40 zeros", () => {
    // Baseline, level 3, id 0, log2_max_frame_num 0, pic_order_cnt_type 1, its two offsets 0, then
    // a cycle count of 2^30 (node-media-server's parser loops over it: minutes).
    const header = "01100111" + "01000010" + "00000000" + "00011110" + "1" + "1" + "010" + "0" + "1" + "1";
    const cycle = nalOfBits(`${header}${"0".repeat(30)}1${"0".repeat(30)}`);
    const started = performance.now();
    expect(spsPicture(cycle)).toBeNull();
    expect(spsPicture(nalOfBits(header))).toBeNull();
    expect(spsPicture(nalOfBits(`${header.slice(0, 33)}${"0".repeat(40)}1`))).toBeNull();
    expect(performance.now() - started).toBeLessThan(50);
  });
});

describe("a publisher's H.264 read tag by tag", () => {
  it("reads each SPS once, in sequence headers and in frames, says which frames carry a picture, and bounds what a stream may make it parse", async () => {
    const [header, keyframe] = await encodedVideoTags("qvga-reader", "320x240");
    const [bigHeader] = await encodedVideoTags("vga-reader", "640x480");
    const reader = new H264TagReader();
    expect(reader.read(header!.data)).toEqual({
      picture: false,
      sps: [{ width: 320, height: 240, coded: { width: 320, height: 240 } }],
    });
    // The same SPS again is not read again; the frame is a picture.
    expect(reader.read(header!.data)).toEqual({ picture: false, sps: [] });
    expect(reader.read(keyframe!.data)).toEqual({ picture: true, sps: [] });
    // An SPS sent in-band, before a frame's slices, as decoders honour it.
    const vga = spsOf(bigHeader!.data)[0]!;
    const inBand = Buffer.concat([frameOf(true, vga), keyframe!.data.subarray(5)]);
    expect(reader.read(inBand)).toEqual({
      picture: true,
      sps: [{ width: 640, height: 480, coded: { width: 640, height: 480 } }],
    });
    // Only parameter sets: no picture (a publisher that sends these alone is stalled).
    expect(reader.read(frameOf(false, vga))).toEqual({ picture: false, sps: [] });
    // A length that runs past the tag ends the walk; a sequence header that is not a record is refused.
    expect(reader.read(Buffer.concat([Buffer.from([0x27, 1, 0, 0, 0, 0, 0, 0x10, 0]), vga]))).toEqual({
      picture: false,
      sps: [],
    });
    expect(reader.read(Buffer.from([0x17, 0, 0, 0, 0, 2, 0x42, 0, 0x1e, 0xff, 0xe1]))).toEqual({
      refused: "the stream's H.264 sequence header is not a well-formed AVC configuration record",
    });
    // Different SPSs: each is parsed once, up to 8 (two are read above).
    const variant = (n: number) => Buffer.concat([vga.subarray(0, 3), Buffer.from([n]), vga.subarray(4)]);
    for (let n = 0; n < 6; n++)
      expect(reader.read(frameOf(false, variant(n))), String(n)).not.toHaveProperty("refused");
    expect(reader.read(frameOf(false, variant(6)))).toEqual({
      refused: "the stream sent more than 8 different H.264 SPSs",
    });
    // A frame of 33 SPSs (one per id is 32) is refused before any is parsed.
    expect(new H264TagReader().read(frameOf(false, ...Array.from({ length: 33 }, () => vga)))).toEqual({
      refused: "a video frame holds more than 32 H.264 SPSs",
    });
  });
});
