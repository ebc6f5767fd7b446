// Subscriptions at scale (`npm run bench:fanout`): N graphql-ws subscribers of one API process,
// each on one of V videos with the front end's `videoEvents` document and an API key; progress of
// every video once a second, published as another API instance publishes it (its own fan-out:
// NOTIFYs on the fan-out's channel). Prints connect rate, event latency, events received and the server's memory,
// beside the same load on plain graphql-yoga + graphql-ws and on a raw ws server that serialises
// each event once (the sockets' own cost, the floor), measured in the same run.
//   npm run bench:fanout -- --subscribers=10000 --videos=100 --seconds=30
//   npm run bench:fanout -- --subscribers=10000 --stalled-percent=1     1 % of clients never read
//   DATABASE_URL=postgresql://…  uses that server (a fresh database in it); default: the local
//   server on 127.0.0.1:5432, else an embedded Postgres.
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import { ADMIN_AUTH } from "../test/support/auth.ts";
import type { ConnectedReport, FinishReport, OpenSubscribers } from "./support/fanout-clients.ts";
import { PUBLISH_MODES, type PublishMode, publish, SENT_AT_FIELD } from "./support/fanout-load.ts";
import type { VariantSnapshot, VideoEventPayload } from "../src/events/video-events.ts";

const USAGE = `usage: npm run bench:fanout -- [--subscribers=N] [--videos=N] [--seconds=S] [--stalled-percent=P] \
[--publish=bursty|even] [--connect=unpaced|paced] [--client-processes=N] [--connect-concurrency=N] \
[--profile=DIR] [--api-node-options=...]
Opens N graphql-ws subscribers (videoEvents, the front end's document, an API key) on one API process,
publishes one progress event per video per second for S seconds through the Postgres fan-out, and prints
connect rate, event latency (p50/p99/max), events received, errors and the API's memory, beside plain
graphql-yoga + graphql-ws and a raw ws server (each event serialised once: the floor) under the same load
in the same run. P % of the clients never read their socket.
--publish=bursty sends every video's event at the same instant each second; even spreads them over it.
--connect=unpaced opens every connection at once (a reconnect storm); paced keeps at most
--connect-concurrency handshakes in flight.
Defaults: 10000 subscribers, 100 videos, 30 s, 0 % stalled, bursty, unpaced, 2 client processes
(500 handshakes at a time when paced).
--profile=DIR writes both servers' V8 CPU profiles (.cpuprofile, for Chrome DevTools) into DIR.
--api-node-options="..." runs the API with these Node flags after its own (src/node-flags.ts), which
they override: e.g. --max-semi-space-size=64, V8's own young generation (docs/operations.md, "Memory").`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    subscribers: { type: "string", default: "10000" },
    videos: { type: "string", default: "100" },
    seconds: { type: "string", default: "30" },
    "stalled-percent": { type: "string", default: "0" },
    publish: { type: "string", default: "bursty" },
    connect: { type: "string", default: "unpaced" },
    "client-processes": { type: "string", default: "2" },
    "connect-concurrency": { type: "string", default: "500" },
    profile: { type: "string" },
    "api-node-options": { type: "string", default: "" },
  },
});
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { createDb } = await import("../src/db/client.ts");
const { EVENTS_CHANNEL, PostgresEventTarget } = await import("../src/events/postgres-event-target.ts");
const { createVideoPubSub, videoSnapshot } = await import("../src/events/video-events.ts");
const { startApiProcess, stopAllProcesses } = await import("../test/support/processes.ts");
const { CREATE_UPLOAD, postGraphQL, benchDatabase } = await import("./support/stack.ts");
const subscriberCount = Number(flags.subscribers);
const videoCount = Number(flags.videos);
const seconds = Number(flags.seconds);
const stalledPercent = Number(flags["stalled-percent"]);
const clientProcesses = Number(flags["client-processes"]);
const connectConcurrency = Number(flags["connect-concurrency"]);
const profileDir = flags.profile ? path.resolve(flags.profile) : null;
/** Node flags that make a server write its CPU profile into `profileDir` as it exits. */
const profileFlags = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
const publishMode = flags.publish as PublishMode;
const connectMode = flags.connect;
if (!PUBLISH_MODES.includes(publishMode)) usageError(USAGE, `--publish is one of ${PUBLISH_MODES.join(", ")}`);
if (connectMode !== "unpaced" && connectMode !== "paced") usageError(USAGE, "--connect is unpaced or paced");
if (
  ![subscriberCount, videoCount, seconds, clientProcesses, connectConcurrency].every(
    (n) => Number.isInteger(n) && n > 0,
  ) ||
  !(stalledPercent >= 0 && stalledPercent < 100)
) {
  usageError(USAGE, "each count must be a positive integer, and --stalled-percent at least 0 and under 100");
}

