// Encoding benchmark (`npm run bench`): the worker's real encodeLadder on generated sources (testsrc2
// and a camera-like one, bench/support/sources.ts), printed as a table with each rung's SSIM and PSNR,
// the sources side by side. Figures, not assertions: deploy/CAPACITY.md is computed from them.
//   npm run bench                                   20 s of each source at 1080p, 720p and 2160p
//   npm run bench -- --seconds=10 --cases=1080p     a shorter run
//   npm run bench -- --sources=camera               one source only
//   npm run bench -- --quality-seconds=5            score only the first 5 s of each encode
//   npm run bench -- --variants=threads-by-size     also a tuned one-process encode, before/after
//   npm run bench -- --no-before                    skip the encode with the settings of 2026-11-22
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import cliProgress from "cli-progress";
import type { Rung } from "../src/protocol/media-facts.ts";
import { type EncodeLadderArgs, encodeLadder } from "../render-worker/media/encode-ladder.ts";
import { LADDER_TUNING, type LadderTuning, ladderScaleGraph } from "../render-worker/media/rung-encoding.ts";
import type { VideoEncoder } from "../render-worker/media/nvenc.ts";
import { AUDIO_ENCODER_OPTIONS, planLadder, videoRateControl } from "../render-worker/media/ladder.ts";
import { probeNvenc } from "../render-worker/media/nvenc.ts";
import { encoderProgress } from "../render-worker/progress/job-progress.ts";
import { probeSource } from "../render-worker/media/probe.ts";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import { type RungQuality, scoreLadder } from "./support/ladder-quality.ts";
import {
  BENCH_SOURCE_NAMES,
  BENCH_SOURCES,
  type BenchSourceName,
  generateSource,
  MEZZANINE,
  parseSourceNames,
} from "./support/sources.ts";

const run = promisify(execFile);

/** The frame sizes of `--cases`; each is encoded from every source of `--sources`. */
const CASES: Record<string, { width: number; height: number }> = {
  "720p": { width: 1280, height: 720 },
  "1080p": { width: 1920, height: 1080 },
  "2160p": { width: 3840, height: 2160 },
};
const FPS = 30;
const SEGMENT_SECONDS = 4;
const RSS_POLL_MS = 100;

type Tuning = Pick<EncodeLadderArgs, "x264Threads" | "tuning">;

/** A change to the one-process libx264 encode, run beside the worker's settings with `--variants`. */
interface Variant {
  description: string;
  tuning(ladder: Rung[]): Tuning;
}

/**
 * The anchor: the worker's ladder command until 2026-11-22, run in the same process
 * as the worker's current one: each rung scaled from the rung above, every rung at libx264 veryfast.
 */
const BEFORE: LadderTuning = { scaling: "cascade", x264Options: () => ["-preset", "veryfast"] };
const BEFORE_MODE = "one process, before";

/** Quality within these of the anchor counts as equal: run-to-run noise of x264's threaded rate control. */
const SSIM_TOLERANCE = 0.001;
const PSNR_TOLERANCE_DB = 0.1;

const VARIANTS: Record<string, Variant> = {
  "threads-by-size": {
    description:
      "x264 threads per rung in proportion to its share of the ladder's pixels (at least 1), instead of each " +
      "rung's x264 taking about 1.5 threads per core",
    tuning(ladder) {
      const pixels = (r: Rung) => (r.width ?? 0) * (r.height ?? 0);
      const total = ladder.reduce((sum, r) => sum + pixels(r), 0);
      const cores = os.availableParallelism();
      return { x264Threads: (rung) => Math.max(1, Math.round((cores * pixels(rung)) / total)) };
    },
  },
  "two-threads": {
    description:
      "two x264 frame threads on every rung instead of about 1.5 per core each (3 on 2 cores): fewer threads " +
      "contending, each encode still off ffmpeg's main thread",
    tuning: () => ({ x264Threads: () => 2 }),
  },
  "superfast-small": {
    description:
      "the worker's settings, but libx264 superfast (no mbtree, no lookahead, diamond search) on the rungs from " +
      "540p to 240p: faster, and it scores lower and overshoots the small rungs' bitrates",
    tuning: () => ({
      tuning: {
        scaling: LADDER_TUNING.scaling,
        x264Options(rung, videoRungs) {
          const short = Math.min(rung.width ?? 0, rung.height ?? 0);
          if (short > 144 && short <= 540) return ["-preset", "superfast"];
          return LADDER_TUNING.x264Options(rung, videoRungs);
        },
      },
    }),
  },
};

