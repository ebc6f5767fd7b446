// Encoding benchmark (`npm run bench`): the worker's real encodeLadder on generated sources,
// printed as a table with each rung's SSIM and PSNR. Figures, not assertions: deploy/CAPACITY.md is
// computed from them.
//   npm run bench                                   20 s sources at 1080p, 720p and 2160p
//   npm run bench -- --seconds=10 --cases=1080p     a shorter run
//   npm run bench -- --quality-seconds=5            score only the first 5 s of each encode
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import cliProgress from "cli-progress";
import type { Rung } from "../src/protocol/messages.ts";
import { encodeLadder, ladderScaleGraph } from "../render-worker/media/encode-ladder.ts";
import type { VideoEncoder } from "../render-worker/media/nvenc.ts";
import { AUDIO_ENCODER_OPTIONS, planLadder, videoRateControl } from "../render-worker/media/ladder.ts";
import { probeNvenc } from "../render-worker/media/nvenc.ts";
import { encoderProgress } from "../render-worker/progress/job-progress.ts";
import { probeSource } from "../render-worker/media/probe.ts";
import { parseCommandLine, usageError } from "../src/protocol/command-line.ts";
import { type RungQuality, scoreLadder } from "./support/ladder-quality.ts";

const run = promisify(execFile);

const SOURCES: Record<string, { width: number; height: number }> = {
  "720p": { width: 1280, height: 720 },
  "1080p": { width: 1920, height: 1080 },
  "2160p": { width: 3840, height: 2160 },
};
const FPS = 30;
const SEGMENT_SECONDS = 4;
const RSS_POLL_MS = 100;

const USAGE = `usage: npm run bench [-- --seconds=<s> --cases=<${Object.keys(SOURCES).join(",")}> \
[--quality-seconds=<s> | --no-quality]]
Encodes generated sources with the worker's ladder and prints wall time, CPU time and peak memory,
then each rung's bitrate, SSIM and PSNR against the source scaled to the rung's size (not timed).
Defaults: --seconds=20 --cases=1080p,720p,2160p, quality scored over the whole clip.`;
const { values: flags } = parseCommandLine(USAGE, {
  allowNegative: true,
  options: {
    seconds: { type: "string", default: "20" },
    cases: { type: "string", default: "1080p,720p,2160p" },
    quality: { type: "boolean", default: true },
    "quality-seconds": { type: "string" },
  },
});
const seconds = Number(flags.seconds);
const qualitySeconds = flags["quality-seconds"] === undefined ? null : Number(flags["quality-seconds"]);
const cases = flags.cases.split(",").map((c) => c.trim());
for (const c of cases)
  if (!SOURCES[c]) usageError(USAGE, `Unknown case ${c}; known: ${Object.keys(SOURCES).join(", ")}`);
if (!(seconds > 0)) usageError(USAGE, `--seconds must be positive, got ${flags.seconds}`);
if (qualitySeconds !== null && !(qualitySeconds > 0))
  usageError(USAGE, `--quality-seconds must be positive, got ${flags["quality-seconds"]}`);

interface Row {
  source: string;
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

async function makeSource(dir: string, name: string): Promise<string> {
  const source = SOURCES[name];
  if (!source) throw new Error(`Unknown source ${name}`);
  const { width, height } = source;
  const file = path.join(dir, `source-${name}.mp4`);
  progress(`generating ${seconds} s of ${width}x${height} ${FPS} fps (testsrc2 + sine, H.264 + AAC)`);
  await run(
    "ffmpeg",
    [
      "-nostdin",
      "-hide_banner",
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${width}x${height}:rate=${FPS}:duration=${seconds}`,
      "-f",
      "lavfi",
      "-i",
      `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-crf",
      "18",
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
      "-b:a",
      "128k",
      file,
    ],
    { signal: interrupted.signal },
  );
  return file;
}

async function encodeOnce(
  source: string,
  ladder: Rung[],
  encoder: VideoEncoder,
  clockTicks: number,
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
  encoder: VideoEncoder,
  perRung: boolean,
  clockTicks: number,
): Promise<Row[]> {
  const ladder = planLadder((await probeSource(input)).probe);
  const rows: Row[] = [];
  progress(`${name}: ${encoder}, one process, ${ladder.length} rungs (${ladder.map((r) => r.name).join(" ")})`);
  const once = await encodeOnce(input, ladder, encoder, clockTicks);
  rows.push({
    source: name,
    mode: "one process",
    encoder,
    ladder,
    wallSeconds: once.wall,
    cpuSeconds: once.cpu,
    peakRssMiB: once.rss,
    quality: once.quality,
  });
  if (perRung) {
    progress(`${name}: ${encoder}, one process per rung, sequentially`);
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
      source: name,
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
  progress(`${name}: decode + scale + AAC, video outputs discarded (the CPU's share of an NVENC encode)`);
  const cpuShare = await measure(clockTicks, (workDir) => decodeAndScaleOnly(input, ladder, workDir));
  rows.push({
    source: name,
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
  return markdownTable(header, body, 3);
}

function qualityTable(rows: Row[]): string {
  const header = ["source", "mode", "encoder", "rung", "target kb/s", "kb/s", "SSIM", "PSNR dB"];
  const body = rows.flatMap((r) =>
    (r.quality ?? []).map((q) => {
      const rung = r.ladder.find((l) => l.name === q.rung);
      return [
        r.source,
        r.mode,
        r.encoder,
        q.rung,
        rung === undefined ? "n/a" : (videoRateControl(rung).bitrate / 1000).toFixed(0),
        q.measuredBitrate === null ? "n/a" : (q.measuredBitrate / 1000).toFixed(0),
        formatSsim(q.ssim),
        formatPsnr(q.psnr),
      ];
    }),
  );
  return markdownTable(header, body, 4);
}

/** Process per rung ÷ one process, in wall and CPU seconds, per source and encoder: above 1 the one process wins. */
function perRungRatios(rows: Row[]): string[] {
  return rows.flatMap((once) => {
    if (once.mode !== "one process") return [];
    const perRung = rows.find(
      (r) => r.mode === "process per rung" && r.source === once.source && r.encoder === once.encoder,
    );
    if (perRung === undefined) return [];
    const wall = (perRung.wallSeconds / once.wallSeconds).toFixed(2);
    const cpu = (perRung.cpuSeconds / once.cpuSeconds).toFixed(2);
    return [
      `${once.source} ${once.encoder}, process per rung ÷ one process: wall ${wall}×, CPU ${cpu}× ` +
        "(above 1: the one process is faster)",
    ];
  });
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
try {
  await mkdir(dir, { recursive: true });
  for (const name of cases) {
    const input = await makeSource(dir, name);
    rows.push(...(await benchSource(input, name, "libx264", name === "1080p", clockTicks)));
    if (nvenc) rows.push(...(await benchSource(input, name, "h264_nvenc", false, clockTicks)));
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
  `sources: ${seconds} s of lavfi testsrc2 + sine at ${FPS} fps (H.264 CRF 18 + AAC); HLS segments ` +
    `of ${SEGMENT_SECONDS} s; libx264 -preset veryfast`,
);
console.log(
  `h264_nvenc: ${nvenc ? "measured" : `not measured (probe failed: ${nvencReason.join("; ") || "no reason given"})`}`,
);
console.log("");
console.log(speedTable(rows));
console.log("");
for (const ratio of perRungRatios(rows)) console.log(ratio);
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
      "kb/s: the rung's segment bytes over its playlist's duration; mean SSIM/PSNR above: over the video rungs.",
  );
}