const GOALS = { connectRate: 1000, p99Ms: 100, rssMiB: 500 };
// Events published near the end are still in flight when publishing stops.
const DRAIN_MS = 3000;
const CLOCK_TICKS_PER_SECOND = 100;

const log = (line: string) => process.stderr.write(`[fanout] ${line}\n`);

interface ServerUnderTest {
  pid: number;
  url: string;
  connectionParams: Record<string, string>;
  videoIds: string[];
  /** Publishes every video's progress once a second for `seconds`; resolves with the count per video. */
  publish(seconds: number): Promise<number>;
  stop(): Promise<void>;
}

interface PhaseResult {
  name: string;
  attempted: number;
  accepted: number;
  failed: number;
  connectSeconds: number;
  reading: number;
  stalled: number;
  stalledClosed: number;
  expected: number;
  received: number;
  latenciesMs: Float64Array;
  errors: Record<string, number>;
  serverStartMiB: number;
  /** Once every subscriber is open, before any event. */
  serverOpenMiB: number;
  serverPeakMiB: number;
  serverEndMiB: number;
  /** CPU seconds of the server and of all client processes while connecting, then while events flowed. */
  connectCpu: { server: number; clients: number };
  eventsCpu: { server: number; clients: number };
  eventsSeconds: number;
}

async function procStatusMiB(pid: number): Promise<{ peak: number; now: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { peak: kb("VmHWM") / 1024, now: kb("VmRSS") / 1024 };
}

async function procCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), counted from the state (field 3) here.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

function isStalled(index: number): boolean {
  return Math.floor(((index + 1) * stalledPercent) / 100) > Math.floor((index * stalledPercent) / 100);
}

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

function forkProcess(entry: string, execArgv: string[] = []): ChildProcess {
  return fork(entry, [], {
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: [...process.execArgv, ...execArgv],
  });
}

async function measure(name: string, server: ServerUnderTest): Promise<PhaseResult> {
  const serverCpuAtStart = await procCpuSeconds(server.pid);
  const memoryAtStart = await procStatusMiB(server.pid);
  const clients = Array.from({ length: clientProcesses }, () => forkProcess("bench/support/fanout-clients.ts"));
  const shares: OpenSubscribers["subscribers"][] = clients.map(() => []);
  for (let i = 0; i < subscriberCount; i++)
    shares[i % clients.length]!.push({ videoId: server.videoIds[i % server.videoIds.length]!, stalled: isStalled(i) });
  log(`${name}: opening ${subscriberCount} subscribers from ${clients.length} client process(es)`);
  const connected = await Promise.all(
    clients.map((child, i) => {
      const reply = nextMessage<ConnectedReport>(child, "connected");
      const open: OpenSubscribers = {
        url: `${server.url.replace("http", "ws")}/graphql`,
        connectionParams: server.connectionParams,
        subscribers: shares[i]!,
        // Unpaced: every subscriber of the process starts its handshake at once.
        concurrency:
          connectMode === "unpaced" ? shares[i]!.length : Math.max(1, Math.round(connectConcurrency / clients.length)),
      };
      child.send({ open });
      return reply;
    }),
  );
  const accepted = connected.reduce((n, c) => n + c.accepted, 0);
  const connectSeconds =
    (Math.max(...connected.map((c) => c.lastAcceptedAt)) - Math.min(...connected.map((c) => c.firstAttemptAt))) / 1000;
  const serverCpuWhenOpen = await procCpuSeconds(server.pid);
  const memoryWhenOpen = await procStatusMiB(server.pid);
  const eventsStarted = performance.now();
  log(`${name}: ${accepted} accepted in ${connectSeconds.toFixed(1)} s; publishing for ${seconds} s`);
  const publishedPerVideo = await server.publish(seconds);
  await new Promise((r) => setTimeout(r, DRAIN_MS));
  const eventsSeconds = (performance.now() - eventsStarted) / 1000;
  const memory = await procStatusMiB(server.pid);
  const serverCpuAtEnd = await procCpuSeconds(server.pid);
  const reports = await Promise.all(
    clients.map((child) => {
      const reply = nextMessage<FinishReport>(child, "report");
      child.send({ finish: true });
      return reply;
    }),
  );
  await Promise.all(clients.map((child) => (child.exitCode === null ? once(child, "exit") : null)));

  const errors: Record<string, number> = {};
  for (const r of reports) for (const [key, n] of Object.entries(r.errors)) errors[key] = (errors[key] ?? 0) + n;
  const reading = reports.reduce((n, r) => n + Object.values(r.readingByVideo).reduce((a, b) => a + b, 0), 0);
  const latenciesMs = new Float64Array(reports.reduce((n, r) => n + r.latenciesMs.length, 0));
  let offset = 0;
  for (const r of reports) {
    latenciesMs.set(r.latenciesMs, offset);
    offset += r.latenciesMs.length;
  }
  latenciesMs.sort();
  return {
    name,
    attempted: subscriberCount,
    accepted,
    failed: connected.reduce((n, c) => n + c.failed, 0),
    connectSeconds,
    reading,
    stalled: reports.reduce((n, r) => n + r.stalled, 0),
    stalledClosed: reports.reduce((n, r) => n + r.stalledClosed, 0),
    expected: reading * publishedPerVideo,
    received: reports.reduce((n, r) => n + Object.values(r.receivedByVideo).reduce((a, b) => a + b, 0), 0),
    latenciesMs,
    errors,
    serverStartMiB: memoryAtStart.now,
    serverOpenMiB: memoryWhenOpen.now,
    serverPeakMiB: memory.peak,
    serverEndMiB: memory.now,
    connectCpu: {
      server: serverCpuWhenOpen - serverCpuAtStart,
      clients: connected.reduce((sum, c) => sum + c.cpuMs, 0) / 1000,
    },
    eventsCpu: {
      server: serverCpuAtEnd - serverCpuWhenOpen,
      clients: reports.reduce((sum, r) => sum + r.cpuMs, 0) / 1000,
    },
    eventsSeconds,
  };
}

