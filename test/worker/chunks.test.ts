import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SegmentFormat } from "../../src/protocol/media-facts.ts";
import { chunkRange, chunksStartingAt, planChunks } from "../../render-worker/media/chunks.ts";
import { encodeLadder, type EncodeLadderArgs } from "../../render-worker/media/encode-ladder.ts";
import { planLadder, type PlannedRung } from "../../render-worker/media/ladder.ts";
import { probeSource } from "../../render-worker/media/probe.ts";
import { segmentCount, segmentPlan, segmentStart } from "../../render-worker/media/segments.ts";
import { frameIndices } from "../support/frames.ts";
import {
  expectReferenceSegments,
  expectReferenceTimeline,
  frameProblems,
  joinRung as joinRuns,
  type JoinedRung,
  type Packet,
  packetsOf,
  type RunPart,
  NTSC_STEP_SECONDS,
  segmentStarts,
  timelineProblems,
} from "../support/joined-rungs.ts";
import { fixturesDir, makeFrameCounterClip } from "../support/media-fixtures.ts";

const run = promisify(execFile);

describe("planChunks", () => {
  const plan = segmentPlan(4); // 1 s, then 4 s

  it("cuts a short first chunk, then chunks of about chunkSeconds, at segment starts", () => {
    const chunks = planChunks(plan, 600);
    // 9 s (segments 0–2), then the 591 s left in ten chunks of 148 segments: two of 14 (56 s), then
    // eight of 15 (60 s; the last 59 s, with the source's last, shorter segment).
    expect(chunks.map((c) => [c.fromSeconds, c.toSeconds])).toEqual([
      [0, 9],
      [9, 65],
      [65, 121],
      ...Array.from({ length: 7 }, (_, i) => [121 + 60 * i, 181 + 60 * i]),
      [541, 600],
    ]);
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    expect(chunks[0]).toEqual({ index: 0, fromSegment: 0, toSegment: 3, fromSeconds: 0, toSeconds: 9 });
    expect(chunks.at(-1)).toMatchObject({ fromSegment: 136, toSegment: segmentCount(plan, 600) });
  });

  it("covers every segment exactly once, in order, whatever the lengths", () => {
    for (const segmentSeconds of [1, 2, 4, 6, 10]) {
      const p = segmentPlan(segmentSeconds);
      for (const chunkSeconds of [5, 30, 60]) {
        for (const duration of [0.5, 7, 61, 64.9, 65.04, 90, 125.5, 3601]) {
          const what = `${segmentSeconds} s segments, ${chunkSeconds} s chunks, ${duration} s`;
          const chunks = planChunks(p, duration, { chunkSeconds });
          expect(chunks[0]!.fromSegment, what).toBe(0);
          expect(chunks.at(-1)!.toSegment, what).toBe(segmentCount(p, duration));
          expect(chunks.at(-1)!.toSeconds, what).toBe(duration);
          for (const [i, c] of chunks.entries()) {
            expect(c.toSegment, what).toBeGreaterThan(c.fromSegment);
            expect(c.fromSeconds, what).toBe(segmentStart(p, c.fromSegment));
            if (i > 0) expect(c.fromSegment, what).toBe(chunks[i - 1]!.toSegment);
            if (i < chunks.length - 1) expect(c.toSeconds, what).toBe(segmentStart(p, c.toSegment));
          }
          if (chunks.length > 1) {
            // The first about 10 s or a chunk; the rest in chunks of at most a chunk (to the nearest
            // segment), as equal as whole segments allow, the last ones taking the segments left over.
            const first = Math.min(10, chunkSeconds);
            expect(chunks[0]!.toSeconds, what).toBeLessThanOrEqual(
              Math.max(first, 1 + segmentSeconds) + segmentSeconds / 2,
            );
            const lengths = chunks.slice(1).map((c) => c.toSeconds - c.fromSeconds);
            const perChunk = Math.max(1, Math.round(chunkSeconds / segmentSeconds));
            const longest = Math.max(...lengths);
            expect(longest, what).toBeLessThanOrEqual(perChunk * segmentSeconds);
            expect(longest - Math.min(...lengths), what).toBeLessThanOrEqual(2 * segmentSeconds);
            const segmentsOf = chunks.slice(1).map((c) => c.toSegment - c.fromSegment);
            expect(segmentsOf, what).toEqual([...segmentsOf].sort((a, b) => a - b));
            // As few as a chunk's length allows: one fewer would need a chunk longer than that.
            const segments = chunks.at(-1)!.toSegment - chunks[1]!.fromSegment;
            expect(lengths.length, what).toBe(Math.ceil(segments / perChunk));
          }
        }
      }
    }
  });

  it("splits what follows the first chunk evenly, the last chunk no longer than a chunk", () => {
    const lengths = (duration: number) => planChunks(plan, duration).map((c) => c.toSeconds - c.fromSeconds);
    // 89 s after the first chunk: two chunks of 11 and 12 segments (it was 9 + 89: one worker
    // encoding 89 s while the others waited).
    expect(lengths(98)).toEqual([9, 44, 45]);
    expect(lengths(99)).toEqual([9, 44, 46]);
    // 60 s after it: one chunk.
    expect(lengths(69)).toEqual([9, 60]);
  });

  it("fills the last round of runs when there are more chunks than slots, and leaves one round alone", () => {
    const lengths = (duration: number, options: Parameters<typeof planChunks>[2]) =>
      planChunks(plan, duration, options).map((c) => c.toSeconds - c.fromSeconds);
    // 10 minutes on 8 slots: ten 60 s chunks would run 8, then 2 beside 6 idle slots; the first
    // chunk and 15 of 39–40 s make two full rounds.
    const filled = lengths(600, { slots: 8 });
    expect(filled).toHaveLength(16);
    expect(filled.slice(1).every((n) => n >= 36 && n <= 40)).toBe(true);
    expect(lengths(600, { slots: 4 })).toHaveLength(12);
    // One round runs every chunk at once already: 11 runs on 16 slots, 3 on 8.
    expect(lengths(600, { slots: 16 })).toEqual(lengths(600, {}));
    expect(lengths(98, { slots: 8 })).toEqual([9, 44, 45]);
    // Two rounds already full (4 runs on 2 slots): as without slots.
    expect(lengths(40, { chunkSeconds: 10, firstChunkSeconds: 4, slots: 2 })).toEqual([5, 12, 12, 11]);
    // Never more chunks than segments: 5 after the first, not 7.
    expect(planChunks(segmentPlan(2), 12, { chunkSeconds: 2, firstChunkSeconds: 2, slots: 4 })).toHaveLength(6);
  });

  it("gives a source no longer than singleChunkSeconds one chunk", () => {
    expect(planChunks(plan, 60)).toEqual([{ index: 0, fromSegment: 0, toSegment: 16, fromSeconds: 0, toSeconds: 60 }]);
    expect(planChunks(plan, 60.5)).toHaveLength(2);
    expect(planChunks(plan, 300, { singleChunkSeconds: 300 })).toHaveLength(1);
    expect(planChunks(plan, 0.4)).toEqual([{ index: 0, fromSegment: 0, toSegment: 1, fromSeconds: 0, toSeconds: 0.4 }]);
    expect(() => planChunks(plan, 100, { chunkSeconds: 0 })).toThrow(/positive/);
  });

  it("starts the first chunk's end after the short first segment and a full one at least", () => {
    expect(planChunks(segmentPlan(10), 600).map((c) => c.toSeconds)[0]).toBe(11);
    expect(planChunks(segmentPlan(6), 600, { firstChunkSeconds: 1 }).map((c) => c.toSeconds)[0]).toBe(7);
    expect(planChunks(segmentPlan(2), 600, { firstChunkSeconds: 5 }).map((c) => c.toSeconds)[0]).toBe(5);
  });
});