const USAGE = `usage: npm run bench [-- --seconds=<s> --cases=<${Object.keys(CASES).join(",")}> \
--sources=<${BENCH_SOURCE_NAMES.join(",")}> [--quality-seconds=<s> | --no-quality] [--no-before] \
[--variants=<${Object.keys(VARIANTS).join(",")}>]]
Encodes generated sources with the worker's ladder and prints wall time, CPU time and peak memory,
then each rung's bitrate, SSIM and PSNR against the source scaled to the rung's size (not timed).
Each case (a frame size) is encoded from every source, printed side by side:
${BENCH_SOURCE_NAMES.map((name) => `  ${name}: ${BENCH_SOURCES[name].description}`).join("\n")}
"before" is the worker's libx264 command until 2026-11-22 (cascaded scaling, veryfast on every rung),
encoded in the same run; each rung's SSIM and PSNR are printed beside the worker's (--no-before skips it).
A variant is a tuned one-process libx264 encode printed beside the worker's settings (before/after).
Defaults: --seconds=20 --cases=1080p,720p,2160p --sources=${BENCH_SOURCE_NAMES.join(",")}, quality scored over
the whole clip, before encoded, no variants.`;
const { values: flags } = parseCommandLine(USAGE, {
  allowNegative: true,
  options: {
    seconds: { type: "string", default: "20" },
    cases: { type: "string", default: "1080p,720p,2160p" },
    sources: { type: "string", default: BENCH_SOURCE_NAMES.join(",") },
    quality: { type: "boolean", default: true },
    before: { type: "boolean", default: true },
    "quality-seconds": { type: "string" },
    variants: { type: "string", default: "" },
  },
});
const seconds = Number(flags.seconds);
const qualitySeconds = flags["quality-seconds"] === undefined ? null : Number(flags["quality-seconds"]);
const cases = flags.cases.split(",").map((c) => c.trim());
for (const c of cases) if (!CASES[c]) usageError(USAGE, `Unknown case ${c}; known: ${Object.keys(CASES).join(", ")}`);
let sourceNames: BenchSourceName[] = [];
try {
  sourceNames = parseSourceNames(flags.sources);
} catch (err) {
  usageError(USAGE, (err as Error).message);
}
const variants = flags.variants
  .split(",")
  .map((v) => v.trim())
  .filter(Boolean);
for (const v of variants)
  if (!VARIANTS[v]) usageError(USAGE, `Unknown variant ${v}; known: ${Object.keys(VARIANTS).join(", ")}`);
if (!(seconds > 0)) usageError(USAGE, `--seconds must be positive, got ${flags.seconds}`);
if (qualitySeconds !== null && !(qualitySeconds > 0))
  usageError(USAGE, `--quality-seconds must be positive, got ${flags["quality-seconds"]}`);

interface Row {
  /** The frame size, a key of CASES. */
  case: string;
  source: BenchSourceName;
  mode: string;
  encoder: VideoEncoder | "none";
  ladder: Rung[];
  wallSeconds: number;
  cpuSeconds: number;
  peakRssMiB: number | null;
  /** Per video rung; null when not scored (--no-quality, or no video encoded). */
  quality: RungQuality[] | null;
}

interface Measured {
  wall: number;
  cpu: number;
  rss: number | null;
  quality: RungQuality[] | null;
}

const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);

// Ctrl-C stops ffmpeg too (an aborted encode kills it) and still removes the generated files.
const interrupted = new AbortController();
process.once("SIGINT", () => interrupted.abort(new Error("interrupted")));

