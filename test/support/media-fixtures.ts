import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, inject } from "vitest";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { BENCH_SOURCES } from "../../bench/support/sources.ts";

const run = promisify(execFile);

export interface ClipSpec {
  width: number;
  height: number;
  seconds: number;
  audio: boolean;
  /** Written as the stream's legacy `rotate` tag, which the mp4 muxer turns into a display matrix. */
  rotate?: number;
  fps?: number;
  /** Exactly this many frames instead of `seconds` of them. */
  frames?: number;
}

let fixtureDir: string | undefined;
const made = new Map<string, Promise<string>>();

/**
 * Removes the current test file's own dir (`fixturesDir`) after the file's own `afterAll`s: the setup
 * file fixtures-cleanup.ts calls it for every file. A hook registered here, as the module was imported,
 * was not run for every file of a process that files share (`isolate: false`): about eight files' dirs
 * a run stayed in the system's temp dir.
 */
export async function removeFixturesDir(): Promise<void> {
  const dir = fixtureDir;
  fixtureDir = undefined;
  made.clear();
  if (dir) await rm(dir, { recursive: true, force: true });
}

/**
 * For each test, a fresh `data/` (the local storage root) and `work/` (a job's work dir) under
 * the fixtures dir, removed after the test. Read the paths inside tests: they change per test.
 */
export function jobDirsPerTest(prefix: string): { root: string; dataDir: string; workDir: string } {
  const dirs = { root: "", dataDir: "", workDir: "" };
  beforeEach(async () => {
    dirs.root = await mkdtemp(path.join(fixturesDir(), `${prefix}-`));
    dirs.dataDir = path.join(dirs.root, "data");
    dirs.workDir = path.join(dirs.root, "work");
    await mkdir(dirs.workDir, { recursive: true });
  });
  afterEach(async () => {
    await rm(dirs.root, { recursive: true, force: true });
  });
  return dirs;
}

/** A temp dir for the current test file's own files, removed after its last test. */
export function fixturesDir(): string {
  fixtureDir ??= mkdtempSync(path.join(tmpdir(), "videograph-fixtures-"));
  return fixtureDir;
}

/**
 * The encoding of the generated clips that keep their detail (grain, a frame counter): H.264 at
 * CRF 18 (ultrafast, so making them is cheap), and AAC 96k when there is audio.
 */
function crf18Output(file: string, audio: boolean): string[] {
  return [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-crf",
    "18",
    ...(audio ? ["-c:a", "aac", "-b:a", "96k"] : []),
    file,
  ];
}

/** Runs ffmpeg quietly and fails with its stderr. */
export async function runFfmpeg(args: string[]): Promise<void> {
  await run("ffmpeg", ["-nostdin", "-hide_banner", "-v", "error", "-y", ...args]);
}

/**
 * An H.264 (+ AAC) mp4 generated with lavfi's `testsrc2` and `sine`; the same spec returns the
 * same file for the whole run.
 */
export function makeClip(spec: ClipSpec): Promise<string> {
  const fps = spec.fps ?? 25;
  const length = spec.frames === undefined ? `${spec.seconds}s` : `${spec.frames}f`;
  const streams = spec.audio ? "av" : "v";
  const name = `clip-${spec.width}x${spec.height}-${length}-${fps}fps-${streams}-r${spec.rotate ?? 0}.mp4`;
  return fixture(name, (file) => generate(file, spec, fps));
}