/** The API as operators run it, its videos created through createUpload, progress sent as NOTIFYs. */
async function startVideograph(databaseUrl: string, dataDir: string): Promise<ServerUnderTest> {
  const api = await startApiProcess(
    "api",
    {
      DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl,
      SIGNING_SECRET: randomBytes(24).toString("hex"),
      RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000",
      NODE_OPTIONS: [process.env.NODE_OPTIONS ?? "", ...profileFlags].join(" ").trim() || undefined,
    },
    { nodeFlags: flags["api-node-options"].split(" ").filter(Boolean) },
  );
  const videoIds: string[] = [];
  for (let i = 0; i < videoCount; i++) {
    const created = await postGraphQL(api.url, CREATE_UPLOAD, { t: `fanout ${i}` });
    const id = created.data?.createUpload?.video?.id;
    if (!id) throw new Error(`createUpload: ${JSON.stringify(created.errors ?? created.data)}`);
    videoIds.push(id);
  }
  const db = createDb(databaseUrl, { max: 1 });
  const rows = await db.video.findMany({ where: { id: { in: videoIds } } });
  await db.$disconnect();
  const now = new Date().toISOString();
  const eventOf = new Map(
    rows.map((row) => {
      const variant: VariantSnapshot = {
        id: randomUUID(),
        videoId: row.id,
        name: "720p",
        kind: "VIDEO",
        width: 1280,
        height: 720,
        bandwidth: 3_000_000,
        bitrate: null,
        peakBitRate: null,
        averageBitRate: null,
        codecs: "avc1.64001f",
        status: "ENCODING",
        progress: 0.5,
        segmentCount: 3,
        playlistKey: null,
        error: null,
        createdAt: now,
        updatedAt: now,
        readyAt: null,
      };
      const event: VideoEventPayload = {
        kind: "variantProgress",
        video: videoSnapshot(row),
        variant,
        fps: 120,
        speed: 4,
        etaSeconds: 0,
      };
      return [row.id, event];
    }),
  );
  // Another API instance: its own fan-out, publishing as the API does.
  const otherInstance = new PostgresEventTarget<never>(databaseUrl);
  await otherInstance.start();
  const pubSub = createVideoPubSub(otherInstance);
  return {
    pid: api.child.pid!,
    url: api.url,
    connectionParams: ADMIN_AUTH,
    videoIds,
    async publish(forSeconds) {
      return publish(publishMode, videoIds, forSeconds, (videoId, sentAt) =>
        pubSub.publish("videoEvents", videoId, { ...eventOf.get(videoId)!, [SENT_AT_FIELD]: sentAt }),
      );
    },
    async stop() {
      await otherInstance.close();
      await api.stop();
    },
  };
}

async function startForkedServer(entry: string): Promise<ServerUnderTest> {
  const child = forkProcess(entry, profileFlags);
  const port = await nextMessage<number>(child, "port");
  const videoIds = Array.from({ length: videoCount }, () => randomUUID());
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${port}`,
    connectionParams: {},
    videoIds,
    async publish(forSeconds) {
      const reply = nextMessage<number>(child, "published");
      child.send({ publish: { videoIds, seconds: forSeconds, mode: publishMode } });
      return reply;
    },
    async stop() {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
    },
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** CPU seconds over wall seconds, as the share of one core per process. */
function cpuShare(cpuSeconds: number, wallSeconds: number, processes: number): string {
  const percent = (100 * cpuSeconds) / wallSeconds / processes;
  return `${cpuSeconds.toFixed(1)} s in ${wallSeconds.toFixed(1)} s (${percent.toFixed(0)} %${
    processes > 1 ? " per process" : ""
  })`;
}

const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)} ms` : "n/a");

