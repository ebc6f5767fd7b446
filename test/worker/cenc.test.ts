import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  COMMON_SYSTEM_ID,
  decryptFragments,
  encryptFragments,
  protectInit,
  sampleIv,
} from "../../render-worker/media/cenc.ts";
import { segmentEncryption } from "../../render-worker/media/encryption.ts";
import { cencKey } from "../../src/shared/segment-keys.ts";
import { splitFragmentedMp4 } from "../../render-worker/media/fragmented-mp4.ts";
import { segmentOptions } from "../../render-worker/media/segment-muxer.ts";
import type { Rung } from "../../src/protocol/media-facts.ts";
import { fixturesDir } from "../support/media-fixtures.ts";

const run = promisify(execFile);

const KEY = Buffer.from("00112233445566778899aabbccddeeff", "hex");
const KID = Buffer.from("0123456789abcdef0123456789abcdef", "hex");

const VIDEO: Rung = { name: "v", kind: "VIDEO", width: 160, height: 90, bandwidth: 300_000, codecs: "avc1.64000c" };
const AUDIO: Rung = { name: "a", kind: "AUDIO", width: null, height: null, bandwidth: 96_000, codecs: "mp4a.40.2" };

/**
 * Each frame's md5 as ffmpeg decodes `bytes` (with `-decryption_key` when given): the lines after
 * the header, or null when ffmpeg fails. The bytes go through a pipe, read in order as a player
 * reads them: given a seekable file of several fragments, FFmpeg 5.1's mov demuxer indexes them
 * all first and then matches a sample to another fragment's encryption info.
 */
function frameMd5(bytes: Buffer, key?: Buffer): Promise<string[] | null> {
  const args = ["-nostdin", "-v", "error", ...(key ? ["-decryption_key", key.toString("hex")] : [])];
  const ffmpeg = spawn("ffmpeg", [...args, "-i", "pipe:0", "-f", "framemd5", "pipe:1"]);
  const out: Buffer[] = [];
  ffmpeg.stdout.on("data", (chunk: Buffer) => out.push(chunk));
  ffmpeg.stderr.resume();
  ffmpeg.stdin.on("error", () => {});
  ffmpeg.stdin.end(bytes);
  return new Promise((resolve, reject) => {
    ffmpeg.on("error", reject);
    ffmpeg.on("close", (code) => {
      const lines = Buffer.concat(out).toString("utf8").split("\n");
      resolve(code === 0 ? lines.filter((line) => line && !line.startsWith("#")) : null);
    });
  });
}

/** The 4-character types of the boxes directly in `bytes`. */
function topBoxes(bytes: Buffer): string[] {
  const types: string[] = [];
  for (let at = 0; at < bytes.length; at += bytes.readUInt32BE(at))
    types.push(bytes.toString("latin1", at + 4, at + 8));
  return types;
}