/** CPU seconds (user + system) of this process's reaped children, from /proc/self/stat. */
async function childCpuSeconds(clockTicks: number): Promise<number> {
  const stat = await readFile("/proc/self/stat", "utf8");
  // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / clockTicks;
}

/** Peak resident set (VmHWM) of the processes whose cwd is `dir`, polled until stopped. */
function watchPeakRss(dir: string): { stop(): number | null } {
  const peaks = new Map<string, number>();
  let polling = false;
  const timer = setInterval(async () => {
    if (polling) return;
    polling = true;
    try {
      for (const pid of await readdir("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          if ((await readlink(`/proc/${pid}/cwd`)) !== dir) continue;
          const kb = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
          if (kb) peaks.set(pid, Math.max(peaks.get(pid) ?? 0, Number(kb[1])));
        } catch {
          // The process exited between the listing and the read.
        }
      }
    } finally {
      polling = false;
    }
  }, RSS_POLL_MS);
  return {
    stop() {
      clearInterval(timer);
      return peaks.size ? Math.max(...peaks.values()) / 1024 : null;
    },
  };
}

/** Writes `source` at the size of case `name`; returns its path and its bitrate in bits per second. */
async function makeSource(
  dir: string,
  name: string,
  source: BenchSourceName,
): Promise<{ file: string; bitsPerSecond: number }> {
  const size = CASES[name];
  if (!size) throw new Error(`Unknown case ${name}`);
  progress(`generating ${seconds} s of ${source} at ${size.width}x${size.height} ${FPS} fps`);
  const file = await generateSource(dir, { source, seconds, fps: FPS, ...size }, interrupted.signal);
  return { file, bitsPerSecond: ((await stat(file)).size * 8) / seconds };
}

