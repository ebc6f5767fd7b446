// One long video on a fleet (`npm run bench:fleet`): per layout K×C (K workers pinned to C cores each), one
// upload timed to `playable` and READY, the CPU its jobs reported, and the speed-ups and the chunking goal
// beside them (docs/performance.md, "One video on a fleet").
//   npm run bench:fleet                                   2×1 beside 1×1 and 1×2 (a 2-core machine)
//   npm run bench:fleet -- --layouts=1x4,4x4,1x16 --seconds=120 --height=1080   (a 16-core machine)
//   DATABASE_URL=postgresql://…  that server (a fresh database per layout); default: 127.0.0.1:5432, else embedded.
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { openAsBlob } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import {
  BENCH_SOURCE_NAMES,
  BENCH_SOURCES,
  type BenchSourceName,
  generateSource,
  MEZZANINE,
} from "./support/sources.ts";
import type { ServiceProcess } from "../test/support/processes.ts";

const USAGE = `usage: npm run bench:fleet -- [--layouts=KxC,…] [--seconds=S] [--height=H] [--source=NAME] \
[--chunk-seconds=N] [--first-chunk-seconds=N]
Uploads one generated S s clip of height H (16:9) of the source to a stack of K workers pinned to C
cores each, for every layout, and prints the time to playable and to READY, the speed-ups and the CPU
seconds of the video's jobs. Layouts are laid out on cores 0, 1, 2, …; K×C must fit the machine. The
sources:
${BENCH_SOURCE_NAMES.map((name) => `  ${name}: ${BENCH_SOURCES[name].description}`).join("\n")}
Defaults: --layouts=1x1,1x2,2x1, 40 s, 720, --source=camera, --chunk-seconds=10, --first-chunk-seconds=4.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    layouts: { type: "string", default: "1x1,1x2,2x1" },
    seconds: { type: "string", default: "40" },
    height: { type: "string", default: "720" },
    source: { type: "string", default: "camera" },
    "chunk-seconds": { type: "string", default: "10" },
    "first-chunk-seconds": { type: "string", default: "4" },
  },
});
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { startApiProcess, startWorkerProcess, stopAllProcesses } = await import("../test/support/processes.ts");
const { createClient } = await import("graphql-ws");
const { default: pg } = await import("pg");
const { default: WebSocket } = await import("ws");
const { ADMIN_AUTH } = await import("../test/support/auth.ts");
const { benchDatabase, CREATE_UPLOAD, postGraphQL } = await import("./support/stack.ts");
const clipSeconds = Number(flags.seconds);
const height = Number(flags.height);
const chunkSeconds = Number(flags["chunk-seconds"]);
const firstChunkSeconds = Number(flags["first-chunk-seconds"]);
const source = flags.source as BenchSourceName;
const layouts = flags.layouts.split(",").map((layout) => {
  const [workers, cores] = layout.split("x").map(Number);
  return { workers: workers!, cores: cores! };
});
const cpus = os.availableParallelism();
if (
  !(clipSeconds > 0) ||
  !Number.isInteger(height) ||
  height < 16 ||
  !(chunkSeconds >= 2) ||
  !(firstChunkSeconds >= 1) ||
  !Object.hasOwn(BENCH_SOURCES, source) ||
  layouts.some((l) => !Number.isInteger(l.workers) || !Number.isInteger(l.cores) || l.workers < 1 || l.cores < 1) ||
  layouts.some((l) => l.workers * l.cores > cpus)
) {
  usageError(USAGE, `bad option (this machine has ${cpus} cores; every layout's K×C must fit)`);
}
const width = 2 * Math.round((height * 16) / 9 / 2);

const log = (message: string) => process.stderr.write(`[bench:fleet] ${message}\n`);

interface Result {
  workers: number;
  cores: number;
  playableSeconds: number;
  readySeconds: number;
  cpuSeconds: number;
  chunks: number;
}