async function generate(file: string, spec: ClipSpec, fps: number): Promise<void> {
  const encoded = spec.rotate ? `${file}.unrotated.mp4` : `${file}.tmp.mp4`;
  // testsrc2 draws even sizes only and 4:2:0 cannot hold odd ones: an odd size is scaled to, in 4:4:4.
  const odd = spec.width % 2 === 1 || spec.height % 2 === 1;
  const evenSize = `${spec.width + (spec.width % 2)}x${spec.height + (spec.height % 2)}`;
  await runFfmpeg([
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=${evenSize}:rate=${fps}:duration=${spec.seconds}`,
    ...(spec.audio ? ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${spec.seconds}`] : []),
    ...(odd ? ["-vf", `scale=${spec.width}:${spec.height},setsar=1`] : []),
    ...(spec.frames === undefined ? [] : ["-frames:v", String(spec.frames)]),
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    odd ? "yuv444p" : "yuv420p",
    ...(spec.audio ? ["-c:a", "aac", "-b:a", "96k"] : []),
    encoded,
  ]);
  if (spec.rotate) {
    // FFmpeg 5.1 writes the rotate tag into the display matrix only when stream-copying.
    await runFfmpeg([
      "-i",
      encoded,
      "-map",
      "0",
      "-c",
      "copy",
      "-metadata:s:v:0",
      `rotate=${spec.rotate}`,
      `${file}.tmp.mp4`,
    ]);
    await rm(encoded, { force: true });
  }
  await rename(`${file}.tmp.mp4`, file);
}

/**
 * The file `name` in the run's shared media dir (global-setup.ts), generated by the first test file
 * that asks for it: the other files, in this process or another, wait for it and reuse it. Tests
 * must not change these files; copy one to change it.
 */
function fixture(name: string, generate: (file: string) => Promise<void>): Promise<string> {
  let ready = made.get(name);
  if (!ready) {
    ready = generateOnce(path.join(inject("mediaFixturesDir"), name), generate);
    made.set(name, ready);
  }
  return ready;
}

const LOCK_POLL_MS = 50;
/** Past this a lock is presumed left behind by a test process that died while generating. */
const LOCK_STALE_MS = 120_000;

async function generateOnce(file: string, generate: (file: string) => Promise<void>): Promise<string> {
  const lock = `${file}.lock`;
  for (;;) {
    if (await exists(file)) return file;
    const owned = await writeFile(lock, String(process.pid), { flag: "wx" }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "EEXIST") return false;
        throw err;
      },
    );
    if (owned) {
      try {
        // Generated under a private name that keeps the extension (ffmpeg picks the format by it), then
        // renamed: a reader sees the whole file or none.
        const dir = await mkdtemp(`${path.dirname(file)}/generating-`);
        const scratch = path.join(dir, path.basename(file));
        await generate(scratch);
        await rename(scratch, file);
        await rm(dir, { recursive: true, force: true });
        return file;
      } finally {
        await rm(lock, { force: true });
      }
    }
    const since = await stat(lock).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (since > LOCK_STALE_MS) await rm(lock, { force: true });
    else await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
  }
}

function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** A sine tone of `seconds` at 44.1 kHz, as WAV or MP3: an alternate audio track's file. */
export function makeTone(seconds: number, frequency: number, container: "wav" | "mp3"): Promise<string> {
  return fixture(`tone-${frequency}hz-${seconds}s.${container}`, (file) =>
    runFfmpeg(["-f", "lavfi", "-i", `sine=frequency=${frequency}:sample_rate=44100:duration=${seconds}`, file]),
  );
}

/** An AAC file with no video at all. */
export function makeAudioOnly(seconds: number): Promise<string> {
  return fixture(`audio-${seconds}s.m4a`, (file) =>
    runFfmpeg(["-f", "lavfi", "-i", `sine=frequency=300:duration=${seconds}`, "-c:a", "aac", file]),
  );
}

/**
 * An AAC m4a whose container is intact but whose audio packets are noise: ffprobe reads its
 * header, the decoder fails on (nearly) every packet.
 */
export function makeUndecodableAudio(seconds: number): Promise<string> {
  return fixture(`undecodable-audio-${seconds}s.m4a`, async (file) => {
    const intact = `${file}.intact.m4a`;
    await runFfmpeg(["-f", "lavfi", "-i", `sine=frequency=300:duration=${seconds}`, "-c:a", "aac", intact]);
    const bytes = await readFile(intact);
    const mdat = bytes.indexOf("mdat", 0, "latin1");
    if (mdat < 4) throw new Error("No mdat box in the m4a");
    const end = mdat - 4 + bytes.readUInt32BE(mdat - 4);
    // A fixed xorshift, so the file is the same in every run.
    let x = 0x9e3779b9;
    for (let i = mdat + 4; i < end; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      bytes[i] = x & 0xff;
    }
    await writeFile(file, bytes);
    await rm(intact, { force: true });
  });
}

