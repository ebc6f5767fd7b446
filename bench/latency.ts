// Time to first frame (`npm run bench:latency`): uploads a clip of each source N times to the embedded stack
// and prints each step's time up to `playable`, then READY, beside the goals and ffmpeg alone on the same clip
// (docs/media-pipeline.md, "Time to first frame").
//   npm run bench:latency                               5 runs of a 60 s 1080p clip of each source
//   npm run bench:latency -- --runs=2 --seconds=10      a quick look
//   DATABASE_URL=postgresql://…  that server (a fresh database); default: 127.0.0.1:5432, else embedded.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, watch } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import { RUNG_PLAYLIST } from "../src/protocol/storage-layout.ts";
import { ADMIN_AUTH } from "../test/support/auth.ts";
import {
  BENCH_SOURCE_NAMES,
  BENCH_SOURCES,
  type BenchSourceName,
  generateSource,
  MEZZANINE,
  parseSourceNames,
} from "./support/sources.ts";
import type { PlannedRung } from "../render-worker/media/ladder.ts";

const USAGE = `usage: npm run bench:latency -- [--runs=N] [--seconds=S] [--height=H] \
[--sources=<${BENCH_SOURCE_NAMES.join(",")}>]
Uploads a generated S s clip of height H (16:9) of each source N times, one after another (the sources
in turn), to the embedded stack started here and prints, per source, the median, min and max time from
the upload's last byte to each step up to the playable event, to the poster (made after it) and to
READY, beside the goals, ffmpeg alone on the same clip (with the worker's short first segment, with a
full-length one, and with the poster and storyboard outputs) and half the duration, and the CPU the
ladder's ffmpeg, the API process and Postgres used until playable; then each source's medians side by side. The sources:
${BENCH_SOURCE_NAMES.map((name) => `  ${name}: ${BENCH_SOURCES[name].description}`).join("\n")}
Defaults: 5 runs, 60 s, 1080, --sources=${BENCH_SOURCE_NAMES.join(",")}.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    runs: { type: "string", default: "5" },
    seconds: { type: "string", default: "60" },
    height: { type: "string", default: "1080" },
    sources: { type: "string", default: BENCH_SOURCE_NAMES.join(",") },
  },
});
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { createClient } = await import("graphql-ws");
const { default: pg } = await import("pg");
const { default: WebSocket } = await import("ws");
const { encodeLadder } = await import("../render-worker/media/encode-ladder.ts");
const { planLadder } = await import("../render-worker/media/ladder.ts");
const { planPoster } = await import("../render-worker/media/poster.ts");
const { planStoryboard } = await import("../render-worker/media/storyboard.ts");
const { probeSource } = await import("../render-worker/media/probe.ts");
const { cpuSecondsOf, ffmpegUnder, listProcesses, processesWithCwd } = await import("../test/support/process-scan.ts");
const { startApiProcess, stopAllProcesses } = await import("../test/support/processes.ts");
const { CREATE_UPLOAD, postGraphQL, benchDatabase } = await import("./support/stack.ts");
const runs = Number(flags.runs);
const clipSeconds = Number(flags.seconds);
const height = Number(flags.height);
if (!Number.isInteger(runs) || runs < 1 || !(clipSeconds > 0) || !Number.isInteger(height) || height < 16) {
  usageError(USAGE, "--runs must be a positive integer, --seconds positive, --height an integer of 16 or more");
}
const width = 2 * Math.round((height * 16) / 9 / 2);
let sourceNames: BenchSourceName[] = [];
try {
  sourceNames = parseSourceNames(flags.sources);
} catch (err) {
  usageError(USAGE, (err as Error).message);
}

/** Mux's median time to publish: the goal for the first rung. */
const GOAL_SECONDS = 2.0;
/** The goal for the whole ladder of the 60 s 1080p clip: READY this long after the last byte. */
const READY_GOAL_SECONDS = 50;
/** The API's default HLS_SEGMENT_SECONDS, which the stack started here keeps. */
const SEGMENT_SECONDS = 4;
/** How often files and playlists are looked at: the error this adds to a step. */
const POLL_MS = 10;
/** A camera-like 60 s 1080p clip takes minutes to READY on a loaded 2-core machine. */
const RUN_TIMEOUT_MS = 600_000;

const log = (line: string) => process.stderr.write(`[latency] ${line}\n`);

const STEPS = [
  "job dispatched",
  "worker started",
  "probed",
  "ladder encode started",
  "first segment written",
  "every rung's first segment",
  "master published",
  "playable event received",
] as const;
type Step = (typeof STEPS)[number];
/** When each step happened, as Date.now(), in one run; the poster is made off the path, after playable. */
type Timeline = Record<Step, number> & { lastByte: number; posterPublished: number; ready: number; cpu: StackCpu };

/** Resolves with `check()`'s first truthy answer, asked every POLL_MS; rejects after `timeoutMs`. */
async function pollUntil<T>(check: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> {
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > giveUpAt) throw new Error(`no ${what} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Whether a playlist exists and lists at least one segment. */
async function listsSegment(playlist: string): Promise<boolean> {
  const text = await readFile(playlist, "utf8").catch(() => "");
  return text.includes("#EXTINF");
}