// A 12 s frame-counter clip in 2 s segments after a 1 s first one: segments start at 0, 1, 3, 5, 7,
// 9 and 11 s. Chunks 0–3, 3–7 and 7–12 s, joins at 3 s and 7 s, on none of the source's keyframes
// (0 and 10 s), so each chunk's seek decodes from one before. Joins every 4 s are far more than
// 60 s chunks make: whatever a join costs shows here.
const SECONDS = 12;
const FPS = 25;
const SEGMENT_SECONDS = 2;
const PLAN = segmentPlan(SEGMENT_SECONDS);
const CHUNKS = chunksStartingAt(PLAN, SECONDS, [0, 2, 4]);
const FORMATS = ["TS", "FMP4"] as const;

/**
 * How far a joined rung's SSIM and PSNR may be from the one-process encode's. Two runs of the
 * one-process encode differ by up to about 0.005 dB and 0.0002 SSIM here (the test measures it
 * again), but by 0.06–0.16 dB PSNR and 0.0002–0.0006 SSIM from one x264 thread count to another
 * (1, 2, 4, 8 or x264's own choice; this clip, 2026-11-23): on a machine with other cores the
 * one-process encode moves that much, and this is that noise. Measured joins (2 s pre-roll) came
 * within 0.025 dB and 0.0005 SSIM; joins whose runs start cold cost 0.07–0.77 dB and 0.0004–0.0021.
 */