/** A WAV file whose header is whole and which holds no samples at all. */
export function makeZeroLengthAudio(): Promise<string> {
  return fixture("zero-length.wav", (file) =>
    runFfmpeg(["-f", "lavfi", "-i", "sine=duration=1", "-t", "0", "-c:a", "pcm_s16le", file]),
  );
}

/** One second of `channels`-channel PCM audio in a WAV (no channel layout ffmpeg knows past 8). */
export function makeManyChannelAudio(channels: number): Promise<string> {
  const expressions = Array.from({ length: channels }, (_, i) => `sin(${220 + i * 20}*2*PI*t)`).join("|");
  return fixture(`channels-${channels}.wav`, (file) =>
    runFfmpeg(["-f", "lavfi", "-i", `aevalsrc=${expressions}:d=1:s=48000`, "-c:a", "pcm_s16le", file]),
  );
}

/** A Matroska file with a subtitle stream and neither audio nor video. */
export function makeDataOnly(): Promise<string> {
  return fixture("subtitles-only.mkv", async (file) => {
    const srt = `${file}.srt`;
    await writeFile(srt, "1\n00:00:00,000 --> 00:00:02,000\nNothing to hear or see\n");
    await runFfmpeg(["-i", srt, "-c:s", "srt", file]);
    await rm(srt, { force: true });
  });
}

/** A frame rate as ffmpeg spells it: `25`, or `30000/1001` (NTSC's 29.97, the commonest camera rate). */
type FrameRate = number | `${number}/${number}`;

/**
 * A clip of `size` (640x360 unless said otherwise; + a sine tone), 25 fps unless `rate` says
 * otherwise, whose every frame shows its own index, so that a decoded encode can be checked frame by
 * frame (`frameIndices` in frames.ts reads it back): along the top ninth, 10 blocks a tenth of the
 * width each (64x40 at 640x360), block k white when bit k of the frame number is set (up to frame
 * 1023). Below, testsrc2 with temporal noise (sensor grain: every rung's rate control has to work, as
 * on camera footage). H.264 at CRF 18 with x264's default keyframe interval of 250 frames, so a seek
 * into it decodes from a keyframe seconds before. A smaller size costs every run that decodes it less
 * where the frames' timing is what a test checks, not the ladder's rungs.
 */
export function makeFrameCounterClip(
  seconds: number,
  rate: FrameRate = 25,
  size: { width: number; height: number } = { width: 640, height: 360 },
): Promise<string> {
  const [num, den = 1] = String(rate).split("/").map(Number);
  if ((num! / den) * seconds > 1024) throw new Error("The counter shows frame numbers up to 1023");
  const { width, height } = size;
  const strip = height / 9;
  if (width % 20 || strip % 2) throw new Error("A frame counter clip needs a width of 20·n and a height of 18·n");
  const name = `frame-counter-${width}x${height}-${seconds}s-${String(rate).replace("/", "_")}fps-av.mp4`;
  return fixture(name, (file) =>
    runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${width}x${height - strip}:rate=${rate}:duration=${seconds}`,
      "-f",
      "lavfi",
      "-i",
      `color=black:size=${width}x${strip}:rate=${rate}:duration=${seconds},format=yuv420p`,
      "-f",
      "lavfi",
      "-i",
      `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
      "-filter_complex",
      "[0]noise=alls=8:allf=t[picture];" +
        "[1]geq=lum='if(mod(floor(N/pow(2,floor(X*10/W))),2),235,16)':cb=128:cr=128[counter];" +
        "[counter][picture]vstack,format=yuv420p[v]",
      "-map",
      "[v]",
      "-map",
      "2:a",
      ...crf18Output(file, true),
    ]),
  );
}

/**
 * `source`'s streams copied into MPEG-TS, as a broadcast or screen recorder hands them over: the
 * same frames, its keyframes as they are (a generated clip has one, its first).
 */
export function makeMpegTsCopy(source: string): Promise<string> {
  return fixture(`${path.basename(source, path.extname(source))}-copy.ts`, (file) =>
    runFfmpeg(["-i", source, "-map", "0", "-c", "copy", "-f", "mpegts", file]),
  );
}