/**
 * When the rungs' playlists in `jobDir` list a segment: the first of them, then every one. Each
 * list is read again on its dir's file events (ffmpeg renames a list into place), with a 100 ms
 * poll behind them: the watch costs next to no CPU between events, so it takes none from the
 * encode it times. The rungs' dirs must exist.
 */
function watchRungLists(
  jobDir: string,
  rungs: string[],
): { first: Promise<number>; every: Promise<number>; close(): void } {
  const listed = new Set<string>();
  let first = (_at: number) => {};
  let every = (_at: number) => {};
  const firstAt = new Promise<number>((resolve) => (first = resolve));
  const everyAt = new Promise<number>((resolve) => (every = resolve));
  const check = async (rung: string) => {
    if (listed.has(rung) || !(await listsSegment(path.join(jobDir, rung, RUNG_PLAYLIST))) || listed.has(rung)) return;
    const now = Date.now();
    listed.add(rung);
    if (listed.size === 1) first(now);
    if (listed.size === rungs.length) {
      every(now);
      close();
    }
  };
  const watchers = rungs.map((rung) =>
    watch(path.join(jobDir, rung), (_event, name) => {
      if (name?.startsWith(RUNG_PLAYLIST)) void check(rung);
    }),
  );
  const poll = setInterval(() => rungs.forEach((rung) => void check(rung)), 100);
  const close = () => {
    clearInterval(poll);
    for (const watcher of watchers) watcher.close();
  };
  for (const rung of rungs) void check(rung);
  return { first: firstAt, every: everyAt, close };
}

/**
 * Watches one upload's files: in the worker's temp dir, when the ladder's encode started (its rung
 * dirs appeared) and when ffmpeg's playlists first list a segment (of any rung, then of all of
 * `rungs`: `watchRungLists`, as for ffmpeg alone); in local storage, when the master playlist
 * appeared. Until the rung dirs appear it polls a dir or two every POLL_MS.
 */