function report(results: PhaseResult[]): string {
  const rows: [string, (r: PhaseResult) => string, string][] = [
    ["connections accepted", (r) => `${r.accepted}/${r.attempted}`, "every one"],
    ["connections failed", (r) => String(r.failed), "0"],
    [
      "connect rate",
      (r) => `${(r.accepted / r.connectSeconds).toFixed(0)} /s (${r.connectSeconds.toFixed(1)} s)`,
      `≥ ${GOALS.connectRate} /s`,
    ],
    ["event latency p50", (r) => ms(percentile(r.latenciesMs, 50)), ""],
    ["event latency p99", (r) => ms(percentile(r.latenciesMs, 99)), `< ${GOALS.p99Ms} ms`],
    ["event latency max", (r) => ms(r.latenciesMs.at(-1) ?? NaN), ""],
    ["events received", (r) => `${r.received}/${r.expected} (${r.reading} reading clients)`, "all"],
    ["stalled clients", (r) => `${r.stalled} (${r.stalledClosed} closed by the server)`, ""],
    ["server RSS before", (r) => `${r.serverStartMiB.toFixed(0)} MiB (VmRSS, no connection yet)`, ""],
    [
      "server RSS per idle subscriber",
      (r) => `${(((r.serverOpenMiB - r.serverStartMiB) * 1024) / r.accepted).toFixed(0)} KiB (all open - before)`,
      "",
    ],
    [
      "server RSS per subscriber",
      (r) => `${(((r.serverEndMiB - r.serverStartMiB) * 1024) / r.accepted).toFixed(0)} KiB (at end - before)`,
      "",
    ],
    ["server RSS peak", (r) => `${r.serverPeakMiB.toFixed(0)} MiB (VmHWM)`, `< ${GOALS.rssMiB} MiB`],
    ["server RSS at end", (r) => `${r.serverEndMiB.toFixed(0)} MiB (VmRSS)`, ""],
    ["server CPU connecting", (r) => cpuShare(r.connectCpu.server, r.connectSeconds, 1), ""],
    ["server CPU events", (r) => cpuShare(r.eventsCpu.server, r.eventsSeconds, 1), ""],
    ["client CPU connecting", (r) => cpuShare(r.connectCpu.clients, r.connectSeconds, clientProcesses), ""],
    ["client CPU events", (r) => cpuShare(r.eventsCpu.clients, r.eventsSeconds, clientProcesses), ""],
  ];
  const widths = [31, ...results.map(() => 38)];
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("")
      .trimEnd();
  const errorLines = results.flatMap((r) => Object.entries(r.errors).map(([key, n]) => `  ${r.name}: ${n} × ${key}`));
  return [
    line(["", ...results.map((r) => r.name), "goal"]),
    ...rows.map(([label, value, goal]) => line([label, ...results.map(value), goal])),
    `errors:${errorLines.length ? `\n${errorLines.join("\n")}` : " none"}`,
  ].join("\n");
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), "videograph-fanout-"));
await chmod(dataDir, 0o755);
const database = await benchDatabase(dataDir, "videograph_fanout", log);
try {
  log("starting the API");
  const videograph = await startVideograph(database.url, dataDir);
  const ours = await measure("videograph", videograph).finally(() => videograph.stop());
  log("starting plain graphql-yoga + graphql-ws");
  const plain = await startForkedServer("bench/support/plain-yoga-fanout.ts");
  const anchor = await measure("plain yoga + graphql-ws", plain).finally(() => plain.stop());
  log("starting raw ws (no GraphQL: the sockets' own cost)");
  const raw = await startForkedServer("bench/support/raw-ws-fanout.ts");
  const floor = await measure("raw ws, no GraphQL", raw).finally(() => raw.stop());
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`
videograph subscription fan-out — ${new Date().toISOString()}
machine: ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}
load:    ${subscriberCount} graphql-ws subscribers (${stalledPercent} % never read) on ${videoCount} videos, \
1 progress event per video per second for ${seconds} s, ${publishMode};
         ${clientProcesses} client process(es), ${
           connectMode === "unpaced" ? "every handshake at once" : `${connectConcurrency} handshakes at a time`
         }; videograph: one API \
process, an API key, events as NOTIFYs on ${EVENTS_CHANNEL}; plain: in-memory pubsub, no auth;
         raw ws: each event serialised once and written to every subscriber, the floor of any server here

${report([ours, anchor, floor])}`);
  process.exitCode = ours.failed === 0 && ours.received === ours.expected ? 0 : 1;
} finally {
  await stopAllProcesses();
  await database.drop();
  await rm(dataDir, { recursive: true, force: true });
}