describe("CENC fragments (real ffmpeg output, decrypted by ffmpeg's mov demuxer)", () => {
  let dir: string;
  const segments: Record<string, { init: Buffer; media: Buffer }[]> = {};

  beforeAll(async () => {
    dir = await mkdtemp(path.join(fixturesDir(), "cenc-"));
    await mkdir(path.join(dir, VIDEO.name));
    await mkdir(path.join(dir, AUDIO.name));
    // Three one-second segments of each rung, with the worker's own segment muxer settings.
    const cuts = [1, 2];
    await run(
      "ffmpeg",
      [
        ...["-nostdin", "-v", "error", "-y"],
        ...["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3"],
        ...["-f", "lavfi", "-i", "sine=frequency=440:duration=3"],
        ...[
          "-map",
          "0:v",
          "-c:v",
          "libx264",
          "-preset",
          "ultrafast",
          "-bf",
          "2",
          "-force_key_frames",
          "expr:gte(t,n_forced)",
        ],
        ...segmentOptions(VIDEO, "FMP4", 0, 0, cuts),
        `${VIDEO.name}/seg_%05d.m4s`,
        ...["-map", "1:a", "-c:a", "aac", "-b:a", "96k"],
        ...segmentOptions(AUDIO, "FMP4", 0, 0, cuts),
        `${AUDIO.name}/seg_%05d.m4s`,
      ],
      { cwd: dir },
    );
    for (const rung of [VIDEO, AUDIO]) {
      segments[rung.name] = await Promise.all(
        [0, 1, 2].map(async (n) =>
          splitFragmentedMp4(await readFile(path.join(dir, rung.name, `seg_${String(n).padStart(5, "0")}.m4s`))),
        ),
      );
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const rung of [VIDEO, AUDIO]) {
    it(`${rung.kind === "VIDEO" ? "an H.264" : "an AAC"} rung decrypts with the key to the clear rung's frames, and not without it`, async () => {
      const parts = segments[rung.name]!;
      const { init, track } = protectInit(parts[0]!.init, KID);
      expect(track.kind).toBe(rung.kind === "VIDEO" ? "video" : "audio");
      if (rung.kind === "VIDEO") expect(track.nalLengthSize).toBe(4);
      const encrypted = parts.map((part, n) => encryptFragments(part.media, track, KEY, n));
      for (const [n, part] of encrypted.entries()) {
        expect(topBoxes(part)).toEqual(["moof", "mdat"]);
        // The moof gained senc, saiz and saio; the mdat is as long as it was, its samples ciphertext.
        expect(part.length).toBeGreaterThan(parts[n]!.media.length);
        expect(part.subarray(-64)).not.toEqual(parts[n]!.media.subarray(-64));
        // saio points, from the moof's start, at the first sample's IV in senc (where EME readers look).
        const saio = part.indexOf("saio", 0, "latin1");
        expect(part.subarray(saio - 4, saio).readUInt32BE()).toBe(20);
        const firstIv = part.readUInt32BE(saio + 12);
        expect(part.subarray(firstIv, firstIv + 8)).toEqual(sampleIv(n, 0));
      }

      const clear = await frameMd5(Buffer.concat([parts[0]!.init, ...parts.map((part) => part.media)]));
      // 3 s: 75 video frames, or some 130 AAC frames.
      expect(clear?.length).toBeGreaterThanOrEqual(75);
      const whole = Buffer.concat([init, ...encrypted]);
      expect(await frameMd5(whole, KEY)).toEqual(clear);
      // Each segment alone after the init, as a player fetches it (its IVs are its own).
      for (const [n, part] of encrypted.entries()) {
        const alone = await frameMd5(Buffer.concat([parts[0]!.init, parts[n]!.media]));
        expect(await frameMd5(Buffer.concat([init, part]), KEY)).toEqual(alone);
      }

      const wrongKey = Buffer.from(KEY).fill(7, 0, 4);
      expect(await frameMd5(whole)).not.toEqual(clear);
      expect(await frameMd5(whole, wrongKey)).not.toEqual(clear);
    });
  }

  it("writes encv/enca with sinf (frma, schm cenc, tenc with the key id) and a Common PSSH in moov", () => {
    for (const [rung, original, sampleEntry] of [
      [VIDEO, "avc1", "encv"],
      [AUDIO, "mp4a", "enca"],
    ] as const) {
      const { init } = protectInit(segments[rung.name]![0]!.init, KID);
      expect(topBoxes(init)).toEqual(["ftyp", "moov"]);
      const text = init.toString("latin1");
      expect(text).toContain(sampleEntry);
      // The original sample entry type is left only in frma.
      expect(text.indexOf(original)).toBe(text.indexOf(`frma${original}`) + 4);
      expect(text).toContain("schm\0\0\0\0cenc\0\x01\0\0");
      const tenc = init.indexOf("tenc", 0, "latin1");
      expect(init.subarray(tenc + 8, tenc + 12)).toEqual(Buffer.from([0, 0, 1, 8]));
      expect(init.subarray(tenc + 12, tenc + 28)).toEqual(KID);
      const pssh = init.indexOf("pssh", 0, "latin1");
      expect(init.readUInt32BE(pssh + 4) >>> 24).toBe(1);
      expect(init.subarray(pssh + 8, pssh + 24)).toEqual(COMMON_SYSTEM_ID);
      expect(init.readUInt32BE(pssh + 24)).toBe(1);
      expect(init.subarray(pssh + 28, pssh + 44)).toEqual(KID);
      // Every size still adds up: the init is a file the clear segments' muxer output would split.
      expect(() => splitFragmentedMp4(Buffer.concat([init, segments[rung.name]![0]!.media]))).not.toThrow();
    }
  });

  it("decryptFragments gives back ffmpeg's fragments byte for byte", () => {
    for (const rung of [VIDEO, AUDIO]) {
      const parts = segments[rung.name]!;
      const { track } = protectInit(parts[0]!.init, KID);
      for (const [n, part] of parts.entries()) {
        expect(decryptFragments(encryptFragments(part.media, track, KEY, n), KEY).equals(part.media)).toBe(true);
      }
    }
  });

  it("a job's CENC protection publishes an init and segments that decrypt with the video's derived key, TS refused", async () => {
    const contentKey = Buffer.from("ffeeddccbbaa99887766554433221100", "hex");
    const protection = { method: "CENC" as const, key: contentKey.toString("hex"), keyRotationSegments: null };
    const encryption = segmentEncryption(protection)!;
    const { key, keyId } = cencKey(contentKey);
    const parts = segments[VIDEO.name]!;
    const init = encryption.init(parts[0]!.init);
    expect(init.subarray(init.indexOf("tenc", 0, "latin1") + 12, init.indexOf("tenc", 0, "latin1") + 28)).toEqual(
      keyId,
    );
    const uris = ["seg_00000.m4s", "seg_00001.m4s", "seg_00002.m4s"];
    const encrypted = parts.map((part, n) => encryption.encrypt(uris[n]!, part.media, part.init));
    const clear = await frameMd5(Buffer.concat([parts[0]!.init, ...parts.map((part) => part.media)]));
    expect(await frameMd5(Buffer.concat([init, ...encrypted]), key)).toEqual(clear);
    expect(await frameMd5(Buffer.concat([init, ...encrypted]), contentKey)).not.toEqual(clear);
    expect(encryption.decrypt(uris[1]!, encrypted[1]!).equals(parts[1]!.media)).toBe(true);
    expect(() => encryption.encrypt("seg_00000.ts", parts[0]!.media)).toThrow(/fMP4/);
  });

  it("refuses what it cannot encrypt: a short key or key id, a segment it already encrypted, a cut-short fragment", () => {
    const parts = segments[VIDEO.name]!;
    const { track } = protectInit(parts[0]!.init, KID);
    expect(() => protectInit(parts[0]!.init, KID.subarray(0, 8))).toThrow(/16 bytes/);
    expect(() => encryptFragments(parts[0]!.media, track, KEY.subarray(0, 8), 0)).toThrow(/16 bytes/);
    const once = encryptFragments(parts[0]!.media, track, KEY, 0);
    expect(() => encryptFragments(once, track, KEY, 0)).toThrow(/already encrypted/);
    expect(() => encryptFragments(parts[0]!.media.subarray(0, 100), track, KEY, 0)).toThrow();
    expect(() => protectInit(parts[0]!.media, KID)).toThrow(/moov/);
  });
});