async function watchFiles(opts: { dataDir: string; workerTmpDir: string; videoId: string; rungs: string[] }) {
  const masterFile = path.join(opts.dataDir, "videos", opts.videoId, "hls", "master.m3u8");
  const seen: { encodeStarted?: number; firstSegment?: number; everyRung?: number; master?: number } = {};
  // {worker root}/{job dir}: the job dir of an earlier run may still be there while its worker cleans up.
  // Read synchronously, as the master's presence below: a loop of promises every 10 ms costs the
  // 2-core machine a few per cent of a core, taken from the encode it times.
  const entries = (dir: string): string[] => {
    try {
      return readdirSync(dir).map((entry) => path.join(dir, entry));
    } catch {
      return []; // not there yet, or cleaned up meanwhile
    }
  };
  const jobDirs = () => entries(opts.workerTmpDir).flatMap(entries);
  const earlier = new Set(jobDirs());
  let jobDir: string | null = null;
  let lists: ReturnType<typeof watchRungLists> | null = null;
  let stopped = false;
  const done = (async () => {
    // Until both are seen: the master may come before every rung's list.
    while (!stopped && (seen.master === undefined || seen.everyRung === undefined)) {
      const now = Date.now();
      // The worker takes one job at a time: the only new job dir is this upload's.
      jobDir ??= jobDirs().find((dir) => !earlier.has(dir)) ?? null;
      // encodeLadder makes the rung dirs just before it starts ffmpeg.
      if (jobDir !== null && lists === null && opts.rungs.every((r) => existsSync(path.join(jobDir!, r)))) {
        seen.encodeStarted = now;
        lists = watchRungLists(jobDir, opts.rungs);
        void lists.first.then((at) => (seen.firstSegment = at));
        void lists.every.then((at) => (seen.everyRung = at));
      }
      if (seen.master === undefined && existsSync(masterFile)) seen.master = now;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  return {
    seen,
    async stop() {
      stopped = true;
      await done;
      lists?.close();
    },
  };
}

/** The time of the first record of the API's log (worker records included) with `message` about `jobId`. */
function loggedAt(serviceLog: string, msg: string | RegExp, jobId: string): number | null {
  for (const line of serviceLog.split("\n")) {
    if (!line.startsWith("{") || !line.includes(jobId)) continue;
    let record: { time?: string; message?: string; jobId?: string };
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    const matches = typeof msg === "string" ? record.message === msg : msg.test(record.message ?? "");
    if (record.jobId === jobId && matches && record.time) return Date.parse(record.time);
  }
  return null;
}

/**
 * ffmpeg alone: the worker's own ladder command (encodeLadder, the same ladder and segment settings)
 * on the same source, timed from its start until every rung's playlist lists a segment, in wall
 * and in ffmpeg's CPU seconds. With `firstSegmentSeconds`, a first segment of that length instead
 * of the worker's.
 */
async function ffmpegAloneMs(
  source: string,
  ladder: PlannedRung[],
  scratch: string,
  options: { firstSegmentSeconds?: number; images?: boolean } = {},
): Promise<{ ms: number; cpuSeconds: number }> {
  const workDir = await mkdtemp(path.join(scratch, "ffmpeg-alone-"));
  const controller = new AbortController();
  let encode: ReturnType<typeof encodeLadder> | undefined;
  let lists: ReturnType<typeof watchRungLists> | undefined;
  try {
    const { input, probe } = await probeSource(source);
    // `images`: the poster and storyboard outputs a whole run's ladder process carries beside the rungs.
    const images = options.images && probe.width !== null && probe.height !== null ? probe : null;
    const storyboardDir = path.join(workDir, "storyboard");
    if (images) await mkdir(storyboardDir);
    const started = Date.now();
    encode = encodeLadder({
      input,
      probe,
      ladder,
      workDir,
      segmentSeconds: SEGMENT_SECONDS,
      ...(options.firstSegmentSeconds !== undefined ? { firstSegmentSeconds: options.firstSegmentSeconds } : {}),
      ...(images
        ? {
            poster: { plan: planPoster(probe), outFile: path.join(workDir, "poster.jpg") },
            storyboard: {
              plan: planStoryboard({ duration: probe.duration, width: images.width!, height: images.height! }),
              outDir: storyboardDir,
            },
          }
        : {}),
      signal: controller.signal,
    });
    // encodeLadder makes the rung dirs before it starts ffmpeg.
    const rungs = ladder.map((rung) => rung.name);
    await pollUntil(
      async () => rungs.every((r) => existsSync(path.join(workDir, r))) || null,
      RUN_TIMEOUT_MS,
      "rung dirs from ffmpeg alone",
    );
    lists = watchRungLists(workDir, rungs);
    const everyRungListsOne = withTimeout(
      lists.every.then((at) => ({ ms: at - started, cpuSeconds: cpuSecondsIn(workDir) })),
      "first segment of every rung from ffmpeg alone",
    );
    return await Promise.race([everyRungListsOne, encode.done.then(() => everyRungListsOne)]);
  } finally {
    lists?.close();
    controller.abort();
    await encode?.done.catch(() => {});
    await rm(workDir, { recursive: true, force: true });
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2).padStart(6)} s`;

/** CPU seconds (user + system) the processes working in `dir` have used so far: less load-sensitive than wall time. */
const cpuSecondsIn = (dir: string): number => cpuSecondsOf(processesWithCwd(dir));

/** Where the CPU went while a video became playable: CPU seconds of each part of the stack. */
interface StackCpu {
  /** The API process, its local worker in it (the segment watch and uploads, the events). */
  api: number;
  /** The worker's ffmpeg processes. */
  ffmpeg: number;
  /** Every Postgres process on the machine (nothing else uses one in the benchmark's run). */
  postgres: number;
  /** This benchmark's own process: its file watch and subscription. */
  bench: number;
  /** The whole machine's busy CPU (/proc/stat): what the parts above leave is everything else. */
  machine: number;
}

/** CPU seconds the machine has spent busy since boot, all cores (/proc/stat: all but idle and iowait). */
function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8")
    .split("\n", 1)[0]!
    .trim()
    .split(/\s+/)
    .map(Number);
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / CLOCK_TICKS;
}
/** Linux's USER_HZ, in which /proc/stat counts: 100 on every architecture Node runs on. */
const CLOCK_TICKS = 100;

/** The CPU the stack's parts have used so far (ffmpeg: those running now under `workerTmpDir`). */
function stackCpu(apiPid: number, workerTmpDir: string): StackCpu {
  const all = listProcesses();
  const own = process.cpuUsage();
  return {
    api: cpuSecondsOf([apiPid]),
    ffmpeg: cpuSecondsOf(ffmpegUnder(workerTmpDir, all).map((p) => p.pid)),
    postgres: cpuSecondsOf(all.filter((p) => p.command === "postgres").map((p) => p.pid)),
    bench: (own.user + own.system) / 1e6,
    machine: machineBusySeconds(),
  };
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`not ${what} within ${RUN_TIMEOUT_MS / 1000} s`)), RUN_TIMEOUT_MS).unref(),
    ),
  ]);
}

function summary(values: number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** One source's clip and what its runs measured. */
interface SourceRuns {
  name: BenchSourceName;
  file: string;
  bytes: number;
  ladder: PlannedRung[];
  timelines: Timeline[];
  ffmpegAlone: { ms: number; cpuSeconds: number }[];
  ffmpegAloneFullFirst: { ms: number; cpuSeconds: number }[];
  /** The same command with the poster and storyboard outputs a whole run's ladder process carries. */
  ffmpegAloneWithImages: { ms: number; cpuSeconds: number }[];
}

/** One source's runs: each step after the last byte, the anchors, the poster and READY. */
function sourceReport(source: SourceRuns): string {
  const { timelines } = source;
  const rows = STEPS.map((step, i) => {
    const sinceLastByte = summary(timelines.map((t) => t[step] - t.lastByte));
    const previous = i === 0 ? "lastByte" : STEPS[i - 1]!;
    const stepTime = summary(timelines.map((t) => t[step] - t[previous]));
    return (
      `${step.padEnd(26)}${seconds(sinceLastByte.median)}  ${seconds(sinceLastByte.min)}  ` +
      `${seconds(sinceLastByte.max)}   ${seconds(stepTime.median)}`
    );
  });
  const total = summary(timelines.map((t) => t["playable event received"] - t.lastByte));
  const alone = summary(source.ffmpegAlone.map((a) => a.ms));
  const aloneFullFirst = summary(source.ffmpegAloneFullFirst.map((a) => a.ms));
  const aloneCpu = summary(source.ffmpegAlone.map((a) => a.cpuSeconds * 1000));
  const aloneFullFirstCpu = summary(source.ffmpegAloneFullFirst.map((a) => a.cpuSeconds * 1000));
  const aloneImages = summary(source.ffmpegAloneWithImages.map((a) => a.ms));
  const aloneImagesCpu = summary(source.ffmpegAloneWithImages.map((a) => a.cpuSeconds * 1000));
  const poster = summary(timelines.map((t) => t.posterPublished - t.lastByte));
  const others = (cpu: StackCpu) => cpu.machine - cpu.api - cpu.ffmpeg - cpu.postgres - cpu.bench;
  const cpuMedian = (part: keyof StackCpu | "others") =>
    `${summary(timelines.map((t) => (part === "others" ? others(t.cpu) : t.cpu[part]))).median.toFixed(2)} CPU s`;
  const ready = summary(timelines.map((t) => t.ready - t.lastByte));
  return `
source ${source.name}
${"after the last byte".padEnd(26)}${"median".padStart(8)}  ${"min".padStart(8)}  ${"max".padStart(8)}   \
${"step".padStart(8)}
${rows.join("\n")}

anchors (same run)
goal:        playable ≤ ${GOAL_SECONDS.toFixed(1)} s after the last byte \
(Mux's median time to publish, ${GOAL_SECONDS.toFixed(1)} s)
this stack:  median ${seconds(total.median)}  \
(min ${seconds(total.min).trim()}, max ${seconds(total.max).trim()})
ffmpeg alone (every rung lists a segment):  median ${seconds(alone.median)}  \
(min ${seconds(alone.min).trim()}, max ${seconds(alone.max).trim()}), CPU median ${seconds(aloneCpu.median).trim()}
  the same with a ${SEGMENT_SECONDS} s first segment:    median ${seconds(aloneFullFirst.median)}  \
(min ${seconds(aloneFullFirst.min).trim()}, max ${seconds(aloneFullFirst.max).trim()}), \
CPU median ${seconds(aloneFullFirstCpu.median).trim()}
  the same with the poster and storyboard outputs (the worker's whole command):  median ${seconds(aloneImages.median)}  \
(min ${seconds(aloneImages.min).trim()}, max ${seconds(aloneImages.max).trim()}), CPU median ${seconds(aloneImagesCpu.median).trim()}

where the CPU went from the last byte to playable (medians; the machine has ${os.cpus().length} × the wall time)
ffmpeg ${cpuMedian("ffmpeg")}, the API process with its local worker ${cpuMedian("api")}, Postgres ${cpuMedian("postgres")}, \
this benchmark's watch ${cpuMedian("bench")}, everything else ${cpuMedian("others")}; the machine ${cpuMedian("machine")}

off the path (after playable)
poster published:  median ${seconds(poster.median)}  (min ${seconds(poster.min).trim()}, \
max ${seconds(poster.max).trim()}) after the last byte

the whole ladder: READY after the last byte
goal:        ≤ ${READY_GOAL_SECONDS} s for the 60 s 1080p clip
anchor:      half the source's duration, ${(clipSeconds / 2).toFixed(1)} s ("a typical transcoder", Mux)
this stack:  median ${seconds(ready.median)}  (min ${seconds(ready.min).trim()}, max ${seconds(ready.max).trim()}), \
${(clipSeconds / (ready.median / 1000)).toFixed(2)}× realtime`;
}

/** Each source's medians on one line: playable beside the same run's ffmpeg-alone floor, and READY. */
function sourcesSideBySide(sources: SourceRuns[]): string {
  const header = ["source", "playable", "ffmpeg alone", "ffmpeg alone CPU", "playable − ffmpeg", "READY", "realtime ×"];
  const body = sources.map((source) => {
    const playable = summary(source.timelines.map((t) => t["playable event received"] - t.lastByte)).median;
    const alone = summary(source.ffmpegAlone.map((a) => a.ms)).median;
    const aloneCpu = summary(source.ffmpegAlone.map((a) => a.cpuSeconds * 1000)).median;
    const ready = summary(source.timelines.map((t) => t.ready - t.lastByte)).median;
    return [
      source.name,
      seconds(playable).trim(),
      seconds(alone).trim(),
      seconds(aloneCpu).trim(),
      seconds(playable - alone).trim(),
      seconds(ready).trim(),
      `${(clipSeconds / (ready / 1000)).toFixed(2)}×`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("   ");
  return `
the sources side by side (medians after the last byte; ffmpeg alone: every rung lists a segment, same run)
${[header, ...body].map(line).join("\n")}`;
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), "videograph-latency-"));
await chmod(dataDir, 0o755);
const database = await benchDatabase(path.join(dataDir, "postgres"), "videograph_latency", log);
const db = new pg.Client({ connectionString: database.url });
const scratch = await mkdtemp(path.join(os.tmpdir(), "videograph-latency-scratch-"));
let api: Awaited<ReturnType<typeof startApiProcess>> | undefined;

try {
  const sources: SourceRuns[] = [];
  for (const name of sourceNames) {
    log(`generating a ${clipSeconds} s ${width}x${height} ${name} clip`);
    const file = await generateSource(scratch, { source: name, seconds: clipSeconds, width, height });
    sources.push({
      name,
      file,
      bytes: (await stat(file)).size,
      ladder: planLadder((await probeSource(file)).probe),
      timelines: [],
      ffmpegAlone: [],
      ffmpegAloneFullFirst: [],
      ffmpegAloneWithImages: [],
    });
  }
  const workerTmpDir = path.join(scratch, "work");
  await mkdir(workerTmpDir);

  log("starting the API with its local worker");
  const stack = await startApiProcess("api", {
    DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    LOG_LEVEL: "info",
    LOCAL_WORKER: "true",
    SIGNING_SECRET: randomBytes(24).toString("hex"),
    HLS_SEGMENT_SECONDS: String(SEGMENT_SECONDS),
    WORKER_TMP_DIR: workerTmpDir,
  });
  api = stack;
  const apiPid = stack.child.pid!;
  await stack.waitForLog('"message":"worker ready"');
  await db.connect();
  const ws = createClient({
    url: `${stack.url.replace("http", "ws")}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 3,
    connectionParams: ADMIN_AUTH,
  });

  const uploadOnce = async (i: number, source: SourceRuns): Promise<Timeline> => {
    const created = await postGraphQL(stack.url, CREATE_UPLOAD, { t: `latency ${source.name} ${i}` });
    const ticket = created.data?.createUpload;
    if (!ticket?.uploadUrl) throw new Error(`createUpload: ${JSON.stringify(created.errors ?? ticket)}`);
    const videoId: string = ticket.video.id;
    let unsubscribe = () => {};
    let subscribed = () => {};
    const inPlace = new Promise<void>((resolve) => (subscribed = resolve));
    let finished = (_failure?: Error) => {};
    const ready = new Promise<number>((resolve, reject) => {
      finished = (failure) => (failure ? reject(failure) : resolve(Date.now()));
    });
    const playable = new Promise<number>((resolve, reject) => {
      unsubscribe = ws.subscribe(
        {
          query: "subscription($id: ID!) { videoEvents(videoId: $id) { video { status playable } } }",
          variables: { id: videoId },
        },
        {
          next: (m: any) => {
            subscribed();
            const video = m.data?.videoEvents.video;
            if (video?.playable) resolve(Date.now());
            if (video?.status === "READY") finished();
            else if (video?.status === "FAILED") {
              reject(new Error(`video ${videoId} failed`));
              finished(new Error(`video ${videoId} failed`));
            }
          },
          error: (err) => {
            reject(new Error(`subscription error: ${JSON.stringify(err)}`));
            finished(new Error(`subscription error: ${JSON.stringify(err)}`));
          },
          complete: () => {
            reject(new Error("subscription ended before playable"));
            finished(new Error("subscription ended before READY"));
          },
        },
      );
    });
    const published = await watchFiles({ dataDir, workerTmpDir, videoId, rungs: source.ladder.map((r) => r.name) });
    // Read for each upload: a camera-like clip is large, and only one is held at a time.
    const bytes = await readFile(source.file);
    try {
      // The subscription's first event (the current state) says it is in place.
      await Promise.race([inPlace, playable]);
      const put = await fetch(`${stack.url}${ticket.uploadUrl}`, { method: "PUT", body: bytes });
      const lastByte = Date.now();
      const cpuAtLastByte = stackCpu(apiPid, workerTmpDir);
      if (put.status !== 200) throw new Error(`upload HTTP ${put.status}`);
      const playableAt = await withTimeout(playable, "playable");
      const cpuAtPlayable = stackCpu(apiPid, workerTmpDir);
      // The ladder's ffmpeg started after the last byte: all its CPU so far is in the window.
      const cpu: StackCpu = {
        api: cpuAtPlayable.api - cpuAtLastByte.api,
        ffmpeg: cpuAtPlayable.ffmpeg,
        postgres: cpuAtPlayable.postgres - cpuAtLastByte.postgres,
        bench: cpuAtPlayable.bench - cpuAtLastByte.bench,
        machine: cpuAtPlayable.machine - cpuAtLastByte.machine,
      };
      await pollUntil(async () => published.seen.master ?? null, 10_000, "master playlist in storage");
      await pollUntil(async () => published.seen.everyRung ?? null, 10_000, "every rung's list in the work dir");
      const { rows } = await db.query<{ id: string; dispatchedAt: Date }>(
        `SELECT id, "dispatchedAt" FROM "Job" WHERE "videoId" = $1 AND kind = 'TRANSCODE' ORDER BY "createdAt" LIMIT 1`,
        [videoId],
      );
      const job = rows[0];
      if (!job?.dispatchedAt) throw new Error(`no dispatched TRANSCODE job for video ${videoId}`);
      // The next run and ffmpeg alone start on an idle worker (it takes one job at a time).
      const readyAt = await withTimeout(ready, "READY");
      const workerLog = stack.log();
      const workerStarted = loggedAt(workerLog, "job started", job.id);
      const probed = loggedAt(workerLog, /^(encoding from the start|resuming)/, job.id);
      if (workerStarted === null || probed === null) throw new Error(`the worker's log lacks job ${job.id}`);
      const posterFile = path.join(dataDir, "videos", videoId, "thumbnails", "poster.jpg");
      const posterPublished = (await stat(posterFile)).mtimeMs;
      return {
        lastByte,
        "job dispatched": job.dispatchedAt.getTime(),
        "worker started": workerStarted,
        probed,
        "ladder encode started": published.seen.encodeStarted!,
        "first segment written": published.seen.firstSegment!,
        "every rung's first segment": published.seen.everyRung!,
        "master published": published.seen.master!,
        "playable event received": playableAt,
        posterPublished,
        ready: readyAt,
        cpu,
      };
    } finally {
      unsubscribe();
      await published.stop();
    }
  };

  // The sources in turn, so that a change in the machine's load falls on each alike.
  for (let i = 1; i <= runs; i++) {
    for (const source of sources) {
      const timeline = await uploadOnce(i, source);
      source.timelines.push(timeline);
      const alone = await ffmpegAloneMs(source.file, source.ladder, scratch);
      source.ffmpegAlone.push(alone);
      const aloneFullFirst = await ffmpegAloneMs(source.file, source.ladder, scratch, {
        firstSegmentSeconds: SEGMENT_SECONDS,
      });
      source.ffmpegAloneWithImages.push(await ffmpegAloneMs(source.file, source.ladder, scratch, { images: true }));
      source.ffmpegAloneFullFirst.push(aloneFullFirst);
      const total = timeline["playable event received"] - timeline.lastByte;
      log(
        `run ${i}/${runs}, ${source.name}: playable ${seconds(total).trim()} after the last byte, READY ` +
          `${seconds(timeline.ready - timeline.lastByte).trim()}; ffmpeg alone ${seconds(alone.ms).trim()}, ` +
          `${alone.cpuSeconds.toFixed(2)} CPU s (${seconds(aloneFullFirst.ms).trim()}, ` +
          `${aloneFullFirst.cpuSeconds.toFixed(2)} CPU s with a full-length first segment)`,
      );
    }
  }
  await ws.dispose();

  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`
videograph time to first frame — ${new Date().toISOString()}
machine: ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, load average \
${os.loadavg()[0]!.toFixed(1)}, Node ${process.version}
stack:   1 API process with its local worker, transport postgres, local storage, ${SEGMENT_SECONDS} s segments
sources: ${clipSeconds} s ${width}x${height} clips written as ${MEZZANINE}; ${runs} run(s) of each, in turn
${sources
  .map(
    (source) =>
      `  ${source.name} (${(source.bytes / 1024 / 1024).toFixed(1)} MiB, ` +
      `${((source.bytes * 8) / clipSeconds / 1e6).toFixed(1)} Mb/s, ${source.ladder.length} rungs): ` +
      BENCH_SOURCES[source.name].description,
  )
  .join("\n")}`);
  for (const source of sources) console.log(sourceReport(source));
  console.log(sourcesSideBySide(sources));
} finally {
  await db.end().catch(() => {});
  // SIGTERM first: the API stops its local worker in order.
  await api?.stop();
  await stopAllProcesses();
  await database.drop();
  await rm(dataDir, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
}