/**
 * Camera-like footage: the benchmarks' `camera` source (bench/support/sources.ts: testsrc2 panned to
 * and fro under the frame, with temporal grain, so no block of one frame repeats in the next), + a
 * sine tone when `audio`. H.264 at CRF 18, so the grain survives into the source: every rung's rate
 * control works as on a camera's footage, where testsrc2 alone leaves the small rungs little to do.
 */
export function makeCameraClip(spec: {
  width: number;
  height: number;
  seconds: number;
  fps: number;
  audio: boolean;
}): Promise<string> {
  const { width, height, seconds, fps, audio } = spec;
  const name = `camera-${width}x${height}-${seconds}s-${fps}fps-${audio ? "av" : "v"}.mp4`;
  return fixture(name, (file) =>
    runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      BENCH_SOURCES.camera.video({ width, height, fps, seconds }),
      ...(audio ? ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`] : []),
      // The source graph ends in yuv420p: the encode keeps it.
      ...crf18Output(file, audio),
    ]),
  );
}

/**
 * A cut to a grainy shot: testsrc2 at 25 fps, heavy temporal grain (`noise=alls=30:allf=t`) from
 * halfway on, + a sine tone. Where the grain starts the rate control spends its VBV buffer: a 2 s
 * segment there carried 1.3 × its rung's bitrate (640x360, 2026-11-23), above the rung's maxrate.
 */
export function makeGrainOnsetClip(spec: { width: number; height: number; seconds: number }): Promise<string> {
  const { width, height, seconds } = spec;
  return fixture(`grain-onset-${width}x${height}-${seconds}s-25fps-av.mp4`, (file) =>
    runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${width}x${height}:rate=25:duration=${seconds},format=yuv420p,` +
        `noise=alls=30:allf=t:enable='gte(t,${seconds / 2})'`,
      "-f",
      "lavfi",
      "-i",
      `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
      ...crf18Output(file, true),
    ]),
  );
}

/**
 * Variable frame rate, as phones record: 60 fps in the first second of every two, 10 fps in the
 * other, with the timestamps kept as they are (no duplicated frames).
 */
export function makeVfrClip(spec: { width: number; height: number; seconds: number }): Promise<string> {
  return fixture(`vfr-${spec.width}x${spec.height}-${spec.seconds}s.mp4`, (file) =>
    runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${spec.width}x${spec.height}:rate=60:duration=${spec.seconds}`,
      "-vf",
      "select='lt(mod(t\\,2)\\,1)+not(mod(n\\,6))'",
      "-fps_mode",
      "passthrough",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      file,
    ]),
  );
}

/**
 * A decompression bomb: one 64x64 H.264 frame (a few KB) in an mp4 whose sequence parameter set
 * declares `width`x`height` (multiples of 16), so a decoder allocates frames of that size.
 */
export function makeFrameSizeBomb(width: number, height: number): Promise<string> {
  if (width % 16 !== 0 || height % 16 !== 0) throw new Error("The declared size must be whole macroblocks");
  return fixture(`bomb-${width}x${height}.mp4`, async (file) => {
    const small = `${file}.small.h264`;
    const patched = `${file}.patched.h264`;
    await runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=64x64:rate=25",
      "-frames:v",
      "1",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-profile:v",
      "baseline",
      "-pix_fmt",
      "yuv420p",
      small,
    ]);
    await writeFile(patched, withH264FrameSize(await readFile(small), width / 16, height / 16));
    // -max_pixels keeps this ffmpeg from decoding the bomb while it reads the stream's parameters.
    await runFfmpeg(["-max_pixels", "4096", "-f", "h264", "-i", patched, "-c", "copy", file]);
    await Promise.all([rm(small, { force: true }), rm(patched, { force: true })]);
  });
}

