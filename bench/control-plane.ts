// The control plane's capacity (`npm run bench:control-plane`): uploads through the public API at a
// rising rate, simulated workers that speak the real contract over the real transport (no ffmpeg:
// bench/support/simulated-worker.ts), graphql-ws subscribers following the videos and a loopback
// webhook receiver, into one or two API processes and one Postgres. Prints per step the progress
// latency (worker → subscriber), what the queues do and the CPU of each part, then the highest rate
// sustained and what saturated first. docs/performance.md, "The control plane".
//   npm run bench:control-plane -- --transport=pubsub --apis=2 --start=200000 --step=200000 --max=1600000
//   DATABASE_URL=postgresql://…  uses that server (a fresh database in it); default: the local
//   server on 127.0.0.1:5432, else an embedded Postgres.
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import type { FleetStart, FleetTaken } from "./support/simulated-fleet.ts";
import type { OpenSubscribers, TakenReport } from "./support/fanout-clients.ts";

const USAGE = `usage: npm run bench:control-plane -- [--transport=postgres|pubsub] [--apis=1|2] [--start=N] [--step=N] \
[--step-seconds=S] [--max=N] [--subscribers=N] [--per-video=K] [--video-seconds=S] [--height=H] [--speed=X] \
[--failure-percent=P] [--cancel-percent=P] [--slots-per-worker=N] [--worker-concurrency=N] [--all-steps] [--profile=DIR]
Starts --apis API processes on a fresh database, registers a loopback webhook receiver, then uploads
videos (createUpload and a PUT of a tiny real file: the API queues real TRANSCODE jobs) at a rate that
starts at --start videos a day and rises by --step every --step-seconds up to --max. A simulated fleet
(no ffmpeg) takes the jobs from the real transport and sends what a worker sends for a --video-seconds
source of --height (its planned ladder), encoding at --speed × real time, progress every second; P %
of first attempts fail (retried by the API) and P % of videos are canceled part-way. Each new video
gets --per-video graphql-ws subscribers while fewer than --subscribers are open. A simulated process
has --slots-per-worker slots and stands for workers of --worker-concurrency jobs each (their
WORKER_CONCURRENCY), each with its own id and heartbeat every 10 s, added as the runs need them.
Per step: arrival rate (videos a day), completed a second, progress latency p50/p99 (sent by the
simulated worker → received by a subscriber), queue trends (events, run ends, jobs, webhooks,
NOTIFY; over postgres, the progress samples the API skipped because a newer one of the job came
first), CPU of the APIs, Postgres, the fleet, the subscribers and the emulator, the API's and
Postgres's CPU per worker event sent and per event applied (postgres transport); then the highest
rate sustained (p99 < 1 s, no queue growing, at most 5 % of samples skipped) and what saturated first. The ramp stops at the first
step not sustained; --all-steps runs every step (on a machine whose other load decides the latency,
the CPU per event still says where the limit is). --profile=DIR writes each API's V8 CPU profile
(.cpuprofile, for Chrome DevTools) into DIR as it stops.
Defaults: postgres, 1 API, 100000 to 1000000 by 100000, 180 s a step, 3000 subscribers, 2 per video,
180 s 1080p sources at 1.2 × real time (deploy/CAPACITY.md), 2 % failures, 1 % cancels, 250 slots a
simulated process, workers of 1 job each (the render worker's default).`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    transport: { type: "string", default: "postgres" },
    apis: { type: "string", default: "1" },
    start: { type: "string", default: "100000" },
    step: { type: "string", default: "100000" },
    "step-seconds": { type: "string", default: "180" },
    max: { type: "string", default: "1000000" },
    subscribers: { type: "string", default: "3000" },
    "per-video": { type: "string", default: "2" },
    "video-seconds": { type: "string", default: "180" },
    height: { type: "string", default: "1080" },
    speed: { type: "string", default: "1.2" },
    "failure-percent": { type: "string", default: "2" },
    "cancel-percent": { type: "string", default: "1" },
    "slots-per-worker": { type: "string", default: "250" },
    "worker-concurrency": { type: "string", default: "1" },
    "all-steps": { type: "boolean", default: false },
    profile: { type: "string" },
  },
});
const transport = flags.transport;
const apiCount = Number(flags.apis);
const [startRate, stepRate, stepSeconds, maxRate] = [flags.start, flags.step, flags["step-seconds"], flags.max].map(
  Number,
) as [number, number, number, number];
const subscriberCap = Number(flags.subscribers);
const perVideo = Number(flags["per-video"]);
const videoSeconds = Number(flags["video-seconds"]);
const height = Number(flags.height);
const speed = Number(flags.speed);
const failurePercent = Number(flags["failure-percent"]);
const cancelPercent = Number(flags["cancel-percent"]);
const slotsPerWorker = Number(flags["slots-per-worker"]);
const workerConcurrency = Number(flags["worker-concurrency"]);
if (transport !== "postgres" && transport !== "pubsub") usageError(USAGE, "--transport is postgres or pubsub");
if (apiCount !== 1 && apiCount !== 2) usageError(USAGE, "--apis is 1 or 2");
if (
  ![startRate, stepSeconds, maxRate, videoSeconds, height, speed, slotsPerWorker, workerConcurrency].every(
    (n) => n > 0,
  ) ||
  !(stepRate >= 0) ||
  ![subscriberCap, perVideo].every((n) => Number.isInteger(n) && n >= 0) ||
  ![failurePercent, cancelPercent].every((p) => p >= 0 && p < 100) ||
  maxRate < startRate
)
  usageError(USAGE, "rates, seconds and sizes must be positive, --max at least --start, percentages 0 to 99");