async function encodeOnce(
  source: string,
  ladder: Rung[],
  encoder: VideoEncoder,
  clockTicks: number,
  tuning: Tuning = {},
): Promise<Measured> {
  const { input, probe } = await probeSource(source);
  // On a terminal only (cli-progress draws nothing elsewhere): media seconds encoded, and speed.
  const bar = new cliProgress.SingleBar(
    {
      format: "  {bar} {value}/{total} s of media  {speed}× real time",
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let quality: RungQuality[] | null = null;
  const measured = await measure(
    clockTicks,
    async (workDir) => {
      const encode = encodeLadder({
        input,
        probe,
        ladder,
        workDir,
        segmentSeconds: SEGMENT_SECONDS,
        signal: interrupted.signal,
        encoder,
        ...tuning,
      });
      bar.start(Math.round(probe.duration), 0, { speed: "–" });
      const timer = setInterval(() => {
        const { outTimeSeconds, speed } = encoderProgress(encode.status());
        if (outTimeSeconds !== null)
          bar.update(Math.min(Math.round(outTimeSeconds), bar.getTotal()), {
            speed: speed === null ? "–" : speed.toFixed(2),
          });
      }, 500);
      try {
        await encode.done;
      } finally {
        clearInterval(timer);
        bar.stop();
      }
    },
    async (workDir) => {
      if (!flags.quality) return;
      progress(`  scoring ${ladder.map((r) => r.name).join(" ")} (SSIM, PSNR)`);
      quality = await scoreLadder({
        source,
        workDir,
        rungs: ladder,
        seconds: qualitySeconds,
        signal: interrupted.signal,
      });
    },
  );
  return { ...measured, quality };
}

/**
 * Runs `work` with ffmpeg's cwd in a fresh temp dir and measures it like an encode; then `inspect`
 * reads what it wrote, outside the figures, before the dir is removed.
 */
async function measure(
  clockTicks: number,
  work: (workDir: string) => Promise<unknown>,
  inspect: (workDir: string) => Promise<void> = async () => {},
): Promise<{ wall: number; cpu: number; rss: number | null }> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-"));
  try {
    const cpuBefore = await childCpuSeconds(clockTicks);
    const rss = watchPeakRss(workDir);
    const started = performance.now();
    let peakRss: number | null;
    try {
      await work(workDir);
    } finally {
      peakRss = rss.stop();
    }
    const wall = (performance.now() - started) / 1000;
    const cpu = (await childCpuSeconds(clockTicks)) - cpuBefore;
    await inspect(workDir);
    return { wall, cpu, rss: peakRss };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The same decode, filter graph and AAC encode as the ladder, with every video output thrown
 * away: what stays on the CPU when h264_nvenc does the video encoding.
 */
function decodeAndScaleOnly(input: string, ladder: Rung[], workDir: string): Promise<unknown> {
  const videoRungs = ladder.filter((r) => r.kind === "VIDEO");
  const args = [
    "-nostdin",
    "-hide_banner",
    "-v",
    "error",
    "-i",
    input,
    "-filter_complex",
    ladderScaleGraph(videoRungs),
  ];
  for (const i of videoRungs.keys()) args.push("-map", `[v${i}]`, "-f", "null", "-");
  if (ladder.some((r) => r.kind === "AUDIO")) args.push("-map", "0:a:0", ...AUDIO_ENCODER_OPTIONS, "-f", "null", "-");
  return run("ffmpeg", args, { cwd: workDir, signal: interrupted.signal });
}

async function benchSource(
  input: string,
  name: string,
  source: BenchSourceName,
  encoder: VideoEncoder,
  perRung: boolean,
  clockTicks: number,
): Promise<Row[]> {
  const ladder = planLadder((await probeSource(input)).probe);
  const rows: Row[] = [];
  const label = `${name} ${source}`;
  progress(`${label}: ${encoder}, one process, ${ladder.length} rungs (${ladder.map((r) => r.name).join(" ")})`);
  const once = await encodeOnce(input, ladder, encoder, clockTicks);
  rows.push({
    case: name,
    source,
    mode: "one process",
    encoder,
    ladder,
    wallSeconds: once.wall,
    cpuSeconds: once.cpu,
    peakRssMiB: once.rss,
    quality: once.quality,
  });
  if (encoder === "libx264" && flags.before) {
    progress(`${label}: ${encoder}, one process, before: the command until 2026-11-22 (cascade, veryfast)`);
    const before = await encodeOnce(input, ladder, encoder, clockTicks, { tuning: BEFORE });
    rows.push({
      case: name,
      source,
      mode: BEFORE_MODE,
      encoder,
      ladder,
      wallSeconds: before.wall,
      cpuSeconds: before.cpu,
      peakRssMiB: before.rss,
      quality: before.quality,
    });
  }
  for (const variantName of encoder === "libx264" ? variants : []) {
    const variant = VARIANTS[variantName];
    if (!variant) continue;
    progress(`${label}: ${encoder}, one process, ${variantName}: ${variant.description}`);
    const tuned = await encodeOnce(input, ladder, encoder, clockTicks, variant.tuning(ladder));
    rows.push({
      case: name,
      source,
      mode: `one process, ${variantName}`,
      encoder,
      ladder,
      wallSeconds: tuned.wall,
      cpuSeconds: tuned.cpu,
      peakRssMiB: tuned.rss,
      quality: tuned.quality,
    });
  }
  if (perRung) {
    progress(`${label}: ${encoder}, one process per rung, sequentially`);
    let wall = 0;
    let cpu = 0;
    let rss: number | null = null;
    const quality: RungQuality[] = [];
    for (const rung of ladder) {
      const r = await encodeOnce(input, [rung], encoder, clockTicks);
      wall += r.wall;
      cpu += r.cpu;
      if (r.rss !== null) rss = Math.max(rss ?? 0, r.rss);
      quality.push(...(r.quality ?? []));
    }
    rows.push({
      case: name,
      source,
      mode: "process per rung",
      encoder,
      ladder,
      wallSeconds: wall,
      cpuSeconds: cpu,
      peakRssMiB: rss,
      quality: flags.quality ? quality : null,
    });
  }
  if (encoder !== "libx264") return rows;
  progress(`${label}: decode + scale + AAC, video outputs discarded (the CPU's share of an NVENC encode)`);
  const cpuShare = await measure(clockTicks, (workDir) => decodeAndScaleOnly(input, ladder, workDir));
  rows.push({
    case: name,
    source,
    mode: "no video encode",
    encoder: "none",
    ladder,
    wallSeconds: cpuShare.wall,
    cpuSeconds: cpuShare.cpu,
    peakRssMiB: cpuShare.rss,
    quality: null,
  });
  return rows;
}

/** Mean of the rungs' figures; null when any rung lacks one. */
function meanOf(quality: RungQuality[] | null, figure: (q: RungQuality) => number | null): number | null {
  if (quality === null || quality.length === 0) return null;
  const values = quality.map(figure);
  if (values.some((v) => v === null)) return null;
  return (values as number[]).reduce((a, b) => a + b, 0) / values.length;
}

const formatSsim = (v: number | null): string => (v === null ? "n/a" : v.toFixed(4));
const formatPsnr = (v: number | null): string => (v === null ? "n/a" : v === Infinity ? "inf" : v.toFixed(2));

function speedTable(rows: Row[]): string {
  const header = [
    "case",
    "source",
    "mode",
    "encoder",
    "rungs",
    "wall s",
    "CPU s",
    "cores busy",
    "wall s / source min",
    "CPU s / source min",
    "realtime ×",
    "peak RSS MiB",
    "mean SSIM",
    "mean PSNR dB",
  ];
  const body = rows.map((r) => [
    r.case,
    r.source,
    r.mode,
    r.encoder,
    String(r.ladder.length),
    r.wallSeconds.toFixed(1),
    r.cpuSeconds.toFixed(1),
    (r.cpuSeconds / r.wallSeconds).toFixed(2),
    ((r.wallSeconds / seconds) * 60).toFixed(1),
    ((r.cpuSeconds / seconds) * 60).toFixed(1),
    (seconds / r.wallSeconds).toFixed(2),
    r.peakRssMiB === null ? "n/a" : r.peakRssMiB.toFixed(0),
    formatSsim(meanOf(r.quality, (q) => q.ssim)),
    formatPsnr(meanOf(r.quality, (q) => q.psnr)),
  ]);
  return markdownTable(header, body, 4);
}

/** The rows that are one measurement of every source: the same case, mode and encoder, in source order. */
function sameMeasurement(rows: Row[]): Row[][] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const key = `${r.case}\n${r.mode}\n${r.encoder}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => sourceNames.flatMap((name) => g.filter((r) => r.source === name)));
}

/**
 * Per case, mode and encoder, each source's speed and mean quality side by side, and each later
 * source's wall and CPU time over the first's (how much dearer that content is to encode).
 */
function sourcesTable(rows: Row[]): string {
  const [first, ...others] = sourceNames;
  const header = [
    "case",
    "mode",
    "encoder",
    ...sourceNames.flatMap((name) => [
      `${name} wall s`,
      `${name} CPU s`,
      `${name} realtime ×`,
      `${name} SSIM`,
      `${name} PSNR dB`,
    ]),
    ...others.flatMap((name) => [`wall ${name} ÷ ${first}`, `CPU ${name} ÷ ${first}`]),
  ];
  const body = sameMeasurement(rows).map((group) => {
    const like = group[0] as Row;
    const of = (name: BenchSourceName) => group.find((r) => r.source === name);
    const ratio = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined ? "n/a" : `${(a / b).toFixed(2)}×`;
    const base = of(first as BenchSourceName);
    return [
      like.case,
      like.mode,
      like.encoder,
      ...sourceNames.flatMap((name) => {
        const r = of(name);
        if (r === undefined) return ["n/a", "n/a", "n/a", "n/a", "n/a"];
        return [
          r.wallSeconds.toFixed(1),
          r.cpuSeconds.toFixed(1),
          (seconds / r.wallSeconds).toFixed(2),
          formatSsim(meanOf(r.quality, (q) => q.ssim)),
          formatPsnr(meanOf(r.quality, (q) => q.psnr)),
        ];
      }),
      ...others.flatMap((name) => [
        ratio(of(name)?.wallSeconds, base?.wallSeconds),
        ratio(of(name)?.cpuSeconds, base?.cpuSeconds),
      ]),
    ];
  });
  return markdownTable(header, body, 3);
}

/** One row per case, mode, encoder and video rung: each source's bits written, SSIM and PSNR side by side. */
function qualityTable(rows: Row[]): string {
  const header = [
    "case",
    "mode",
    "encoder",
    "rung",
    "target kb/s",
    ...sourceNames.flatMap((name) => [`${name} kb/s`, `${name} SSIM`, `${name} PSNR dB`]),
  ];
  const body = sameMeasurement(rows).flatMap((group) => {
    const like = group[0] as Row;
    const rungs = [...new Set(group.flatMap((r) => (r.quality ?? []).map((q) => q.rung)))];
    return rungs.map((rungName) => {
      const rung = like.ladder.find((l) => l.name === rungName);
      return [
        like.case,
        like.mode,
        like.encoder,
        rungName,
        rung === undefined ? "n/a" : (videoRateControl(rung).bitrate / 1000).toFixed(0),
        ...sourceNames.flatMap((name) => {
          const q = group.find((r) => r.source === name)?.quality?.find((x) => x.rung === rungName);
          if (q === undefined) return ["n/a", "n/a", "n/a"];
          return [
            q.measuredBitrate === null ? "n/a" : (q.measuredBitrate / 1000).toFixed(0),
            formatSsim(q.ssim),
            formatPsnr(q.psnr),
          ];
        }),
      ];
    });
  });
  return markdownTable(header, body, 4);
}

/**
 * Per case, source and encoder: process per rung ÷ each one-process mode in wall and CPU seconds (above 1
 * the one process is faster), the worker's settings against the settings before (after ÷ before), and
 * each variant against the worker's settings, speed and quality.
 */
function comparisons(rows: Row[]): string[] {
  const find = (mode: string, like: Row) =>
    rows.find((r) => r.mode === mode && r.case === like.case && r.source === like.source && r.encoder === like.encoder);
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  const change = (after: Row, before: Row, label: string) =>
    `${after.case} ${after.source} ${after.encoder}, ${label}: wall ` +
    `${ratio(after.wallSeconds, before.wallSeconds)}, CPU ${ratio(after.cpuSeconds, before.cpuSeconds)}, ` +
    `realtime ${(seconds / before.wallSeconds).toFixed(2)}× → ${(seconds / after.wallSeconds).toFixed(2)}×; ` +
    qualityChange(before.quality, after.quality);
  return rows.flatMap((row) => {
    if (!row.mode.startsWith("one process")) return [];
    const lines: string[] = [];
    const perRung = find("process per rung", row);
    if (perRung !== undefined)
      lines.push(
        `${row.case} ${row.source} ${row.encoder}, process per rung ÷ ${row.mode}: wall ` +
          `${ratio(perRung.wallSeconds, row.wallSeconds)}, CPU ${ratio(perRung.cpuSeconds, row.cpuSeconds)}`,
      );
    const worker = find("one process", row);
    const before = find(BEFORE_MODE, row);
    if (row === worker && before !== undefined)
      lines.push(change(row, before, "one process ÷ one process, before (after ÷ before)"));
    else if (worker !== undefined && row !== worker && row !== before)
      lines.push(change(row, worker, `${row.mode} ÷ one process (after ÷ before)`));
    return lines;
  });
}

/**
 * Each video rung of the settings before and of the worker's, side by side, per case and source: SSIM and
 * PSNR, their change, and whether the worker's is equal (within the tolerances) or better.
 */
function beforeAfterTable(rows: Row[]): string | null {
  const body = rows.flatMap((after) => {
    if (after.mode !== "one process") return [];
    const before = rows.find(
      (r) =>
        r.mode === BEFORE_MODE && r.case === after.case && r.source === after.source && r.encoder === after.encoder,
    );
    if (before?.quality == null || after.quality === null) return [];
    return after.quality.map((a) => {
      const b = before.quality?.find((q) => q.rung === a.rung);
      const delta = (x: number | null | undefined, y: number | null, digits: number) =>
        x == null || y === null ? "n/a" : `${y - x >= 0 ? "+" : ""}${(y - x).toFixed(digits)}`;
      const kept =
        b?.ssim == null || b.psnr == null || a.ssim === null || a.psnr === null
          ? "n/a"
          : a.ssim >= b.ssim - SSIM_TOLERANCE && a.psnr >= b.psnr - PSNR_TOLERANCE_DB
            ? "yes"
            : "NO";
      return [
        after.case,
        after.source,
        a.rung,
        b?.measuredBitrate == null ? "n/a" : (b.measuredBitrate / 1000).toFixed(0),
        a.measuredBitrate === null ? "n/a" : (a.measuredBitrate / 1000).toFixed(0),
        formatSsim(b?.ssim ?? null),
        formatSsim(a.ssim),
        delta(b?.ssim, a.ssim, 4),
        formatPsnr(b?.psnr ?? null),
        formatPsnr(a.psnr),
        delta(b?.psnr, a.psnr, 2),
        kept,
      ];
    });
  });
  if (body.length === 0) return null;
  const header = [
    "case",
    "source",
    "rung",
    "kb/s before",
    "kb/s after",
    "SSIM before",
    "SSIM after",
    "Δ SSIM",
    "PSNR before",
    "PSNR after",
    "Δ dB",
    "equal or better",
  ];
  return markdownTable(header, body, 3);
}

/** Mean and worst per-rung change of SSIM and PSNR from `before` to `after`, and of the bits written. */
function qualityChange(before: RungQuality[] | null, after: RungQuality[] | null): string {
  if (before === null || after === null) return "quality not scored";
  const deltas = after.flatMap((a) => {
    const b = before.find((q) => q.rung === a.rung);
    if (b?.ssim == null || b.psnr == null || a.ssim === null || a.psnr === null) return [];
    return [{ rung: a.rung, ssim: a.ssim - b.ssim, psnr: a.psnr - b.psnr }];
  });
  if (deltas.length === 0) return "quality not comparable";
  const signed = (v: number, digits: number) => {
    const shown = v.toFixed(digits);
    return Number(shown) === 0 ? `±${Math.abs(v).toFixed(digits)}` : `${v > 0 ? "+" : ""}${shown}`;
  };
  const mean = (f: (d: (typeof deltas)[number]) => number) => deltas.reduce((sum, d) => sum + f(d), 0) / deltas.length;
  const worst = deltas.reduce((w, d) => (d.psnr < w.psnr ? d : w));
  const bits = (quality: RungQuality[]) => quality.reduce((sum, q) => sum + (q.measuredBitrate ?? 0), 0);
  return (
    `SSIM ${signed(
      mean((d) => d.ssim),
      4,
    )}, PSNR ${signed(
      mean((d) => d.psnr),
      2,
    )} dB (mean over rungs); ` +
    `worst rung ${worst.rung}: SSIM ${signed(worst.ssim, 4)}, PSNR ${signed(worst.psnr, 2)} dB; ` +
    `bits written ${signed((bits(after) / bits(before) - 1) * 100, 1)} %`
  );
}

/** A Markdown table, the first `leftColumns` columns left-aligned and the rest right-aligned. */
function markdownTable(header: string[], body: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (i < leftColumns ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`,
    ...body.map(line),
  ].join("\n");
}

const clockTicks = Number((await run("getconf", ["CLK_TCK"])).stdout.trim()) || 100;
const ffmpegVersion = (await run("ffmpeg", ["-hide_banner", "-version"])).stdout.split("\n")[0];
const nvencReason: string[] = [];
const nvenc = await probeNvenc({ onFailure: (reason) => nvencReason.push(reason) });
const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-src-"));
const rows: Row[] = [];
const startedAt = new Date();
// Anything else running on the machine slows the wall-clock figures: printed to judge them by.
const loadAverage = (): number => os.loadavg()[0] ?? 0;
const loadAtStart = loadAverage();
/** Each generated source's bitrate, by case and source. */
const mezzanineBits = new Map<string, number>();
try {
  await mkdir(dir, { recursive: true });
  for (const name of cases) {
    for (const source of sourceNames) {
      const { file, bitsPerSecond } = await makeSource(dir, name, source);
      mezzanineBits.set(`${name} ${source}`, bitsPerSecond);
      rows.push(...(await benchSource(file, name, source, "libx264", name === "1080p", clockTicks)));
      if (nvenc) rows.push(...(await benchSource(file, name, source, "h264_nvenc", false, clockTicks)));
      // A camera-like source is large (its grain barely compresses): one on disk at a time.
      await rm(file, { force: true });
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

console.log(`videograph encode benchmark, ${startedAt.toISOString()}`);
console.log(
  `machine: ${os.availableParallelism()} cores ` +
    `(${os.cpus()[0]?.model ?? "unknown CPU"}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} ` +
    `GiB, ${os.platform()} ${os.release()}`,
);
console.log(`${ffmpegVersion}; node ${process.version}`);
console.log(
  `1-minute load average: ${loadAtStart.toFixed(2)} at start, ${loadAverage().toFixed(2)} at end (other processes ` +
    `compete for the cores above ~0.1)`,
);
console.log(
  `sources: ${seconds} s at ${FPS} fps, written as ${MEZZANINE}; HLS segments of ${SEGMENT_SECONDS} s; ` +
    "libx264 -preset veryfast",
);
for (const source of sourceNames) console.log(`  ${source}: ${BENCH_SOURCES[source].description}`);
console.log(
  `  generated, Mb/s: ${[...mezzanineBits].map(([label, bits]) => `${label} ${(bits / 1e6).toFixed(1)}`).join(", ")}`,
);
console.log(
  `h264_nvenc: ${nvenc ? "measured" : `not measured (probe failed: ${nvencReason.join("; ") || "no reason given"})`}`,
);
console.log("");
console.log(speedTable(rows));
if (sourceNames.length > 1) {
  console.log("");
  console.log(sourcesTable(rows));
  console.log("");
  console.log(
    `The same encodes by source, side by side; ${sourceNames.slice(1).join(", ")} ÷ ${sourceNames[0]}: its time ` +
      "over the first source's (above 1: that content is dearer). Every mode includes decoding the generated file, " +
      "which costs more the more bits it holds (Mb/s above).",
  );
}
console.log("");
for (const line of comparisons(rows)) console.log(line);
console.log(
  "wall s / source min: seconds of encoding per minute of source; cores busy: CPU s / wall s (ffmpeg's user " +
    "+ system time).",
);
console.log(
  "no video encode: the same decode, filter graph and AAC with the video outputs discarded, i.e. the work left on " +
    "the CPU when h264_nvenc encodes.",
);
if (flags.quality) {
  console.log("");
  console.log(qualityTable(rows));
  console.log("");
  console.log(
    `SSIM (All) and PSNR (average over Y, U, V) of each rung's HLS output against the source scaled to the rung's ` +
      `size (bicubic), over ${qualitySeconds === null ? "the whole clip" : `the first ${qualitySeconds} s`}; ` +
      "kb/s: the rung's segment bytes over its playlist's duration; mean SSIM/PSNR above: over the video rungs. " +
      "Against a grainy source, the grain a rung's bitrate cannot keep lowers its score.",
  );
  const sideBySide = beforeAfterTable(rows);
  if (sideBySide !== null) {
    console.log("");
    console.log(sideBySide);
    console.log("");
    console.log(
      `before: the worker's libx264 command until 2026-11-22 (each rung scaled from the one above, veryfast on ` +
        `every rung); after: the worker's command now. Equal or better: SSIM at least before − ${SSIM_TOLERANCE} ` +
        `and PSNR at least before − ${PSNR_TOLERANCE_DB} dB (run-to-run noise of x264's threaded rate control).`,
    );
  }
}