/** Runs one layout on a fresh database: starts the stack, uploads the clip once, stops it all. */
async function runLayout(scratch: string, clip: Blob, layout: { workers: number; cores: number }): Promise<Result> {
  const dir = await mkdtemp(path.join(scratch, `${layout.workers}x${layout.cores}-`));
  const database = await benchDatabase(path.join(scratch, "pg"), "bench_fleet", log);
  const db = new pg.Client({ connectionString: database.url });
  const workers: ServiceProcess[] = [];
  try {
    const common = {
      DATABASE_URL: database.url,
      DATA_DIR: path.join(dir, "data"),
      SIGNING_SECRET: randomBytes(24).toString("hex"),
      LOG_LEVEL: "warn",
    };
    const api = await startApiProcess("api", {
      ...common,
      LOG_LEVEL: "info",
      CHUNK_SECONDS: String(chunkSeconds),
      FIRST_CHUNK_SECONDS: String(firstChunkSeconds),
    });
    for (let i = 0; i < layout.workers; i++) {
      const workDir = path.join(dir, `work-${i}`);
      await mkdir(workDir, { recursive: true });
      const worker = await startWorkerProcess(`worker-${i}`, {
        ...common,
        LOG_LEVEL: "info",
        WORKER_CONCURRENCY: "1",
        WORKER_CAPABILITIES: "cpu",
        WORKER_DETECT_MANIM: "false",
        HEARTBEAT_INTERVAL_SECONDS: "2",
        WORKER_TMP_DIR: workDir,
      });
      // Every thread of the worker, and the ffmpeg processes it starts later, on its own cores.
      const first = i * layout.cores;
      const cores = `${first}-${first + layout.cores - 1}`;
      execFileSync("taskset", ["-a", "-cp", cores, String(worker.child.pid)], { stdio: "ignore" });
      workers.push(worker);
    }
    await db.connect();
    // The API splits only while it counts two or more cpu workers alive: wait for every heartbeat.
    for (let i = 0; ; i++) {
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM "Worker" WHERE 'cpu' = ANY(capabilities)`);
      if (rows[0].n >= layout.workers) break;
      if (i > 600) throw new Error("the workers did not heartbeat within 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }

    const created = await postGraphQL(api.url, CREATE_UPLOAD, { t: `fleet ${layout.workers}x${layout.cores}` });
    const ticket = created.data?.createUpload;
    if (!ticket?.uploadUrl) throw new Error(`createUpload: ${JSON.stringify(created.errors ?? ticket)}`);
    const videoId: string = ticket.video.id;
    const ws = createClient({
      url: `${api.url.replace("http", "ws")}/graphql`,
      webSocketImpl: WebSocket,
      retryAttempts: 3,
      connectionParams: ADMIN_AUTH,
    });
    let subscribed = () => {};
    const inPlace = new Promise<void>((resolve) => (subscribed = resolve));
    let playableAt = 0;
    const ready = new Promise<number>((resolve, reject) => {
      ws.subscribe(
        {
          query: "subscription($id: ID!) { videoEvents(videoId: $id) { video { status playable error } } }",
          variables: { id: videoId },
        },
        {
          next: (m: any) => {
            subscribed();
            const video = m.data?.videoEvents.video;
            if (video?.playable && !playableAt) playableAt = Date.now();
            if (video?.status === "READY") resolve(Date.now());
            else if (video?.status === "FAILED" || video?.status === "CANCELED") {
              reject(new Error(`video ${videoId} ${video.status}: ${video.error}`));
            }
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    await inPlace;
    const res = await fetch(`${api.url}${ticket.uploadUrl}`, { method: "PUT", body: clip });
    if (res.status !== 200) throw new Error(`upload: HTTP ${res.status}`);
    const uploadedAt = Date.now();
    const readyAt = await ready;
    await ws.dispose();
    // Each run reports its CPU when it ends; the API sums them on its job.
    const { rows } = await db.query(
      `SELECT kind, count(*)::int AS n, coalesce(sum("cpuSeconds"), 0)::float AS cpu FROM "Job" WHERE "videoId" = $1 GROUP BY kind`,
      [videoId],
    );
    const cpuSeconds = rows.reduce((sum, r) => sum + r.cpu, 0);
    const chunks = 1 + (rows.find((r) => r.kind === "TRANSCODE_CHUNK")?.n ?? 0);
    return {
      ...layout,
      playableSeconds: (playableAt - uploadedAt) / 1000,
      readySeconds: (readyAt - uploadedAt) / 1000,
      cpuSeconds,
      chunks,
    };
  } finally {
    await db.end().catch(() => {});
    await stopAllProcesses();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

const scratch = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-fleet-"));
try {
  log(`generating ${clipSeconds} s of ${source} at ${width}x${height}`);
  // Read from the file as it is sent, not into memory: a minute of 1080p camera is 1.4 GB (CRF 18),
  // and a buffer stops at 2 GiB, which 120 s of it passes.
  const clip = await openAsBlob(await generateSource(scratch, { source, seconds: clipSeconds, width, height }));
  const results: Result[] = [];
  for (const layout of layouts) {
    log(`layout ${layout.workers}×${layout.cores}: starting`);
    const result = await runLayout(scratch, clip, layout);
    log(`layout ${layout.workers}×${layout.cores}: READY in ${result.readySeconds.toFixed(1)} s`);
    results.push(result);
  }
  const one = (cores: number) => results.find((r) => r.workers === 1 && r.cores === cores);
  const f = (n: number | undefined, digits = 1) => (n === undefined ? "—" : n.toFixed(digits));
  console.log(
    `\nbench:fleet — ${clipSeconds} s ${source} ${width}x${height} (${MEZZANINE}), HLS_SEGMENT_SECONDS 4, ` +
      `CHUNK_SECONDS ${chunkSeconds}, FIRST_CHUNK_SECONDS ${firstChunkSeconds}; ${os.cpus()[0]?.model ?? "?"}, ` +
      `${cpus} cores; ${new Date().toISOString()}\n`,
  );
  console.log(
    "| layout | runs | playable s | READY s | × vs 1 worker, same cores | × vs 1 worker, one share | CPU s | goal: READY ≤ 1.2 × (one share ÷ K) + 10 s |",
  );
  console.log("|---|--:|--:|--:|--:|--:|--:|---|");
  for (const r of results) {
    const same = one(r.workers * r.cores);
    const share = one(r.cores);
    const goal = share && r.workers > 1 ? 1.2 * (share.readySeconds / r.workers) + 10 : undefined;
    const verdict = goal === undefined ? "—" : `${f(goal)} s: ${r.readySeconds <= goal ? "met" : "not met"}`;
    console.log(
      `| ${r.workers}×${r.cores} | ${r.chunks} | ${f(r.playableSeconds, 2)} | ${f(r.readySeconds)} | ` +
        `${same && r.workers > 1 ? f(same.readySeconds / r.readySeconds, 2) : "—"} | ` +
        `${share && r.workers > 1 ? f(share.readySeconds / r.readySeconds, 2) : "—"} | ${f(r.cpuSeconds)} | ${verdict} |`,
    );
  }
  for (const r of results.filter((x) => x.workers > 1)) {
    const same = one(r.workers * r.cores);
    if (same) {
      const added = r.cpuSeconds - same.cpuSeconds;
      console.log(
        `\n${r.workers}×${r.cores}: chunking added ${f(added)} CPU s (${f((100 * added) / same.cpuSeconds)} %) to ` +
          `1×${r.workers * r.cores}'s ${f(same.cpuSeconds)} (${r.chunks} runs: the first chunk with the audio, then the chunks).`,
      );
    }
  }
} finally {
  await stopAllProcesses();
  await rm(scratch, { recursive: true, force: true });
}