// The bench's machinery is imported once the command line is read: --help needs none of it.
const { default: pg } = await import("pg");
const { EVENTS_QUEUE } = await import("../src/protocol/queues.ts");
const { CLOCK_TICKS_PER_SECOND, parseProcStat } = await import("../src/shared/proc-stat.ts");
const { ADMIN_AUTH } = await import("../test/support/auth.ts");
const { startApiProcess, stopAllProcesses } = await import("../test/support/processes.ts");
const { pubSubEmulatorUnavailableReason, startOwnPubSubEmulator } = await import("../test/support/pubsub-emulator.ts");
const { CREATE_UPLOAD, benchDatabase, generateClip, postGraphQL } = await import("./support/stack.ts");

const log = (line: string) => process.stderr.write(`[control-plane] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SAMPLE_MS = 5000;
const P99_BOUND_MS = 1000;
/** Uploads in flight beyond which an arrival is not offered (the API is not keeping up with createUpload). */
const MAX_UPLOADS_IN_FLIGHT = 200;
/** A queue grows when it gains more than this over a step's second half. */
const GROWTH_SLACK = 50;
/**
 * The share of the fleet's progress samples the API may skip (a newer one of the job came before it
 * applied the older) in a sustained step: above it, the API is behind the fleet.
 */
const MAX_SKIPPED_SAMPLES = 0.05;

function nextMessage<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Record<string, unknown>) => {
      if (!(key in message)) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(message[key] as T);
    };
    const onExit = (code: number | null) => reject(new Error(`a benchmark process exited (${code}) before "${key}"`));
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

const forkChild = (entry: string, env: NodeJS.ProcessEnv = process.env) =>
  fork(entry, [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"], env });

/** CPU seconds of each pid, from /proc (0 for one that is gone). */
async function cpuSeconds(pids: number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  await Promise.all(
    pids.map(async (pid) => {
      try {
        const stat = parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
        out.set(pid, (stat.field(14) + stat.field(15)) / CLOCK_TICKS_PER_SECOND);
      } catch {
        out.set(pid, 0);
      }
    }),
  );
  return out;
}

/** The pid of the process whose command line holds `needle` (the emulator's java), or null. */
async function pidWithArgument(needle: string): Promise<number | null> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(needle)) return Number(entry);
  }
  return null;
}

function percentile(sorted: Float64Array | number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const root = await mkdtemp(path.join(os.tmpdir(), "videograph-control-plane-"));
const database = await benchDatabase(root, "videograph_control_plane", log);
const children: ChildProcess[] = [];
let emulator: Awaited<ReturnType<typeof startOwnPubSubEmulator>> = null;
const hooks = { received: 0, byType: new Map<string, number>() };
const receiver = createServer((req, res) => {
  const type = String(req.headers["webhook-type"] ?? req.headers["x-webhook-event"] ?? "event");
  req.resume();
  req.on("end", () => {
    hooks.received++;
    hooks.byType.set(type, (hooks.byType.get(type) ?? 0) + 1);
    res.writeHead(204).end();
  });
});
const sql = new pg.Pool({ connectionString: database.url, max: 2 });
try {
  let transportEnv: Record<string, string> = { TRANSPORT: "postgres" };
  let fleetTransport: FleetStart["transport"] = { kind: "postgres", databaseUrl: database.url };
  let emulatorPid: number | null = null;
  if (transport === "pubsub") {
    log("starting the Pub/Sub emulator");
    emulator = await startOwnPubSubEmulator();
    if (!emulator) throw new Error(`--transport=pubsub needs the Pub/Sub emulator: ${pubSubEmulatorUnavailableReason}`);
    emulatorPid = await pidWithArgument(`--port=${emulator.host.split(":")[1]}`);
    // A project of its own: the emulator keeps topics and subscriptions of earlier runs.
    const projectId = `videograph-control-plane-${randomBytes(4).toString("hex")}`;
    transportEnv = {
      TRANSPORT: "pubsub",
      GOOGLE_CLOUD_PROJECT: projectId,
      PUBSUB_EMULATOR_HOST: emulator.host,
      METADATA_SERVER_DETECTION: "none",
    };
    fleetTransport = { kind: "pubsub", projectId };
  }
  const clip = await readFile(await generateClip(root, { seconds: 1, width: 160, height: 90 }));
  const common = {
    DATA_DIR: path.join(root, "data"),
    DATABASE_URL: database.url,
    LOG_LEVEL: "warn",
    SIGNING_SECRET: randomBytes(24).toString("hex"),
    // The load is one CMS key's uploads: lift the per-key mutation limit.
    RATE_LIMIT_MUTATIONS_PER_MINUTE: "1000000",
    WEBHOOK_ALLOW_PRIVATE_URLS: "true",
    LIVE_RTMP_PORT: "0",
    LIVE_SRT_PORT: "off",
    ...transportEnv,
  };
  log(`starting ${apiCount} API process(es), transport ${transport}`);
  const apis: Awaited<ReturnType<typeof startApiProcess>>[] = [];
  const profileFlags = flags.profile ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(flags.profile)}`] : [];
  for (let i = 0; i < apiCount; i++)
    apis.push(
      await startApiProcess(
        `api-${i + 1}`,
        { ...common, LOG_LEVEL: "info", METRICS_PORT: "0" },
        { nodeFlags: profileFlags },
      ),
    );
  const apiPids = apis.map((a) => a.child.pid!);
  // Each API's metrics: what became of the fleet's progress samples (Postgres transport).
  const metricsUrls = await Promise.all(
    apis.map(async (a) => {
      const line = await a.waitForLog(/"url":"([^"]+)","message":"metrics listening"/, 30_000);
      return (line as RegExpMatchArray)[1]!;
    }),
  );
  /** The progress samples the APIs applied and skipped (a newer one of the job came first), summed. */
  async function progressSamples(): Promise<{ applied: number; superseded: number }> {
    const total = { applied: 0, superseded: 0 };
    for (const url of metricsUrls) {
      const text = await (await fetch(url)).text();
      for (const outcome of ["applied", "superseded"] as const) {
        const line = text
          .split("\n")
          .find((l) => l.startsWith(`videograph_progress_samples_total{outcome="${outcome}"}`));
        total[outcome] += line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
      }
    }
    return total;
  }

  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  const registered = await postGraphQL(
    apis[0]!.url,
    `mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { __typename ... on Error { message } } }`,
    { url: hookUrl },
  );
  if (registered.data?.createWebhookEndpoint?.__typename !== "CreateWebhookEndpointSuccess")
    throw new Error(`createWebhookEndpoint: ${JSON.stringify(registered.errors ?? registered.data)}`);

  const fleetEnv = { ...process.env, ...(emulator ? { PUBSUB_EMULATOR_HOST: emulator.host } : {}), LOG_LEVEL: "error" };
  const fleet = forkChild("bench/support/simulated-fleet.ts", fleetEnv);
  children.push(fleet);
  const fleetStart: FleetStart = {
    transport: fleetTransport,
    source: { seconds: videoSeconds, height, speed },
    slotsPerWorker,
    workerConcurrency,
    progressIntervalMs: 1000,
    failureRate: failurePercent / 100,
  };
  fleet.send({ start: fleetStart });
  await nextMessage(fleet, "started");
  const clients = [forkChild("bench/support/fanout-clients.ts"), forkChild("bench/support/fanout-clients.ts")];
  children.push(...clients);

  // --- the load ---------------------------------------------------------------------------------
  const counts = { offered: 0, notOffered: 0, uploaded: 0, uploadErrors: 0, canceled: 0, inFlight: 0 };
  let subscribersOpen = 0;
  let nextClient = 0;
  const uploadErrors = new Map<string, number>();
  const countError = (key: string) => {
    counts.uploadErrors++;
    uploadErrors.set(key, (uploadErrors.get(key) ?? 0) + 1);
  };
  async function uploadOne(i: number): Promise<void> {
    const api = apis[i % apis.length]!;
    const created = await postGraphQL(api.url, CREATE_UPLOAD, { t: `control plane ${i}` });
    const ticket = created.data?.createUpload;
    if (!ticket?.uploadUrl)
      return countError(`createUpload: ${JSON.stringify(created.errors ?? ticket).slice(0, 200)}`);
    const videoId = ticket.video.id as string;
    if (perVideo > 0 && subscribersOpen < subscriberCap) {
      subscribersOpen += perVideo;
      const open: OpenSubscribers = {
        url: `${api.url.replace("http", "ws")}/graphql`,
        connectionParams: ADMIN_AUTH,
        subscribers: Array.from({ length: perVideo }, () => ({ videoId, stalled: false })),
        concurrency: perVideo,
      };
      clients[nextClient++ % clients.length]!.send({ open });
    }
    const put = await fetch(`${api.url}${ticket.uploadUrl}`, { method: "PUT", body: clip });
    if (put.status !== 200) return countError(`upload HTTP ${put.status}`);
    counts.uploaded++;
    if (Math.random() * 100 < cancelPercent) {
      // Part-way through its encode, as an editor who changed their mind.
      await sleep((Math.random() * videoSeconds * 1000) / speed);
      const r = await postGraphQL(api.url, `mutation($id: ID!) { cancelVideo(id: $id) { __typename } }`, {
        id: videoId,
      });
      if (r.data?.cancelVideo?.__typename === "CancelVideoSuccess") counts.canceled++;
    }
  }
  let rate = 0;
  let arrivals = 0;
  async function arrive(): Promise<void> {
    for (let next = performance.now(); ; ) {
      if (rate === 0) return;
      next += 86_400_000 / rate;
      await sleep(next - performance.now());
      if (rate === 0) return;
      counts.offered++;
      if (counts.inFlight >= MAX_UPLOADS_IN_FLIGHT) {
        counts.notOffered++;
        continue;
      }
      counts.inFlight++;
      void uploadOne(arrivals++)
        .catch((err: Error) => countError(err.message))
        .finally(() => counts.inFlight--);
    }
  }

  // --- measuring ----------------------------------------------------------------------------------
  interface Sample {
    at: number;
    events: number | null;
    ends: number;
    jobsQueued: number;
    webhooksPending: number;
    notifyUsage: number;
    lockWaits: number;
    /** What our database's active backends were doing: wait event and the statement's start. */
    activity: string[];
    /** Lock waits by pg_locks' locktype: `object` is the database-wide lock NOTIFY takes at commit. */
    lockTypes: Record<string, number>;
    finished: number;
    samples: { applied: number; superseded: number };
    cpu: { api: number[]; postgres: number; fleet: number; clients: number; emulator: number };
    fleet: FleetTaken;
  }
  let pgCpuByPid = new Map<number, number>();
  let postgresCpuTotal = 0;
  async function postgresCpu(): Promise<number> {
    // Our database's backends and the server's own processes (shared with anything else on it).
    const { rows } = await sql.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR backend_type <> 'client backend'`,
    );
    const now = await cpuSeconds(rows.map((r) => r.pid));
    for (const [pid, seconds] of now) postgresCpuTotal += Math.max(0, seconds - (pgCpuByPid.get(pid) ?? seconds));
    pgCpuByPid = now;
    return postgresCpuTotal;
  }
  async function sample(): Promise<Sample> {
    fleet.send({ take: true });
    const taken = await nextMessage<FleetTaken>(fleet, "taken");
    const reports = await Promise.all(
      clients.map((c) => {
        const reply = nextMessage<TakenReport>(c, "taken");
        c.send({ take: true });
        return reply;
      }),
    );
    for (const r of reports) for (const ms of r.latenciesMs) latencies.push(ms);
    subscribersOpen = reports.reduce((n, r) => n + r.open, 0);
    const q = await sql.query(
      `SELECT
         (SELECT count(*) FROM "JobRun" WHERE "finishedAt" IS NOT NULL)::int AS ended,
         (SELECT count(*) FROM "Job" WHERE status = 'QUEUED')::int AS queued,
         (SELECT count(*) FROM "WebhookDelivery" WHERE status = 'PENDING')::int AS webhooks,
         (SELECT count(*) FROM "Video" WHERE status IN ('READY', 'FAILED', 'CANCELED'))::int AS finished,
         (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock')::int AS locks,
         pg_notification_queue_usage() AS notify`,
    );
    const row = q.rows[0];
    const events =
      transport === "postgres"
        ? (
            await sql.query(
              `SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state IN ('created', 'retry')`,
              [EVENTS_QUEUE],
            )
          ).rows[0].n
        : null;
    const api = await cpuSeconds(apiPids);
    const clientCpu = await cpuSeconds(clients.map((c) => c.pid!));
    const emulatorCpu = emulatorPid ? ((await cpuSeconds([emulatorPid])).get(emulatorPid) ?? 0) : 0;
    fleetCpu += taken.cpuMs / 1000;
    return {
      at: performance.now(),
      events,
      ends: taken.ends - row.ended,
      jobsQueued: row.queued,
      webhooksPending: row.webhooks,
      notifyUsage: Number(row.notify),
      lockWaits: row.locks,
      activity: (
        await sql.query<{ what: string }>(
          `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') || ' ' || left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 70) AS what
           FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`,
        )
      ).rows.map((r) => r.what),
      lockTypes: Object.fromEntries(
        (
          await sql.query<{ locktype: string; n: number }>(
            `SELECT locktype, count(*)::int AS n FROM pg_locks WHERE NOT granted GROUP BY locktype`,
          )
        ).rows.map((r) => [r.locktype, r.n]),
      ),
      finished: row.finished,
      samples: await progressSamples(),
      cpu: {
        api: apiPids.map((p) => api.get(p) ?? 0),
        postgres: await postgresCpu(),
        fleet: fleetCpu,
        clients: [...clientCpu.values()].reduce((a, b) => a + b, 0),
        emulator: emulatorCpu,
      },
      fleet: taken,
    };
  }
  let fleetCpu = 0;
  const latencies: number[] = [];
  const loadAverages: number[] = [];

  interface StepResult {
    rate: number;
    p50: number;
    p99: number;
    completedPerSecond: number;
    growing: string[];
    saturated: string;
    sustained: boolean;
    line: string;
  }
  const results: StepResult[] = [];
  const cores = os.cpus().length;
  await sample(); // zero the counters
  log(`${cores} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), load average ${os.loadavg()[0]!.toFixed(1)}`);
  console.log(
    "rate/day   offered/s done/s events/s  p50 ms  p99 ms  subs  running  events  ends  jobs  hooks notify  " +
      "API %core  PG %  fleet %  subs %  emul %  API ms/ev  PG ms/ev  applied/s  API ms/ap  PG ms/ap  load",
  );
  for (let target = startRate; target <= maxRate; target += stepRate || maxRate) {
    const neededSlots = Math.ceil((target / 86_400) * (videoSeconds / speed + 10) * 1.25) + 10;
    fleet.send({ slots: neededSlots });
    await nextMessage(fleet, "grown");
    latencies.length = 0;
    const offeredAtStart = counts.offered;
    const first = await sample();
    latencies.length = 0;
    const stepStart = performance.now();
    const wasIdle = rate === 0;
    rate = target;
    if (wasIdle) void arrive();
    const samples: Sample[] = [first];
    while (performance.now() - stepStart < stepSeconds * 1000) {
      await sleep(SAMPLE_MS);
      samples.push(await sample());
      loadAverages.push(os.loadavg()[0]!);
    }
    const last = samples.at(-1)!;
    const half = samples[Math.floor(samples.length / 2)]!;
    const seconds = (last.at - first.at) / 1000;
    const sorted = Float64Array.from(latencies).sort();
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    const grew = (name: string, a: number | null, b: number | null) =>
      a !== null && b !== null && b - a > GROWTH_SLACK ? [name] : [];
    const growing = [
      ...grew("events", half.events, last.events),
      ...grew("run ends", half.ends, last.ends),
      ...grew("jobs", half.jobsQueued, last.jobsQueued),
      ...grew("webhooks", half.webhooksPending, last.webhooksPending),
    ];
    if (last.notifyUsage > 0.01) growing.push("NOTIFY");
    const share = (a: number, b: number) => (100 * (b - a)) / seconds;
    const apiShares = last.cpu.api.map((c, i) => share(first.cpu.api[i]!, c));
    const pgShare = share(first.cpu.postgres, last.cpu.postgres);
    const fleetShare = share(first.cpu.fleet, last.cpu.fleet);
    const clientShare = share(first.cpu.clients, last.cpu.clients);
    const emulatorShare = share(first.cpu.emulator, last.cpu.emulator);
    const lockWaits = samples.reduce((n, s) => n + s.lockWaits, 0) / samples.length;
    const lockTypes = new Map<string, number>();
    for (const s of samples)
      for (const [t, n] of Object.entries(s.lockTypes)) lockTypes.set(t, (lockTypes.get(t) ?? 0) + n);
    const activity = new Map<string, number>();
    for (const s of samples) for (const a of s.activity) activity.set(a, (activity.get(a) ?? 0) + 1);
    const busiest = [...activity]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([what, n]) => `${(n / samples.length).toFixed(1)}× ${what}`);
    const topLock = [...lockTypes].sort((a, b) => b[1] - a[1])[0]?.[0];
    const lockName = topLock === "object" ? "object: NOTIFY's commit lock" : (topLock ?? "?");
    const machineShare =
      (apiShares.reduce((a, b) => a + b, 0) + pgShare + fleetShare + clientShare + emulatorShare) / cores;
    const saturated =
      Math.max(...apiShares) >= 85
        ? `API CPU (${Math.max(...apiShares).toFixed(0)} % of its one core)`
        : emulatorShare >= 85
          ? `the Pub/Sub emulator (${emulatorShare.toFixed(0)} % of a core)`
          : lockWaits >= 1
            ? `Postgres locks (${lockWaits.toFixed(1)} backends waiting on average, mostly ${lockName})`
            : last.notifyUsage > 0.01
              ? `the NOTIFY queue (${(last.notifyUsage * 100).toFixed(1)} % full)`
              : growing.includes("events") || growing.includes("run ends")
                ? `the API's ingest of worker events (queue growing; the API at ${Math.max(...apiShares).toFixed(0)} % of a core, Postgres at ${pgShare.toFixed(0)} %, load average ${os.loadavg()[0]!.toFixed(1)} on ${cores} cores)`
                : machineShare >= 85 || os.loadavg()[0]! > cores
                  ? `the machine's CPU (the bench's own processes ${machineShare.toFixed(0)} % of ${cores} cores, load average ${os.loadavg()[0]!.toFixed(1)}; Postgres ${pgShare.toFixed(0)} %)`
                  : "nothing at its limit: the ingest's round trips, one event after another";
    // Progress samples a newer one of the same job replaced before the API applied it: an API behind
    // the fleet skips samples rather than queue them, so this is its backlog (Postgres transport).
    const samplesApplied = last.samples.applied - first.samples.applied;
    const samplesSkipped = last.samples.superseded - first.samples.superseded;
    const skippedShare = samplesSkipped / Math.max(1, samplesApplied + samplesSkipped);
    if (skippedShare > MAX_SKIPPED_SAMPLES)
      growing.push(`progress samples skipped (${(skippedShare * 100).toFixed(0)} %)`);
    const sustained = p99 < P99_BOUND_MS && growing.length === 0 && counts.notOffered === 0;
    const offeredPerSecond = (counts.offered - offeredAtStart) / seconds;
    const sent = (t: FleetTaken) => t.progress + t.ends + t.other;
    const events = sent(last.fleet) - sent(first.fleet);
    // What one worker event costs, whatever else the machine runs: the API's and Postgres's CPU over the events.
    const apiMsPerEvent = (apiShares.reduce((a, b) => a + b, 0) * seconds * 10) / Math.max(1, events);
    const pgMsPerEvent = (pgShare * seconds * 10) / Math.max(1, events);
    // And over the events applied: those sent less what the events queue gained (Postgres transport
    // only: the emulator's backlog is not visible). While the queue grows this is the figure that
    // travels; over events sent it is a floor.
    const applied = first.events === null || last.events === null ? null : events - (last.events - first.events);
    const perApplied = (share: number) =>
      applied === null ? "—" : ((share * seconds * 10) / Math.max(1, applied)).toFixed(2);
    const completedPerSecond = (last.finished - first.finished) / seconds;
    const n = (v: number | null, w: number) => (v === null ? "—" : String(v)).padStart(w);
    const line =
      `${String(target).padStart(9)} ${offeredPerSecond.toFixed(2).padStart(9)} ${completedPerSecond.toFixed(2).padStart(6)} ` +
      `${(events / seconds).toFixed(0).padStart(8)} ` +
      `${p50.toFixed(0).padStart(7)} ${p99.toFixed(0).padStart(7)} ${n(subscribersOpen, 5)} ${n(last.fleet.running, 8)} ` +
      `${n(first.events, 4)}→${n(last.events, 0)} ${n(first.ends, 3)}→${n(last.ends, 0)} ${n(first.jobsQueued, 2)}→${n(last.jobsQueued, 0)} ` +
      `${n(first.webhooksPending, 3)}→${n(last.webhooksPending, 0)} ${(last.notifyUsage * 100).toFixed(1).padStart(5)} ` +
      `${apiShares
        .map((s) => s.toFixed(0))
        .join("+")
        .padStart(9)} ${pgShare.toFixed(0).padStart(5)} ${fleetShare.toFixed(0).padStart(7)} ` +
      `${clientShare.toFixed(0).padStart(6)} ${emulatorShare.toFixed(0).padStart(7)} ${apiMsPerEvent.toFixed(2).padStart(10)} ` +
      `${pgMsPerEvent.toFixed(2).padStart(9)} ${(applied === null ? "—" : (applied / seconds).toFixed(0)).padStart(9)} ` +
      `${perApplied(apiShares.reduce((a, b) => a + b, 0)).padStart(10)} ${perApplied(pgShare).padStart(9)} ` +
      `${os.loadavg()[0]!.toFixed(1).padStart(5)}` +
      `${growing.length ? `  growing: ${growing.join(", ")}` : ""}${counts.notOffered ? `  ${counts.notOffered} arrivals not offered` : ""}` +
      `${sustained ? "" : `  saturated: ${saturated}`}`;
    console.log(line);
    if (busiest.length) console.log(`          Postgres busy with (backends on average): ${busiest.join(" | ")}`);
    if (samplesApplied + samplesSkipped > 0)
      console.log(
        `          progress samples: ${(samplesApplied / seconds).toFixed(0)}/s applied, ${(samplesSkipped / seconds).toFixed(0)}/s skipped (${(skippedShare * 100).toFixed(1)} %: a newer one of the job came first)`,
      );
    results.push({ rate: target, p50, p99, completedPerSecond, growing, saturated, sustained, line });
    if (!sustained && !flags["all-steps"]) break;
  }
  rate = 0;

  const sustainedRate = results.filter((r) => r.sustained).at(-1)?.rate ?? null;
  const failed = results.find((r) => !r.sustained);
  const load = loadAverages.length
    ? `${Math.min(...loadAverages).toFixed(1)}–${Math.max(...loadAverages).toFixed(1)}`
    : "—";
  console.log(`
videograph control plane — ${new Date().toISOString()}
machine: ${cores} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, \
Node ${process.version}, load average ${load} during the run
stack:   ${apiCount} API process(es), transport ${transport}${emulator ? " (Pub/Sub emulator)" : ""}, one Postgres; a \
simulated fleet (${failurePercent} % failures, ${cancelPercent} % cancels; workers of ${workerConcurrency} job(s) \
each, ${slotsPerWorker} slots a process) of ${videoSeconds} s ${height}p sources at ${speed} × real time; ${perVideo} subscribers a video up to ${subscriberCap}; webhooks to a loopback receiver \
(${hooks.received} deliveries)
uploads: ${counts.uploaded} (${counts.uploadErrors} errors${uploadErrors.size ? `: ${[...uploadErrors.keys()].slice(0, 3).join("; ")}` : ""}), \
${counts.canceled} canceled
verdict: ${sustainedRate === null ? "no step sustained" : `sustained ${sustainedRate.toLocaleString("en")} videos a day`} \
(progress p99 < ${P99_BOUND_MS} ms, no queue growing)${
    failed
      ? `; at ${failed.rate.toLocaleString("en")} a day p99 ${failed.p99.toFixed(0)} ms${failed.growing.length ? `, growing: ${failed.growing.join(", ")}` : ""}; saturated first: ${failed.saturated}`
      : `; the ramp's top (${maxRate.toLocaleString("en")}) held`
  }`);
  fleet.send({ stop: true });
  await Promise.race([nextMessage(fleet, "stopped"), sleep(15_000)]);
  // Stopped gracefully, so a profiled API writes its profile.
  await Promise.all(apis.map((a) => a.stop()));
  process.exitCode = sustainedRate === null ? 1 : 0;
} finally {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, "exit") : null)));
  receiver.close();
  await sql.end();
  await stopAllProcesses();
  await emulator?.stop();
  await database.drop();
  await rm(root, { recursive: true, force: true });
}