const QUALITY_NOISE = { ssim: 0.001, psnr: 0.05 };

let root: string;
let source: string;
let ladder: PlannedRung[];
/** Per format, the ladder as planned for this test's segments: their bandwidths differ. */
const declared = new Map<SegmentFormat, Map<string, number>>();
/** Per format and rung: the one-process encode, and the chunks' (the audio-only run's for audio). */
const encodes = new Map<SegmentFormat, { one: Map<string, JoinedRung>; chunked: Map<string, JoinedRung> }>();
/** TS joins the checks must refuse: chunk 0 ending a frame late or early (144p), chunks without a pre-roll. */
const broken: { lateEnd?: JoinedRung; earlyEnd?: JoinedRung; noPreRoll?: JoinedRung } = {};

/** Every segment the runs wrote for `rung`, joined into the file `name`-`rung` under the test's root. */
function joinRung(name: string, runs: (RunPart | string)[], rung: string, format: SegmentFormat): Promise<JoinedRung> {
  return joinRuns(path.join(root, `${name}-${rung}.${format === "FMP4" ? "mp4" : "ts"}`), runs, rung, format);
}

/**
 * The highest bit rate over any window of `seconds` of decode time: the file's bytes (container
 * included) from a packet to the first packet a window later. With `across`, only the windows
 * that hold one of those byte offsets (a join) count.
 */
function peakRate(
  probed: { timeBase: number; packets: Packet[]; size: number },
  seconds: number,
  across?: number[],
): number {
  const byDts = [...probed.packets].sort((a, b) => a.dts - b.dts);
  const span = seconds / probed.timeBase;
  let peak = 0;
  let next = 0;
  for (const packet of byDts) {
    while (next < byDts.length && byDts[next]!.dts < packet.dts + span) next++;
    const end = next < byDts.length ? byDts[next]!.pos : probed.size;
    if (across && !across.some((at) => at > packet.pos && at < end)) continue;
    peak = Math.max(peak, ((end - packet.pos) * 8) / seconds);
  }
  return peak;
}

/** SSIM (All) and PSNR (average, dB) of each file against the source scaled to its size (bicubic), in one ffmpeg run. */
async function qualityOf(files: { file: string; rung: PlannedRung }[]): Promise<{ ssim: number; psnr: number }[]> {
  // Both sides from timestamp 0 in one time base, so that ssim and psnr pair frames by timestamp.
  const aligned = "setsar=1,format=yuv420p,setpts=PTS-STARTPTS,settb=AVTB";
  // The source is scaled once per rung, and that copy compared with each of the rung's files.
  const rungs = [...new Set(files.map((f) => f.rung))];
  const graph = [
    `[0:V:0]split=${rungs.length}${rungs.map((_, r) => `[s${r}]`).join("")}`,
    ...rungs.map((rung, r) => {
      const refs = files.flatMap((f, i) => (f.rung === rung ? [`[ra${i}]`, `[rb${i}]`] : []));
      return `[s${r}]scale=${rung.width}:${rung.height}:flags=bicubic,${aligned},split=${refs.length}${refs.join("")}`;
    }),
    ...files.map((_, i) =>
      [
        `[${i + 1}:V:0]${aligned}[d${i}]`,
        // Named instances (`ssim@q0`) label each summary line with its file.
        `[d${i}][ra${i}]ssim@q${i}[x${i}]`,
        `[x${i}][rb${i}]psnr@q${i}[o${i}]`,
      ].join(";"),
    ),
  ].join(";");
  const { stderr } = await run(
    "ffmpeg",
    [
      ...["-nostdin", "-hide_banner", "-nostats", "-i", source],
      ...files.flatMap(({ file }) => ["-i", file]),
      ...["-filter_complex", graph],
      ...files.flatMap((_, i) => ["-map", `[o${i}]`, "-f", "null", "-"]),
    ],
    { maxBuffer: 16 << 20 },
  );
  const summary = (name: string, pattern: RegExp) =>
    Number(
      stderr
        .split("\n")
        .filter((line) => line.startsWith(`[${name} @ `))
        .map((line) => pattern.exec(line)?.[1])
        .findLast((value) => value !== undefined),
    );
  return files.map((_, i) => ({
    ssim: summary(`ssim@q${i}`, /\bAll:([\d.]+)/),
    psnr: summary(`psnr@q${i}`, /\baverage:([\d.]+)/),
  }));
}

