// Load test (`npm run loadtest`): N uploads at once through the public API of a stack started
// here on 127.0.0.1 (one API process, W worker processes, Postgres), each followed over
// graphql-ws to its end. Prints success rate, time to READY (p50/p95), peak memory of the API and
// of the workers, and how many jobs were lost (uploaded but never reached an end state).
//   npm run loadtest                                    20 uploads, 2 workers, 5 min bound
//   npm run loadtest -- --uploads=50 --workers=2 --seconds=4 --timeout=600 --transport=postgres
//   npm run loadtest -- --transport=pubsub   jobs and events through the Pub/Sub emulator, started
//                                            here as the tests start it (java -jar on its jar)
//   DATABASE_URL=postgresql://…  uses that server (a fresh database in it); default: the local
//   server on 127.0.0.1:5432, else an embedded Postgres.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import type { ServiceProcess } from "../test/support/processes.ts";
import type { OwnPubSubEmulator } from "../test/support/pubsub-emulator.ts";

const run = promisify(execFile);

const USAGE = `usage: npm run loadtest -- [--uploads=N] [--workers=N] [--seconds=S] [--size=WxH] [--timeout=S] \
[--transport=postgres|pubsub]
Uploads N generated clips at once to a stack started here and prints success rate, time to READY,
peak memory and lost jobs. Defaults: 20 uploads, 2 workers, 4 s clips of 640x360, 300 s, postgres.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    uploads: { type: "string", default: "20" },
    workers: { type: "string", default: "2" },
    seconds: { type: "string", default: "4" },
    size: { type: "string", default: "640x360" },
    timeout: { type: "string", default: "300" },
    transport: { type: "string", default: "postgres" },
  },
});
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { ADMIN_AUTH } = await import("../test/support/auth.ts");
const { startApiProcess, startWorkerProcess, stopAllProcesses } = await import("../test/support/processes.ts");
const { pubSubEmulatorUnavailableReason, startOwnPubSubEmulator } = await import("../test/support/pubsub-emulator.ts");
const { default: cliProgress } = await import("cli-progress");
const { createClient } = await import("graphql-ws");
const { default: WebSocket } = await import("ws");
const { CREATE_UPLOAD, generateClip, postGraphQL, benchDatabase } = await import("./support/stack.ts");
const transport = flags.transport;
const uploads = Number(flags.uploads);
const workerCount = Number(flags.workers);
const clipSeconds = Number(flags.seconds);
const [width, height] = flags.size.split("x").map(Number) as [number, number];
const timeoutMs = Number(flags.timeout) * 1000;
if (
  ![uploads, workerCount, clipSeconds, width, height, timeoutMs].every((n) => Number.isFinite(n) && n > 0) ||
  !["postgres", "pubsub"].includes(transport)
) {
  usageError(USAGE, "each number must be positive, and --transport postgres or pubsub");
}

const log = (line: string) => process.stderr.write(`[loadtest] ${line}\n`);

/** Peak resident memory (VmHWM) of a process and its children, in MiB, or null once gone. */
async function peakRssMiB(pid: number): Promise<number | null> {
  let total = 0;
  let found = false;
  const pids = [pid];
  try {
    const { stdout } = await run("pgrep", ["-P", String(pid)]);
    pids.push(...stdout.split("\n").filter(Boolean).map(Number));
  } catch {
    // no children
  }
  for (const p of pids) {
    try {
      const status = await readFile(`/proc/${p}/status`, "utf8");
      const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
      if (Number.isFinite(kb)) {
        total += kb;
        found = true;
      }
    } catch {
      // exited meanwhile
    }
  }
  return found ? total / 1024 : null;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), "videograph-loadtest-"));
await chmod(dataDir, 0o755);
const database = await benchDatabase(dataDir, "videograph_loadtest", log);
const databaseUrl = database.url;

const peaks = new Map<string, number>();
let sampler: NodeJS.Timeout | undefined;
let emulator: OwnPubSubEmulator | null = null;
try {
  let transportEnv: Record<string, string> = { TRANSPORT: "postgres" };
  if (transport === "pubsub") {
    log("starting the Pub/Sub emulator");
    emulator = await startOwnPubSubEmulator();
    if (!emulator) throw new Error(`--transport=pubsub needs the Pub/Sub emulator: ${pubSubEmulatorUnavailableReason}`);
    // A project of its own: the emulator keeps topics and subscriptions of earlier runs.
    transportEnv = {
      TRANSPORT: "pubsub",
      GOOGLE_CLOUD_PROJECT: `videograph-loadtest-${randomBytes(4).toString("hex")}`,
      PUBSUB_EMULATOR_HOST: emulator.host,
      METADATA_SERVER_DETECTION: "none",
    };
  }
  const bytes = await readFile(await generateClip(dataDir, { seconds: clipSeconds, width, height }));

  const common = {
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: "warn",
    SIGNING_SECRET: randomBytes(24).toString("hex"),
    ...transportEnv,
  };
  log(`starting the API and ${workerCount} worker(s)`);
  // The load is one CMS key's uploads: lift the per-key mutation limit.
  const api = await startApiProcess("api", {
    ...common,
    LOG_LEVEL: "info",
    LOCAL_WORKER: "false",
    RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000",
  });
  const workers: ServiceProcess[] = [];
  for (let i = 0; i < workerCount; i++)
    workers.push(await startWorkerProcess(`loadtest-worker-${i + 1}`, { ...common, LOG_LEVEL: "info" }));

  const sample = async () => {
    const entries: [string, ServiceProcess][] = [
      ["api", api],
      ...workers.map((w, i) => [`worker-${i + 1}`, w] as [string, ServiceProcess]),
    ];
    for (const [name, proc] of entries) {
      const mib = proc.child.pid ? await peakRssMiB(proc.child.pid) : null;
      if (mib !== null) peaks.set(name, Math.max(peaks.get(name) ?? 0, mib));
    }
  };
  sampler = setInterval(() => void sample(), 500);

  const gql = (query: string, variables: Record<string, unknown>) => postGraphQL(api.url, query, variables);
  const ws = createClient({
    url: `${api.url.replace("http", "ws")}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 3,
    connectionParams: ADMIN_AUTH,
  });

  const bar = new cliProgress.SingleBar(
    {
      format: "[loadtest] {bar} {value}/{total} ended | READY {ready} FAILED {failed} | {duration}s",
      hideCursor: true,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(uploads, 0, { ready: 0, failed: 0 });
  let ready = 0;
  let failed = 0;
  const started = Date.now();

  const one = async (i: number): Promise<{ status: string; seconds: number }> => {
    const t0 = Date.now();
    const created = await gql(CREATE_UPLOAD, { t: `load ${i}` });
    const ticket = created.data?.createUpload;
    if (!ticket?.uploadUrl) return { status: `createUpload: ${JSON.stringify(created.errors ?? ticket)}`, seconds: 0 };
    const end = new Promise<string>((resolve) => {
      let last = "UNKNOWN";
      ws.subscribe(
        {
          query: `subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`,
          variables: { id: ticket.video.id },
        },
        {
          next: (m: any) => {
            last = m.data?.videoEvents.video.status ?? last;
          },
          error: () => resolve(`subscription error (${last})`),
          complete: () => resolve(last),
        },
      );
    });
    const put = await fetch(`${api.url}${ticket.uploadUrl}`, { method: "PUT", body: bytes });
    if (put.status !== 200) return { status: `upload HTTP ${put.status}`, seconds: 0 };
    // unref: a pending bound must not keep the process alive for minutes after the last video ended.
    const status = await Promise.race([
      end,
      new Promise<string>((r) =>
        setTimeout(() => r("TIMEOUT"), Math.max(0, timeoutMs - (Date.now() - started))).unref(),
      ),
    ]);
    if (status === "READY") ready++;
    else failed++;
    bar.increment(1, { ready, failed });
    return { status, seconds: (Date.now() - t0) / 1000 };
  };

  const results = await Promise.all(Array.from({ length: uploads }, (_, i) => one(i)));
  bar.stop();
  await sample();
  const wall = (Date.now() - started) / 1000;
  await ws.dispose();

  const toReady = results
    .filter((r) => r.status === "READY")
    .map((r) => r.seconds)
    .sort((a, b) => a - b);
  const lost = results.filter((r) => r.status === "TIMEOUT" || r.status.startsWith("subscription error")).length;
  const otherFailures = results.filter((r) => r.status !== "READY" && r.status !== "TIMEOUT").map((r) => r.status);
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const workerPeaks = [...peaks].filter(([n]) => n.startsWith("worker")).map(([, v]) => v);

  console.log(`
videograph load test — ${new Date().toISOString()}
machine: ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}
stack:   1 API process, ${workerCount} worker process(es), \
transport ${transport}${emulator ? " (Pub/Sub emulator)" : ""}, local storage
load:    ${uploads} uploads at once of a ${clipSeconds} s ${width}x${height} clip \
(${(bytes.length / 1024).toFixed(0)} KiB), bound ${timeoutMs / 1000} s

success rate        ${((100 * toReady.length) / uploads).toFixed(1)} % (${toReady.length}/${uploads} READY)
time to READY p50   ${percentile(toReady, 50).toFixed(1)} s
time to READY p95   ${percentile(toReady, 95).toFixed(1)} s
wall time           ${wall.toFixed(1)} s (${(uploads / wall).toFixed(2)} videos/s)
peak memory API     ${(peaks.get("api") ?? NaN).toFixed(0)} MiB
peak memory worker  ${workerPeaks.length ? Math.max(...workerPeaks).toFixed(0) : "n/a"} MiB (max of ${workerCount}, \
incl. ffmpeg)
jobs lost: ${lost}${otherFailures.length ? `\nfailures: ${[...new Set(otherFailures)].join("; ")}` : ""}`);
  process.exitCode = lost === 0 && toReady.length === uploads ? 0 : 1;
} finally {
  clearInterval(sampler);
  await stopAllProcesses();
  await emulator?.stop();
  await database.drop();
  await rm(dataDir, { recursive: true, force: true });
}