/** A YUV4MPEG2 file whose header declares `width`x`height` frames, followed by only 64 KiB of data. */
export function makeY4mHeaderBomb(width: number, height: number): Promise<string> {
  return fixture(`bomb-${width}x${height}.y4m`, (file) =>
    writeFile(
      file,
      Buffer.concat([
        Buffer.from(`YUV4MPEG2 W${width} H${height} F25:1 Ip A1:1 C420jpeg\nFRAME\n`),
        Buffer.alloc(65_536, 0x80),
      ]),
    ),
  );
}

/**
 * A one-second 64x64 clip whose container header declares `seconds`: the mp4's movie header (and
 * track header), or the mkv's segment Duration.
 */
export function makeDurationBomb(container: "mp4" | "mkv", seconds: number): Promise<string> {
  return fixture(`long-${seconds}s.${container}`, async (file) => {
    const clip = await makeClip({ width: 64, height: 64, seconds: 1, audio: false });
    if (container === "mp4") {
      await writeFile(file, withMp4Duration(await readFile(clip), seconds));
      return;
    }
    const mkv = `${file}.tmp.mkv`;
    await runFfmpeg(["-i", clip, "-c", "copy", mkv]);
    const bytes = await readFile(mkv);
    // Duration (EBML id 0x4489) as an 8-byte float, in the default 1 ms timecode scale.
    const at = bytes.indexOf(Buffer.from([0x44, 0x89, 0x88]));
    if (at < 0) throw new Error("No 8-byte Duration element in the mkv");
    bytes.writeDoubleBE(seconds * 1000, at + 3);
    await writeFile(file, bytes);
    await rm(mkv, { force: true });
  });
}

/** Sets an mp4's movie duration (mvhd, timescale 1 s) and its tracks' (tkhd) to `seconds`. */
function withMp4Duration(mp4: Buffer, seconds: number): Buffer {
  const out = Buffer.from(mp4);
  const boxes = (start: number, end: number): Array<{ type: string; body: number; end: number }> => {
    const found = [];
    for (let at = start; at + 8 <= end; ) {
      const size = out.readUInt32BE(at);
      if (size < 8) throw new Error("Unsupported mp4 box size");
      found.push({ type: out.toString("latin1", at + 4, at + 8), body: at + 8, end: at + size });
      at += size;
    }
    return found;
  };
  const moov = boxes(0, out.length).find((b) => b.type === "moov");
  if (!moov) throw new Error("No moov box");
  for (const box of boxes(moov.body, moov.end)) {
    if (box.type === "mvhd") {
      if (out[box.body] !== 0) throw new Error("Only version 0 mvhd is supported");
      out.writeUInt32BE(1, box.body + 12);
      out.writeUInt32BE(seconds, box.body + 16);
    }
    if (box.type !== "trak") continue;
    const tkhd = boxes(box.body, box.end).find((b) => b.type === "tkhd");
    if (!tkhd || out[tkhd.body] !== 0) throw new Error("Only version 0 tkhd is supported");
    out.writeUInt32BE(seconds, tkhd.body + 20);
  }
  return out;
}

/**
 * Rewrites the frame size in every sequence parameter set of an Annex B H.264 stream. The size is
 * Exp-Golomb coded, so the SPS is decoded and re-encoded bit by bit; the slices are kept as they are.
 */
function withH264FrameSize(annexB: Buffer, widthMbs: number, heightMbs: number): Buffer {
  const starts: number[] = [];
  for (let i = 0; i + 3 <= annexB.length; i++) {
    if (annexB[i] === 0 && annexB[i + 1] === 0 && annexB[i + 2] === 1) starts.push(i + 3);
  }
  const units = starts.map((start, k) => {
    let end = k + 1 < starts.length ? starts[k + 1]! - 3 : annexB.length;
    while (end > start && annexB[end - 1] === 0) end--;
    const nal = annexB.subarray(start, end);
    if ((nal[0]! & 0x1f) !== 7) return nal;
    const sps = rewriteSpsFrameSize(unescapeRbsp(nal.subarray(1)), widthMbs, heightMbs);
    return Buffer.concat([nal.subarray(0, 1), escapeRbsp(sps)]);
  });
  return Buffer.concat(units.flatMap((nal) => [Buffer.from([0, 0, 0, 1]), nal]));
}