/** The base media decode time (tfdt) of every fragment in a run of moof + mdat boxes. */
function decodeTimes(media: Buffer): number[] {
  const times: number[] = [];
  const walk = (start: number, end: number) => {
    for (let at = start; at + 8 <= end; at += media.readUInt32BE(at)) {
      const type = media.toString("latin1", at + 4, at + 8);
      if (type === "moof" || type === "traf") walk(at + 8, at + media.readUInt32BE(at));
      if (type === "tfdt")
        times.push(media[at + 8] === 1 ? Number(media.readBigUInt64BE(at + 12)) : media.readUInt32BE(at + 12));
    }
  };
  walk(0, media.length);
  return times;
}

const videoRungs = () => ladder.filter((r) => r.kind === "VIDEO");
const frameStep = (timeBase: number) => Math.round(1 / FPS / timeBase);

describe("a source encoded in chunks joins as one process encodes it (real ffmpeg)", () => {
  beforeAll(async () => {
    root = await mkdtemp(path.join(fixturesDir(), "chunks-"));
    source = await makeFrameCounterClip(SECONDS);
    const { input, probe } = await probeSource(source);
    ladder = planLadder(probe); // 360p, 240p, 144p, audio
    for (const segmentFormat of FORMATS) {
      const planned = planLadder(probe, { segmentSeconds: SEGMENT_SECONDS, segmentFormat });
      declared.set(segmentFormat, new Map(planned.map((r) => [r.name, r.bandwidth])));
    }
    const video = videoRungs();
    const signal = new AbortController().signal;
    const encode = async (name: string, args: Partial<EncodeLadderArgs>) => {
      const workDir = path.join(root, name);
      await encodeLadder({ input, probe, ladder, workDir, segmentSeconds: SEGMENT_SECONDS, signal, ...args }).done;
      return workDir;
    };
    for (const segmentFormat of FORMATS) {
      // Each chunk and the audio in an ffmpeg process of its own, as the jobs of a chunked encode.
      const chunkDirs: string[] = [];
      for (const chunk of CHUNKS)
        chunkDirs.push(
          await encode(`${segmentFormat}-chunk${chunk.index}`, { ladder: video, segmentFormat, ...chunkRange(chunk) }),
        );
      const audioDir = await encode(`${segmentFormat}-audio`, {
        ladder: ladder.filter((r) => r.kind === "AUDIO"),
        segmentFormat,
      });
      const oneDir = await encode(`${segmentFormat}-one`, { segmentFormat });
      const one = new Map<string, JoinedRung>();
      const chunked = new Map<string, JoinedRung>();
      for (const rung of ladder) {
        one.set(rung.name, await joinRung(`${segmentFormat}-one`, [oneDir], rung.name, segmentFormat));
        const runs = rung.kind === "VIDEO" ? chunkDirs : [audioDir];
        chunked.set(rung.name, await joinRung(`${segmentFormat}-chunked`, runs, rung.name, segmentFormat));
      }
      encodes.set(segmentFormat, { one, chunked });
    }

    // The broken joins: chunk 0 cut one frame late and one frame early (a first segment a frame
    // longer or shorter moves its stop), and chunks 1 and 2 encoded without a pre-roll.
    const ts = path.join(root, "TS-chunk");
    const lowest = video.slice(-1);
    for (const [name, shift] of [
      ["lateEnd", 1 / FPS],
      ["earlyEnd", -1 / FPS],
    ] as const) {
      const firstSegmentSeconds = PLAN.firstSegmentSeconds + shift;
      const dir = await encode(name, { ladder: lowest, firstSegmentSeconds, ...chunkRange(CHUNKS[0]!) });
      broken[name] = await joinRung(name, [dir, `${ts}1`, `${ts}2`], lowest[0]!.name, "TS");
    }
    // The lowest rung alone: a cold start costs it most (0.77 dB against 0.08 at 360p, 2026-11-25).
    const cold = [];
    for (const chunk of CHUNKS.slice(1))
      cold.push(await encode(`cold-chunk${chunk.index}`, { ladder: lowest, ...chunkRange(chunk), preRollSeconds: 0 }));
    broken.noPreRoll = await joinRung("no-pre-roll", [`${ts}0`, ...cold], lowest[0]!.name, "TS");
  }, 300_000);

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it.each(FORMATS)(
    "writes every rung's segments as the one-process encode does: count, starts, durations (%s)",
    async (format) => {
      expect(CHUNKS.map((c) => [c.fromSegment, c.toSegment])).toEqual([
        [0, 2],
        [2, 4],
        [4, 7],
      ]);
      const { one, chunked } = encodes.get(format)!;
      for (const rung of ladder) {
        const [a, b] = [one.get(rung.name)!, chunked.get(rung.name)!];
        expect(
          b.segments.map((s) => s.uri),
          rung.name,
        ).toEqual(a.segments.map((s) => s.uri));
        expect(b.segments).toHaveLength(7);
        expect(
          b.segments.map((s) => s.duration),
          rung.name,
        ).toEqual(a.segments.map((s) => s.duration));
        const starts = await segmentStarts(a);
        expect(await segmentStarts(b), rung.name).toEqual(starts);
        if (rung.kind === "VIDEO")
          expect(
            starts.map((s) => s.keyframe),
            rung.name,
          ).not.toContain(false);
      }
    },
  );

  it.each(FORMATS)(
    "shows every source frame once and in order, one frame interval apart, across the joins (%s)",
    async (format) => {
      const { one, chunked } = encodes.get(format)!;
      for (const rung of videoRungs()) {
        const joined = chunked.get(rung.name)!;
        expect(frameProblems(await frameIndices(joined.file), SECONDS * FPS), rung.name).toEqual([]);
        const probed = await packetsOf(joined.file);
        expect(probed.packets).toHaveLength(SECONDS * FPS);
        const step = frameStep(probed.timeBase);
        expect(
          timelineProblems(
            probed.packets.map((p) => p.pts),
            step,
          ),
          `${rung.name} pts`,
        ).toEqual([]);
        expect(
          timelineProblems(
            probed.packets.map((p) => p.dts),
            step,
          ),
          `${rung.name} dts`,
        ).toEqual([]);
        // The timeline is the one-process encode's: the same first timestamps, so the same throughout.
        const reference = await packetsOf(one.get(rung.name)!.file);
        expect(probed.packets[0], rung.name).toMatchObject({
          pts: reference.packets[0]!.pts,
          dts: reference.packets[0]!.dts,
        });
      }
    },
  );

  it.each(FORMATS)(
    "has the audio-only run's audio be the one-process encode's: the same samples, continuous packets (%s)",
    async (format) => {
      const { one, chunked } = encodes.get(format)!;
      const pcm = async (joined: JoinedRung) =>
        (
          await run("ffmpeg", ["-v", "error", "-i", joined.file, "-f", "s16le", "-"], {
            encoding: "buffer",
            maxBuffer: 64 << 20,
          })
        ).stdout;
      const [expected, actual] = [await pcm(one.get("audio")!), await pcm(chunked.get("audio")!)];
      // 16-bit stereo: 4 bytes a sample. 12 s at 48 kHz, and the AAC encoder's last frame.
      expect(actual.length / 4).toBe(expected.length / 4);
      expect(actual.length / 4).toBeGreaterThanOrEqual(SECONDS * 48_000);
      expect(actual.equals(expected)).toBe(true);
      const probed = await packetsOf(chunked.get("audio")!.file);
      expect(
        timelineProblems(
          probed.packets.map((p) => p.pts),
          Math.round(1024 / 48_000 / probed.timeBase),
        ),
      ).toEqual([]);
    },
  );

  it("writes fMP4 chunks whose init segments are the one-process encode's and whose decode times continue its own", async () => {
    const { one, chunked } = encodes.get("FMP4")!;
    for (const rung of ladder) {
      const [a, b] = [one.get(rung.name)!, chunked.get(rung.name)!];
      const init = a.segments[0]!.init!;
      // Byte for byte: the playlist names one init per rung, whichever run wrote it.
      for (const s of b.segments) expect(s.init!.equals(init), `${rung.name} ${s.uri}`).toBe(true);
      const media = async (joined: JoinedRung) => (await readFile(joined.file)).subarray(init.length);
      const times = decodeTimes(await media(b));
      expect(times, rung.name).toEqual(decodeTimes(await media(a)));
      // Each segment's tfdt is the decode time of its first sample, which continue one another (above).
      const { packets } = await packetsOf(b.file);
      const firstDts = b.segments.map((s) => packets.find((p) => p.pos >= s.from)!.dts);
      expect(times, rung.name).toEqual(firstDts);
    }
  });

  it("scores every rung of the joined encode as the one-process encode, within run-to-run noise", async () => {
    // Every encode of every video rung, and the cold joins' lowest rung, scored in one ffmpeg run:
    // `${format} ${kind}` → rung → score.
    const encodesToScore = new Map<string, Map<string, JoinedRung>>(
      FORMATS.flatMap((format) => [
        [`${format} one`, encodes.get(format)!.one] as const,
        [`${format} joined`, encodes.get(format)!.chunked] as const,
      ]),
    );
    const lowest = videoRungs().at(-1)!;
    const files = [
      ...[...encodesToScore].flatMap(([name, joined]) =>
        videoRungs().map((rung) => ({ name, rung, file: joined.get(rung.name)!.file })),
      ),
      { name: "TS no pre-roll", rung: lowest, file: broken.noPreRoll!.file },
    ];
    const scores = await qualityOf(files);
    const score = (name: string, rung: PlannedRung) =>
      scores[files.findIndex((f) => f.name === name && f.rung === rung)]!;

    const table: string[] = [];
    for (const format of FORMATS) {
      for (const rung of videoRungs()) {
        const [one, joined] = [score(`${format} one`, rung), score(`${format} joined`, rung)];
        expect(Math.abs(joined.ssim - one.ssim), `${format} ${rung.name} SSIM`).toBeLessThanOrEqual(QUALITY_NOISE.ssim);
        expect(Math.abs(joined.psnr - one.psnr), `${format} ${rung.name} PSNR`).toBeLessThanOrEqual(QUALITY_NOISE.psnr);
        table.push(
          `${format} ${rung.name}: SSIM ${one.ssim} one process, ${joined.ssim} joined; PSNR ${one.psnr} / ${joined.psnr} dB`,
        );
      }
    }
    for (const rung of videoRungs()) {
      // The two formats' one-process encodes are two runs of one encode: the container plays no part in it.
      const [ts, fmp4] = [score("TS one", rung), score("FMP4 one", rung)];
      const noise = { ssim: Math.abs(ts.ssim - fmp4.ssim), psnr: Math.abs(ts.psnr - fmp4.psnr) };
      expect(noise.psnr, `${rung.name} run to run`).toBeLessThan(QUALITY_NOISE.psnr);
      table.push(`${rung.name} run to run: SSIM ${noise.ssim.toFixed(6)}, PSNR ${noise.psnr.toFixed(4)} dB`);
    }
    // Runs that start cold fail the check.
    const cold = score("TS no pre-roll", lowest);
    table.push(`${lowest.name} no pre-roll: SSIM ${cold.ssim}, PSNR ${cold.psnr} dB`);
    expect(score("TS one", lowest).psnr - cold.psnr).toBeGreaterThan(QUALITY_NOISE.psnr);
    console.info(table.join("\n"));
  });

  it("keeps every rung's peak bit rate over any one-segment window, across the joins too, at the one-process encode's", async () => {
    const table: string[] = [];
    const overBandwidth: string[] = [];
    const kbps = (bits: number) => Math.round(bits / 1000);
    for (const [format, { one, chunked }] of encodes) {
      const bandwidth = declared.get(format)!;
      // A video rung's BANDWIDTH counts the audio it plays with; the audio rung has its own.
      const audio = peakRate(await packetsOf(chunked.get("audio")!.file), SEGMENT_SECONDS);
      if (audio > bandwidth.get("audio")!) overBandwidth.push(`${format} audio`);
      for (const rung of videoRungs()) {
        const joined = chunked.get(rung.name)!;
        const [a, b] = [await packetsOf(one.get(rung.name)!.file), await packetsOf(joined.file)];
        const onePeak = peakRate(a, SEGMENT_SECONDS);
        const joinedPeak = peakRate(b, SEGMENT_SECONDS);
        const atJoins = peakRate(b, SEGMENT_SECONDS, joined.joins);
        // Joins add nothing to the peak (3 %: two runs of one encode differ by up to 1 % a segment).
        expect(joinedPeak, `${format} ${rung.name}`).toBeLessThanOrEqual(onePeak * 1.03);
        expect(atJoins, `${format} ${rung.name}`).toBeGreaterThan(0);
        const declaredRate = bandwidth.get(rung.name)!;
        if (Math.max(onePeak, joinedPeak) + audio > declaredRate) overBandwidth.push(`${format} ${rung.name}`);
        table.push(
          `${format} ${rung.name}: BANDWIDTH ${kbps(declaredRate)} kb/s; video peak ${kbps(onePeak)} one process, ` +
            `${kbps(joinedPeak)} joined, ${kbps(atJoins)} in windows holding a join; audio peak ${kbps(audio)}`,
        );
      }
    }
    console.info(table.join("\n"));
    // Neither the one-process encode nor the joined one is over any rung's BANDWIDTH (ladder.ts bounds
    // it by the rung's VBV over a segment and MPEG-TS's or fMP4's packaging).
    expect(overBandwidth).toEqual([]);
  });

  it("refuses joins a frame off and measures what a join holds: the checks can fail", async () => {
    const lowest = videoRungs().at(-1)!;
    const reference = encodes.get("TS")!.one.get(lowest.name)!;
    const late = broken.lateEnd!;
    const early = broken.earlyEnd!;
    expect(frameProblems(await frameIndices(late.file), SECONDS * FPS)).toEqual(["frame 75 shown 2 times"]);
    expect(frameProblems(await frameIndices(early.file), SECONDS * FPS)).toEqual(["frame 74 lost"]);
    for (const joined of [late, early]) {
      const probed = await packetsOf(joined.file);
      expect(
        timelineProblems(
          probed.packets.map((p) => p.pts),
          frameStep(probed.timeBase),
        ),
      ).not.toEqual([]);
      expect(await segmentStarts(joined)).not.toEqual(await segmentStarts(reference));
    }
    // A burst in the last segment of chunk 0 shows in the windows across its join, not elsewhere.
    const probed = await packetsOf(encodes.get("TS")!.chunked.get(lowest.name)!.file);
    const join = encodes.get("TS")!.chunked.get(lowest.name)!.joins[0]!;
    const burst = 200_000;
    const burstAt = probed.packets.filter((p) => p.pos < join).at(-1)!.pos;
    const inflated = {
      ...probed,
      size: probed.size + burst,
      packets: probed.packets.map((p) => (p.pos > burstAt ? { ...p, pos: p.pos + burst } : p)),
    };
    expect(peakRate(inflated, SEGMENT_SECONDS, [join + burst])).toBeGreaterThan(
      peakRate(probed, SEGMENT_SECONDS, [join]) + (burst * 8) / SEGMENT_SECONDS - 1,
    );
    expect(peakRate(inflated, SEGMENT_SECONDS)).toBeGreaterThan(declared.get("TS")!.get(lowest.name)!);
  });
});

