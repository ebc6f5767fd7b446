import { readFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readImageHeader } from "../src/assets/image-header.ts";
import { fixturesDir, runFfmpeg } from "./support/media-fixtures.ts";

/** One still image made by ffmpeg from lavfi, as its bytes. */
async function image(name: string, size: string, extra: string[] = []): Promise<Buffer> {
  const file = path.join(fixturesDir(), name);
  await runFfmpeg(["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=5`, "-frames:v", "1", ...extra, "-y", file]);
  return readFile(file);
}

describe("a watermark image is accepted only when the whole file is that one image", () => {
  let png: Buffer;
  let bigPng: Buffer;
  let jpeg: Buffer;
  let apng: Buffer;
  beforeAll(async () => {
    png = await image("small.png", "16x16");
    bigPng = await image("big.png", "1024x256");
    jpeg = await image("small.jpg", "64x48", ["-q:v", "5"]);
    const file = path.join(fixturesDir(), "animated.apng");
    await runFfmpeg(["-f", "lavfi", "-i", "testsrc2=size=16x16:rate=5", "-frames:v", "3", "-f", "apng", "-y", file]);
    apng = await readFile(file);
  });

  it("reads a lone PNG's and a lone JPEG's size", () => {
    expect(readImageHeader(png)).toEqual({ format: "png", width: 16, height: 16 });
    expect(readImageHeader(bigPng)).toEqual({ format: "png", width: 1024, height: 256 });
    expect(readImageHeader(jpeg)).toEqual({ format: "jpeg", width: 64, height: 48 });
  });

  it("refuses a small image followed by others (ffmpeg would decode every one of them)", () => {
    expect(readImageHeader(Buffer.concat([png, bigPng]))).toBeNull();
    expect(readImageHeader(Buffer.concat([png, png, png]))).toBeNull();
    expect(readImageHeader(Buffer.concat([jpeg, jpeg]))).toBeNull();
    expect(readImageHeader(Buffer.concat([jpeg, bigPng]))).toBeNull();
    expect(readImageHeader(Buffer.concat([png, jpeg]))).toBeNull();
  });

  it("refuses trailing bytes, truncation, and animated PNGs", () => {
    expect(readImageHeader(Buffer.concat([png, Buffer.from("x")]))).toBeNull();
    expect(readImageHeader(Buffer.concat([jpeg, Buffer.from([0, 0])]))).toBeNull();
    expect(readImageHeader(png.subarray(0, png.length - 4))).toBeNull();
    expect(readImageHeader(jpeg.subarray(0, jpeg.length - 2))).toBeNull();
    expect(readImageHeader(apng)).toBeNull();
  });

  it("reads a 4 MiB file of stuffed JPEG bytes in one pass", () => {
    // A scan of 0xFF00 pairs to the end: the scanner walks it once and finds no end of image.
    const header = jpeg.subarray(
      0,
      jpeg.indexOf(Buffer.from([0xff, 0xda])) + 2 + jpeg.readUInt16BE(jpeg.indexOf(Buffer.from([0xff, 0xda])) + 2),
    );
    const body = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 2) body[i] = 0xff;
    const started = performance.now();
    expect(readImageHeader(Buffer.concat([header, body]))).toBeNull();
    expect(performance.now() - started).toBeLessThan(500);
  });
});