/** ITU-T H.264 7.3.2.1.1, up to pic_height_in_map_units_minus1; the rest is copied. */
function rewriteSpsFrameSize(rbsp: Buffer, widthMbs: number, heightMbs: number): Buffer {
  const r = new BitReader(rbsp);
  const w = new BitWriter();
  const profile = r.bits(8);
  w.bits(profile, 8);
  w.bits(r.bits(16), 16); // constraint flags, level_idc
  w.ue(r.ue()); // seq_parameter_set_id
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
    const chroma = r.ue();
    w.ue(chroma);
    if (chroma === 3) w.bits(r.bits(1), 1);
    w.ue(r.ue()); // bit_depth_luma_minus8
    w.ue(r.ue()); // bit_depth_chroma_minus8
    w.bits(r.bits(1), 1); // qpprime_y_zero_transform_bypass_flag
    if (r.bits(1) !== 0) throw new Error("SPS scaling matrices are not supported");
    w.bits(0, 1);
  }
  w.ue(r.ue()); // log2_max_frame_num_minus4
  const pocType = r.ue();
  w.ue(pocType);
  if (pocType === 0) w.ue(r.ue());
  else if (pocType === 1) throw new Error("pic_order_cnt_type 1 is not supported");
  w.ue(r.ue()); // max_num_ref_frames
  w.bits(r.bits(1), 1); // gaps_in_frame_num_value_allowed_flag
  r.ue();
  r.ue();
  w.ue(widthMbs - 1);
  w.ue(heightMbs - 1);
  // The remaining flags, VUI and the rbsp trailing bits, unchanged.
  while (r.remaining > 0) w.bits(r.bits(1), 1);
  return w.toBuffer();
}

class BitReader {
  private pos = 0;
  private readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  get remaining(): number {
    return this.bytes.length * 8 - this.pos;
  }
  bits(n: number): number {
    let value = 0;
    for (let i = 0; i < n; i++, this.pos++)
      value = value * 2 + ((this.bytes[this.pos >> 3]! >> (7 - (this.pos & 7))) & 1);
    return value;
  }
  ue(): number {
    let zeros = 0;
    while (this.bits(1) === 0) zeros++;
    return 2 ** zeros - 1 + this.bits(zeros);
  }
}

class BitWriter {
  private readonly out: number[] = [];
  bits(value: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.out.push(Math.floor(value / 2 ** i) % 2);
  }
  ue(value: number): void {
    const length = Math.floor(Math.log2(value + 1));
    this.bits(0, length);
    this.bits(value + 1, length + 1);
  }
  toBuffer(): Buffer {
    const bytes = Buffer.alloc(Math.ceil(this.out.length / 8));
    this.out.forEach((bit, i) => {
      if (bit) bytes[i >> 3]! |= 0x80 >> (i & 7);
    });
    return bytes;
  }
}

/** Drops emulation prevention bytes (00 00 03 → 00 00). */
function unescapeRbsp(nal: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (nal[i] === 3 && i >= 2 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    out.push(nal[i]!);
  }
  return Buffer.from(out);
}

/** Inserts emulation prevention bytes where two zeros precede a byte <= 3. */
function escapeRbsp(rbsp: Buffer): Buffer {
  const out: number[] = [];
  let zeros = 0;
  for (const byte of rbsp) {
    if (zeros >= 2 && byte <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Buffer.from(out);
}

/**
 * Puts `clip` where a video's uploaded source lives under `dataDir` and returns the transcode message
 * a worker would receive for it.
 */
export async function stageTranscodeJob(
  dataDir: string,
  clip: string,
  ids: { jobId: string; videoId: string },
  segmentSeconds: number,
): Promise<TranscodeJobMessage> {
  const sourceKey = `videos/${ids.videoId}/source/upload`;
  await mkdir(path.dirname(path.join(dataDir, sourceKey)), { recursive: true });
  await copyFile(clip, path.join(dataDir, sourceKey));
  return {
    v: 2,
    type: "transcode",
    jobId: ids.jobId,
    attempt: 1,
    videoId: ids.videoId,
    sourceKey,
    outputPrefix: `videos/${ids.videoId}`,
    options: { segmentSeconds },
  };
}