// At 30000/1001 fps no frame starts on a whole second after 0: the first frame at or after second s
// comes 0.03·s frame intervals later (frame 210 at 7.007 s, frame 510 at 17.017 s), so every chunk
// but the first starts its run between two frames. A 24 s clip in 2 s segments after a 1 s first
// one, in chunks 0–9 s, 9–19 s and 19–24.02 s: the runs after the first start (2 s of pre-roll
// earlier) at 7 s, 0.21 of a frame before a frame, and at 17 s, 0.51 of one before. 17 s is the
// first whole second where that passes half a frame: hence the clip's length.
const NTSC_SECONDS = 24;

describe("a 30000/1001 fps source encoded in chunks joins frame for frame (real ffmpeg)", () => {
  let ntscRoot: string;
  let sourceFrames: number;
  const ntsc = new Map<SegmentFormat, { one: JoinedRung; chunked: JoinedRung }>();

  beforeAll(async () => {
    ntscRoot = await mkdtemp(path.join(fixturesDir(), "chunks-ntsc-"));
    // 160x90, one 90p rung: the frames' timing is checked here, not the rungs (320x180 and its 144p
    // rung cost twice the CPU).
    const clip = await makeFrameCounterClip(NTSC_SECONDS, "30000/1001", { width: 160, height: 90 });
    sourceFrames = (await frameIndices(clip)).length;
    const { input, probe } = await probeSource(clip);
    const plan = segmentPlan(2);
    const chunks = chunksStartingAt(plan, probe.duration, [0, 5, 10]);
    expect(chunks.map((c) => c.fromSeconds)).toEqual([0, 9, 19]);
    // The lowest rung alone: the frame timing is the same in every rung, and it costs least.
    const rung = planLadder(probe)
      .filter((r) => r.kind === "VIDEO")
      .at(-1)!;
    const signal = new AbortController().signal;
    const encode = async (name: string, args: Partial<EncodeLadderArgs>) => {
      const workDir = path.join(ntscRoot, name);
      await encodeLadder({ input, probe, ladder: [rung], workDir, segmentSeconds: 2, signal, ...args }).done;
      return workDir;
    };
    for (const segmentFormat of FORMATS) {
      const file = (name: string) =>
        path.join(ntscRoot, `${segmentFormat}-${name}.${segmentFormat === "FMP4" ? "mp4" : "ts"}`);
      const oneDir = await encode(`${segmentFormat}-one`, { segmentFormat });
      const chunkDirs: string[] = [];
      for (const chunk of chunks)
        chunkDirs.push(await encode(`${segmentFormat}-chunk${chunk.index}`, { segmentFormat, ...chunkRange(chunk) }));
      ntsc.set(segmentFormat, {
        one: await joinRuns(file("one"), [oneDir], rung.name, segmentFormat),
        chunked: await joinRuns(file("chunked"), chunkDirs, rung.name, segmentFormat),
      });
    }
  }, 300_000);

  afterAll(async () => {
    if (ntscRoot) await rm(ntscRoot, { recursive: true, force: true });
  });

  it.each(FORMATS)("shows every source frame once and in order across the joins (%s)", async (format) => {
    const { chunked } = ntsc.get(format)!;
    expect(sourceFrames).toBe(Math.ceil((NTSC_SECONDS * 30_000) / 1001));
    expect(frameProblems(await frameIndices(chunked.file), sourceFrames)).toEqual([]);
  });

  it.each(FORMATS)(
    "keeps the one-process encode's timestamps, one frame interval apart across the joins (%s)",
    async (format) => {
      const { one, chunked } = ntsc.get(format)!;
      await expectReferenceTimeline(one, chunked, NTSC_STEP_SECONDS);
    },
  );

  it.each(FORMATS)(
    "cuts each segment where the one-process encode does: the frames whose source times fall in it (%s)",
    async (format) => {
      const { one, chunked } = ntsc.get(format)!;
      const starts = await expectReferenceSegments(one, chunked);
      // Segment i holds the source's frames from the first at or after its start: frame ⌈t·30000/1001⌉.
      const plan = segmentPlan(2);
      const firstFrames = starts.map((_, i) => Math.ceil((segmentStart(plan, i) * 30_000) / 1001 - 1e-9));
      const counts = firstFrames.map((first, i) => (firstFrames[i + 1] ?? sourceFrames) - first);
      expect(starts.map((s) => s.packets)).toEqual(counts);
    },
  );
});
