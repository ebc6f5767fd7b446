// Cost of images made on request (`npm run bench:images`): the API's renderImage on HLS rungs of a
// generated camera-like clip (testsrc2 with temporal grain, as a sensor gives), one request at a
// time. Prints wall time, ffmpeg's CPU seconds and bytes made per thumbnail and animated preview,
// beside the request bounds and cache budgets they are weighed against. Figures, not assertions.
//   npm run bench:images                    12 s 720p clip, 3 runs per case
//   npm run bench:images -- --runs=1        quicker
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  ANIMATED_FPS,
  ANIMATED_WIDTH,
  type ImageRequest,
  MAX_ANIMATED_SECONDS,
  MAX_ANIMATED_WIDTH_SECONDS,
  parseAnimatedRequest,
  parseThumbnailRequest,
} from "../src/thumbnails/requests.ts";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const run = promisify(execFile);
const USAGE = `usage: npm run bench:images -- [--runs=N] [--seconds=S]
Makes a S-second 1280x720 30 fps clip with grain, encodes three HLS rungs (720p, 360p, 240p; x264,
4 s segments) and times the API's thumbnail and animated-preview renders on them, N runs per case.
Defaults: 3 runs, 12 s.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: { runs: { type: "string", default: "3" }, seconds: { type: "string", default: "12" } },
});
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { Parser } = await import("m3u8-parser");
const { loadEnv } = await import("../src/config.ts");
const { renderImage } = await import("../src/thumbnails/render-image.ts");
const runs = Number(flags.runs);
const seconds = Number(flags.seconds);
if (!(Number.isInteger(runs) && runs > 0 && seconds >= 10 && seconds <= 120)) {
  usageError(USAGE, "--runs must be a positive integer and --seconds 10 to 120");
}
const RUNGS = [
  { width: 1280, height: 720, bitrate: "3000k" },
  { width: 640, height: 360, bitrate: "800k" },
  { width: 426, height: 240, bitrate: "400k" },
];

/** CPU seconds of this process's children that have ended (what Linux adds up as they are reaped). */
function childrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // cutime and cstime: fields 16 and 17 of stat, in clock ticks (USER_HZ, 100).
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

interface Segment {
  file: string;
  start: number;
  duration: number;
}

async function encodeRungs(dir: string): Promise<Map<number, Segment[]>> {
  const source = `testsrc2=size=1280x720:rate=30:duration=${seconds},noise=alls=10:allf=t`;
  const split = `[0:v]split=${RUNGS.length}${RUNGS.map((_, i) => `[s${i}]`).join("")}`;
  const scales = RUNGS.map((r, i) => `[s${i}]scale=${r.width}:${r.height}[v${i}]`).join(";");
  const outputs = RUNGS.flatMap((r, i) => [
    ...["-map", `[v${i}]`, "-c:v", "libx264", "-preset", "veryfast", "-b:v", r.bitrate, "-pix_fmt", "yuv420p"],
    ...["-force_key_frames", "expr:gte(t,n_forced*4)", "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod"],
    ...["-hls_segment_filename", path.join(dir, `${r.height}-%03d.ts`), path.join(dir, `${r.height}.m3u8`)],
  ]);
  await run("ffmpeg", [
    "-v",
    "error",
    "-f",
    "lavfi",
    "-i",
    source,
    "-filter_complex",
    `${split};${scales}`,
    ...outputs,
  ]);
  const rungs = new Map<number, Segment[]>();
  for (const r of RUNGS) {
    const parser = new Parser();
    parser.push(await readFile(path.join(dir, `${r.height}.m3u8`), "utf8"));
    parser.end();
    let start = 0;
    rungs.set(
      r.width,
      parser.manifest.segments.map((s) => {
        const segment = { file: path.join(dir, s.uri), start, duration: s.duration };
        start += s.duration;
        return segment;
      }),
    );
  }
  return rungs;
}

/** One render as the API makes it: the smallest rung at least as wide, the segments that hold the range. */
async function measure(rungs: Map<number, Segment[]>, request: ImageRequest, dir: string) {
  const width = [...rungs.keys()].sort((a, b) => a - b).find((w) => w >= request.width) ?? RUNGS[0]!.width;
  const segments = rungs.get(width)!;
  const from = (request.kind === "thumbnail" ? request.timeMs : request.startMs) / 1000;
  const to = request.kind === "thumbnail" ? from : request.endMs / 1000;
  const picked = segments.filter((s) => s.start + s.duration > from && s.start <= to);
  const outFile = path.join(dir, request.kind === "thumbnail" ? "image.jpg" : `image.${request.format}`);
  const cpu0 = childrenCpuSeconds();
  const t0 = performance.now();
  await renderImage({
    request,
    segments: picked.map(
      (s) =>
        async function* () {
          yield await readFile(s.file);
        },
    ),
    format: "mpegts",
    offsetSeconds: from - picked[0]!.start,
    outFile,
  });
  const wall = (performance.now() - t0) / 1000;
  return { wall, cpu: childrenCpuSeconds() - cpu0, bytes: (await stat(outFile)).size, rungWidth: width };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const parsed = <T>(r: T | { problem: string }): T => {
  if (typeof r === "object" && r !== null && "problem" in r) throw new Error(r.problem);
  return r as T;
};
const q = (params: Record<string, string>) => new URLSearchParams(params);

const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-images-"));
try {
  const env = loadEnv({ NODE_ENV: "test" });
  console.log(`Encoding a ${seconds} s 720p clip with grain into 3 HLS rungs…`);
  const rungs = await encodeRungs(dir);
  const cases: [string, ImageRequest][] = [
    ["thumbnail, default 320 px", parsed(parseThumbnailRequest(q({ time: "5" }), seconds))],
    ["thumbnail, 1920 px (max)", parsed(parseThumbnailRequest(q({ time: "5", width: "1920" }), seconds))],
    ["webp, defaults (240 px, 3 s)", parsed(parseAnimatedRequest(q({ start: "2" }), "webp", seconds))],
    ["gif, defaults (240 px, 3 s)", parsed(parseAnimatedRequest(q({ start: "2" }), "gif", seconds))],
    [
      "webp, 320 px × 5 s (max)",
      parsed(parseAnimatedRequest(q({ start: "2", end: "7", width: "320" }), "webp", seconds)),
    ],
    [
      "gif, 320 px × 5 s (max)",
      parsed(parseAnimatedRequest(q({ start: "2", end: "7", width: "320" }), "gif", seconds)),
    ],
    [
      "gif, 480 px × 3.3 s (max)",
      parsed(parseAnimatedRequest(q({ start: "2", end: "5.3", width: "480" }), "gif", seconds)),
    ],
    // What one request could ask for before the bounds (10 s, 640 px), now refused with a 400.
    ["gif, 640 px × 10 s (old max)", { kind: "animated", format: "gif", startMs: 1000, endMs: 11_000, width: 640 }],
  ];
  console.log(
    `\nBounds: animated ≤ ${MAX_ANIMATED_SECONDS} s, ${ANIMATED_WIDTH.min}–${ANIMATED_WIDTH.max} px, width × s ≤ ` +
      `${MAX_ANIMATED_WIDTH_SECONDS}, ${ANIMATED_FPS} fps; per client 1 render at a time (4 waiting), 2 per API process.` +
      `\nCache budgets: ${(env.IMAGE_CACHE_BYTES_PER_VIDEO / 1024 ** 2).toFixed(0)} MiB per video, ` +
      `${(env.IMAGE_CACHE_BYTES_PER_TENANT / 1024 ** 3).toFixed(1)} GiB per tenant, 500 images per video.\n`,
  );
  console.log(
    `${"case".padEnd(32)} ${"rung".padStart(6)} ${"wall s".padStart(8)} ${"CPU s".padStart(8)} ${"KiB".padStart(9)}  per-video budget holds`,
  );
  for (const [name, request] of cases) {
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await measure(rungs, request, dir));
    const bytes = median(results.map((r) => r.bytes));
    const fits = Math.min(500, Math.floor(env.IMAGE_CACHE_BYTES_PER_VIDEO / bytes));
    console.log(
      `${name.padEnd(32)} ${`${results[0]!.rungWidth}w`.padStart(6)} ${median(results.map((r) => r.wall))
        .toFixed(2)
        .padStart(8)} ` +
        `${median(results.map((r) => r.cpu))
          .toFixed(2)
          .padStart(8)} ${(bytes / 1024).toFixed(0).padStart(9)}  ${fits}`,
    );
  }
  console.log(
    `\n${os.cpus().length} × ${os.cpus()[0]?.model ?? "CPU"}, load ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
