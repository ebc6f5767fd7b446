// Chaos run (`npm run chaos`): an API and workers as separate processes on an embedded Postgres of
// this script's own, N clips uploaded through the public API while faults land on a seeded
// schedule, then what became of every video, segment and process. See docs/failure-model.md, "Chaos".
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, statfs } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";
import type { Client as PgClient, QueryResultRow } from "pg";
import type { Capability } from "../src/protocol/worker-messages.ts";
import type { EmbeddedDatabase } from "../src/db/embedded.ts";
import type { ProcessInfo } from "../test/support/process-scan.ts";
import { followCancelTarget } from "./support/cancel-target.ts";
import { cancelOverruled, chaosExitCode } from "./support/cancel-verdict.ts";
import type { GraphQLResponse } from "./support/stack.ts";
import type { ReconnectingPublisher } from "./support/reconnecting-publisher.ts";
import type { SupervisedService } from "./support/supervisor.ts";

const run = promisify(execFile);

const FAULT_KINDS = [
  "worker-kill",
  "worker-term",
  "api-kill",
  "pg-restart",
  "duplicate",
  "cancel",
  "disk-full",
  "gpu-failing",
  "api-kill-mid-batch",
  "storage-outage",
  "slow-webhook",
] as const;
type FaultKind = (typeof FAULT_KINDS)[number];
/** How long a killed worker's children may take to die with it before they count as orphans. */
const ORPHAN_GRACE_MS = 2000;
const DEFAULT_FAULTS =
  "worker-kill:3,worker-term:1,api-kill:2,pg-restart:2,duplicate:2,cancel:2,disk-full:1,api-kill-mid-batch:1," +
  "storage-outage:1,gpu-failing:1,slow-webhook:1";
/** How long the storage-outage fault keeps storage read-only. */
const STORAGE_OUTAGE_MS = 30_000;

const USAGE = `usage: npm run chaos -- [--uploads=N] [--workers=N] [--seconds=S] [--size=WxH] [--seed=N] \
[--faults=LIST] [--settle=S] [--broadcasts=N] [--broadcast-seconds=S] [--keep]
Starts an embedded Postgres of its own, an API and N workers (separate processes, TRANSPORT=postgres,
local storage), uploads N generated clips through the public API and publishes live broadcasts over
RTMP while faults land on a seeded schedule, then prints uploads, faults, READY, FAILED by reason,
lost, stuck, rewritten segments, cancels honoured within 5 s, processes needing a human and what
became of each broadcast. Exits 1 when a figure that must be 0 is not.
  --broadcasts=N           live broadcasts published beside the uploads (default 2; 0: none), each by
                           an ffmpeg that reconnects like OBS (2 s after a drop or a refusal, giving up
                           after 60 s without sending); the workers serve live (WORKER_LIVE_SLOTS=2)
  --broadcast-seconds=S    seconds of video each broadcast sends in all (default 60, 10 to 1200)
      gated per broadcast: videos made (must be 1), recording READY, missing seconds (sent while
      connected and not recorded, beyond 1 s and 3 s per connection cut off) and a publisher that gave up
  --faults=kind:count,...   default ${DEFAULT_FAULTS}
      worker-kill  SIGKILL a worker's pid (not its group, as the OOM killer does), preferably one whose ffmpeg just \
started;
                   its children still running 2 s later count as processes needing a human
      worker-term  SIGTERM a worker (it hands its job back after SHUTDOWN_GRACE_SECONDS=2)
      api-kill     SIGKILL the API
      pg-restart   stop the embedded Postgres (fast shutdown), 2 s down, start it on the same data dir and port
      duplicate    publish a job's own message again through the transport: a running job, then a finished one, ...
      cancel       cancelVideo once one of a video's rungs is past 60 % or READY; honoured = CANCELED and its \
ffmpeg gone within 5 s
      disk-full    as root: shrink the tmpfs holding storage and the workers' temp dirs to what is in use, for 10 s
      gpu-failing  start an extra worker advertising nvenc whose stand-in ffmpeg passes the NVENC probe and fails \
every
                   h264_nvenc encode; counts videos that FAILED after a run on it (must be 0: they go on to cpu)
      api-kill-mid-batch  SIGKILL the API while it holds a claimed batch of worker events (seen in pgboss.job)
      storage-outage      as root: storage (DATA_DIR, a bind mount of its own) read-only for 30 s: every write \
fails (EROFS)
      slow-webhook a webhook receiver answering 200 then a byte every 5 s, for the uploading tenant; another \
tenant's
                   healthy receiver gets a delivery a second: its p50 must stay under 2 s and its max under 50 s (the claim lease of a delivery a killed API held, and a restart)
  Killed and exited services are restarted like a supervisor would, 1 s after they exit.
  --seed=N      replays a schedule (printed at the start; what it hits still depends on timing); --settle=S how \
long videos may take to end
                after the last fault (default 120); --keep keeps the run's directory and service logs.
Defaults: 20 uploads, 2 workers, 6 s clips of 640x360 with audio, 2 s HLS segments.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    uploads: { type: "string", default: "20" },
    workers: { type: "string", default: "2" },
    seconds: { type: "string", default: "6" },
    size: { type: "string", default: "640x360" },
    seed: { type: "string" },
    faults: { type: "string", default: DEFAULT_FAULTS },
    settle: { type: "string", default: "120" },
    broadcasts: { type: "string", default: "2" },
    "broadcast-seconds": { type: "string", default: "60" },
    keep: { type: "boolean", default: false },
  },
});
const uploads = Number(flags.uploads);
const workerCount = Number(flags.workers);
const clipSeconds = Number(flags.seconds);
const [width, height] = flags.size.split("x").map(Number) as [number, number];
const settleMs = Number(flags.settle) * 1000;
const seed = flags.seed === undefined ? Date.now() % 2 ** 31 : Number(flags.seed);
const broadcastCount = Number(flags.broadcasts);
const broadcastSeconds = Number(flags["broadcast-seconds"]);
if (
  !Number.isInteger(broadcastCount) ||
  broadcastCount < 0 ||
  broadcastCount > 8 ||
  !(broadcastSeconds >= 10 && broadcastSeconds <= 1200)
)
  usageError(USAGE, "--broadcasts is 0 to 8, --broadcast-seconds 10 to 1200");
if (
  ![uploads, workerCount, clipSeconds, width, height, settleMs].every((n) => Number.isFinite(n) && n > 0) ||
  !Number.isInteger(seed)
) {
  usageError(USAGE, "each number must be positive, and --seed an integer");
}
const requested = new Map<FaultKind, number>();
for (const item of flags.faults.split(",").filter(Boolean)) {
  const [kind, count = "1"] = item.split(":");
  if (!FAULT_KINDS.includes(kind as FaultKind) || !/^\d+$/.test(count))
    usageError(USAGE, `--faults: ${item} is not kind:count with a kind of ${FAULT_KINDS.join(", ")}`);
  requested.set(kind as FaultKind, Number(count));
}
// The bench's machinery is imported once the command line is read: --help needs none of it.
const { createClient } = await import("graphql-ws");
const { default: pg } = await import("pg");
const { default: WebSocket } = await import("ws");
const { startEmbeddedPostgres } = await import("../src/db/embedded.ts");
const { freePort } = await import("../src/free-port.ts");
const { setLogLevel } = await import("../src/log.ts");
const { EVENTS_QUEUE, jobQueueName } = await import("../src/protocol/queues.ts");
const { createPostgresTransport } = await import("../src/transport/postgres.ts");
const { ADMIN_AUTH } = await import("../test/support/auth.ts");
const { startApiProcess, startWorkerProcess, stopAllProcesses } = await import("../test/support/processes.ts");
const { ageSeconds, encodesJobs, familyOf, ffmpegUnder, inGroups, listProcesses, stillRunning, workingDirectory } =
  await import("../test/support/process-scan.ts");
const { watchSegments } = await import("./support/segment-watch.ts");
const { publishReconnecting } = await import("./support/reconnecting-publisher.ts");
const { DROP_ALLOWANCE_SECONDS, RECORDING_ALLOWANCE_SECONDS, missingSentSeconds, playlistDiscontinuities } =
  await import("./support/broadcast-measures.ts");
const { hlsLayout, videoPrefix } = await import("../src/protocol/storage-layout.ts");
const { CREATE_UPLOAD, generateClip, postGraphQL } = await import("./support/stack.ts");
const { startSlowWebhookFault } = await import("./support/slow-webhook.ts");
const { supervise } = await import("./support/supervisor.ts");

setLogLevel("warn");
// The embedded Postgres's own process logs with the level it inherits; the services get theirs.
process.env.LOG_LEVEL = "warn";
const say = (line: string) => process.stderr.write(`[chaos ${elapsed()}] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
let t0 = Date.now();
const elapsed = (at = Date.now()) => `+${((at - t0) / 1000).toFixed(1)}s`;

/** mulberry32: a small seeded generator, so a printed seed replays the same schedule. */
function seededRandom(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- the stack -----------------------------------------------------------------------------

const root = await mkdtemp(path.join(os.tmpdir(), "videograph-chaos-"));
// As root the embedded Postgres runs as the "postgres" user, which must traverse the path.
await chmod(root, 0o755);
const pgDir = path.join(root, "pg");
const diskDir = path.join(root, "disk");
const dataDir = path.join(diskDir, "data");
const workDir = path.join(diskDir, "work");
const logDir = path.join(root, "logs");
await mkdir(diskDir);
await mkdir(logDir);
const asRoot = process.getuid?.() === 0;
const TMPFS_SIZE = "1g";
let tmpfsMounted = false;
if (asRoot && (requested.get("disk-full") ?? 0) > 0) {
  await run("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_SIZE},mode=0755`, "tmpfs", diskDir]);
  tmpfsMounted = true;
}
await mkdir(dataDir);
await mkdir(workDir);
// A mount point of its own, so storage alone can be made read-only (storage-outage), not the temp dirs.
let storageBindMounted = false;
if (asRoot && (requested.get("storage-outage") ?? 0) > 0) {
  await run("mount", ["--bind", dataDir, dataDir]);
  storageBindMounted = true;
}

const pgPort = await freePort();
const apiPort = await freePort();
// Fixed, so a restarted API takes its publishers back on the same address.
const rtmpPort = await freePort();
const apiUrl = `http://127.0.0.1:${apiPort}`;
let database: EmbeddedDatabase | null = null;
const postgresGroups = new Set<number>();
async function startPostgres(): Promise<void> {
  database = await startEmbeddedPostgres(pgDir, pgPort);
  const pid = Number((await readFile(path.join(pgDir, "postgres", "postmaster.pid"), "utf8")).split("\n")[0]);
  const postmaster = listProcesses().find((p) => p.pid === pid);
  if (postmaster) postgresGroups.add(postmaster.pgrp);
}

interface FaultRecord {
  at: number;
  kind: FaultKind | "unplanned exit";
  what: string;
  outcome: string[];
  injected: boolean;
}
const faults: FaultRecord[] = [];

interface Upload {
  index: number;
  id: string | null;
  uploaded: boolean;
  /** Answers other than success the client got (createUpload and PUT), each once with a count. */
  refusals: Map<string, number>;
  cancelArmed: boolean;
}
const videos: Upload[] = [];

interface Broadcast {
  index: number;
  /** The tag its live stream gives each broadcast's video. */
  tag: string;
  streamId: string | null;
  publisher: ReconnectingPublisher | null;
  /** Why it never went on air, when the harness could not start it. */
  problem: string | null;
}
const broadcasts: Broadcast[] = [];
/** What became of a broadcast, as the API and storage tell it at the end. */
interface BroadcastFinal {
  broadcast: Broadcast;
  streamStatus: string;
  lastError: string | null;
  /** Each video it made, with the discontinuities of its top rung's playlist (null: none stored). */
  videos: {
    id: string;
    status: string;
    error: string | null;
    duration: number | null;
    discontinuities: number | null;
  }[];
  /** Its videos' durations together: a broadcast split in two still holds what was sent. */
  recordedSeconds: number;
  missingSeconds: number;
}

const services: SupervisedService[] = [];
const killedWorkerDebris: { fault: FaultRecord; processes: ProcessInfo[] }[] = [];
let exitCode = 1;
let stackStopped = false;
const watcher = watchSegments(dataDir);
let ws: ReturnType<typeof createClient> | null = null;

async function stopStack(): Promise<{ wouldNotStop: string[]; leftovers: ProcessInfo[] }> {
  stackStopped = true;
  const wouldNotStop: string[] = [];
  await Promise.all(
    services.map(async (s) => {
      if ((await s.stop(40_000)) === "killed") wouldNotStop.push(s.name);
    }),
  );
  await database?.stop().catch(() => undefined);
  await sleep(2000);
  const groups = new Set([...services.flatMap((s) => [...s.groups]), ...postgresGroups]);
  const leftovers = [...inGroups(groups), ...ffmpegUnder(diskDir)].filter(
    (p, i, all) => all.findIndex((q) => q.pid === p.pid) === i,
  );
  return { wouldNotStop, leftovers };
}

async function cleanUp(leftovers: ProcessInfo[]): Promise<void> {
  for (const b of broadcasts) b.publisher?.stop();
  for (const p of leftovers) if (stillRunning(p)) process.kill(p.pid, "SIGKILL");
  // A start that timed out may have left its process running, unknown to the supervisor.
  await stopAllProcesses();
  if (storageBindMounted)
    await run("umount", ["-l", dataDir]).catch((err) => say(`umount ${dataDir} failed: ${(err as Error).message}`));
  if (tmpfsMounted)
    await run("umount", ["-l", diskDir]).catch((err) => say(`umount ${diskDir} failed: ${(err as Error).message}`));
  if (flags.keep) say(`kept ${root} (service logs in ${logDir})`);
  else await rm(root, { recursive: true, force: true });
}

process.once("SIGINT", () => {
  say("interrupted: stopping everything");
  void stopStack()
    .then(({ leftovers }) => cleanUp(leftovers))
    .finally(() => process.exit(130));
});

try {
  const clip = await readFile(await generateClip(root, { seconds: clipSeconds, width, height }));
  say(`starting an embedded Postgres on 127.0.0.1:${pgPort} (data in ${pgDir})`);
  await startPostgres();
  // With the password the embedded Postgres keeps in its data dir, the same across restarts.
  const databaseUrl = database!.url;
  // Shared by every incarnation of the API: an upload URL signed before a restart stays valid.
  const signingSecret = `chaos-${seed}-signing-secret-not-a-secret-0123456789`;
  const common = {
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    TRANSPORT: "postgres",
    LOG_LEVEL: "info",
    JOB_STALL_SECONDS: "10",
  };
  const api = supervise(
    "api",
    () =>
      startApiProcess(
        "api",
        {
          ...common,
          PORT: String(apiPort),
          LOCAL_WORKER: "false",
          SIGNING_SECRET: signingSecret,
          HLS_SEGMENT_SECONDS: "2",
          RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000",
          LIVE_RTMP_PORT: broadcastCount > 0 ? String(rtmpPort) : "off",
          LIVE_SRT_PORT: "off",
          // Broadcasts' spools on the API's own disk, apart from media storage (which storage-outage
          // and disk-full fault), as on a cloud deployment whose storage is a bucket.
          LIVE_SPOOL_DIR: path.join(root, "api-spool"),
          LIVE_MAX_STREAMS_PER_TENANT: "20",
          // The slow-webhook fault's receivers are on loopback.
          ...(requested.has("slow-webhook") ? { WEBHOOK_ALLOW_PRIVATE_URLS: "true" } : {}),
        },
        { ownProcessGroup: true },
      ),
    { restartDelayMs: 1000, giveUpAfterMs: 90_000, logFile: path.join(logDir, "api.log") },
  );
  services.push(api);
  await api.up();
  if (!api.current()) throw new Error(`the API did not start; see ${logDir}/api.log (run with --keep)`);
  const workerIdOf = (name: string, incarnation: number) => `chaos-${name}.${incarnation}`;
  /**
   * The pid of a worker process by its WORKER_ID, to find the ffmpeg of a job's run whatever its temp dir is
   * called.
   */
  const workerPids = new Map<string, number>();
  for (let i = 1; i <= workerCount; i++) {
    const name = `worker-${i}`;
    services.push(
      supervise(
        name,
        (incarnation) =>
          startWorkerProcess(
            workerIdOf(name, incarnation),
            {
              ...common,
              WORKER_TMP_DIR: workDir,
              HEARTBEAT_INTERVAL_SECONDS: "2",
              SHUTDOWN_GRACE_SECONDS: "2",
              PROGRESS_INTERVAL_MS: "250",
              ...(broadcastCount > 0 ? { WORKER_CAPABILITIES: "cpu,live", WORKER_LIVE_SLOTS: "2" } : {}),
            },
            { ownProcessGroup: true },
          ).then((p) => {
            workerPids.set(workerIdOf(name, incarnation), p.child.pid!);
            return p;
          }),
        { restartDelayMs: 1000, giveUpAfterMs: 90_000, logFile: path.join(logDir, `${name}.log`) },
      ),
    );
  }
  await Promise.all(services.map((s) => s.up()));
  watcher.start();
  ws = createClient({
    url: `${apiUrl.replace("http", "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: ADMIN_AUTH,
    retryAttempts: 1000,
    shouldRetry: () => true,
    retryWait: async () => void (await sleep(1000)),
  });

  // --- the schedule --------------------------------------------------------------------------
  const random = seededRandom(seed);
  const kinds = [...requested]
    .filter(([kind]) => kind !== "cancel")
    .flatMap(([kind, count]) => Array<FaultKind>(count).fill(kind));
  const windowMs = Math.max(30, uploads * 3, kinds.length * 4) * 1000;
  const uploadAt = Array.from({ length: uploads }, (_, i) => (i * windowMs) / uploads);
  // A seeded shuffle of the faults into evenly spaced slots, each at a random point of its slot.
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const slotMs = (0.85 * windowMs) / Math.max(1, kinds.length);
  const timed = kinds.map((kind, i) => ({ kind, at: 0.1 * windowMs + slotMs * (i + 0.2 + 0.6 * random()) }));
  const cancelTargets = new Set<number>();
  const wantedCancels = Math.min(requested.get("cancel") ?? 0, uploads);
  while (cancelTargets.size < wantedCancels) cancelTargets.add(Math.floor(random() * uploads));
  t0 = Date.now();
  say(
    `seed ${seed}: ${uploads} uploads over ${windowMs / 1000} s; ` +
      `faults ${timed.map((f) => `${f.kind}@${(f.at / 1000).toFixed(1)}s`).join(" ")}; cancel uploads ` +
      `#${[...cancelTargets].join(", #")}`,
  );

  // --- the public API, as a client that retries what a CMS would retry ------------------------
  const gql = async (query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponse> => {
    for (let tries = 0; ; tries++) {
      try {
        return await postGraphQL(apiUrl, query, variables);
      } catch (err) {
        if (tries >= 60) throw err;
        await sleep(1000);
      }
    }
  };
  const VIDEO = /* GraphQL */ `query($id: ID!) { video(id: $id) { id status error playable variants { name height \
status }
    jobs(first: 50) { edges { node { id kind status attempt dispatchedTo routingReason runs { status workerId } } } } } }`;
  type VideoState = {
    id: string;
    status: string;
    error: string | null;
    playable: boolean;
    variants: { name: string; height: number | null; status: string }[];
    jobs: {
      edges: {
        node: {
          id: string;
          kind: string;
          status: string;
          attempt: number;
          dispatchedTo: string | null;
          routingReason: string | null;
          runs: { status: string; workerId: string }[];
        };
      }[];
    };
  };
  /** The video as the API reports it; an answer with errors (Postgres restarting) is asked again for up to 30 s. */
  const videoState = async (id: string): Promise<VideoState> => {
    for (let tries = 0; ; tries++) {
      const r = await gql(VIDEO, { id });
      if (r.data?.video || !r.errors || tries >= 30) return r.data?.video;
      await sleep(1000);
    }
  };

  const refusalTimes: { at: number; what: string }[] = [];
  const refused = (u: Upload, what: string) => {
    u.refusals.set(what, (u.refusals.get(what) ?? 0) + 1);
    refusalTimes.push({ at: Date.now(), what });
  };
  async function uploadOne(index: number): Promise<void> {
    const u: Upload = { index, id: null, uploaded: false, refusals: new Map(), cancelArmed: cancelTargets.has(index) };
    videos.push(u);
    const giveUpAt = Date.now() + 120_000;
    let uploadUrl: string | null = null;
    while (!uploadUrl && Date.now() < giveUpAt) {
      const r = await postGraphQL(apiUrl, CREATE_UPLOAD, { t: `chaos ${index}` }).catch(
        (err: Error): GraphQLResponse => ({
          errors: [{ message: (err.cause as Error | undefined)?.message ?? err.message }],
        }),
      );
      if (r.data?.createUpload?.uploadUrl) {
        uploadUrl = r.data.createUpload.uploadUrl;
        u.id = r.data.createUpload.video.id;
      } else {
        refused(
          u,
          `createUpload: ${(r.errors?.[0]?.message ?? r.data?.createUpload?.message ?? "no answer").slice(0, 100)}`,
        );
        await sleep(2000);
      }
    }
    if (!uploadUrl) return;
    if (u.cancelArmed) armCancel(u);
    while (!u.uploaded && Date.now() < giveUpAt) {
      try {
        const res = await fetch(`${apiUrl}${uploadUrl}`, { method: "PUT", body: clip });
        if (res.ok) u.uploaded = true;
        else refused(u, `PUT ${res.status}: ${(await res.text()).slice(0, 100)}`);
      } catch (err) {
        refused(
          u,
          `PUT: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`.slice(0, 100),
        );
      }
      if (u.uploaded) break;
      // An earlier PUT may have landed although its answer was lost.
      const state = await videoState(u.id!).catch(() => null);
      if (state && state.status !== "WAITING_FOR_UPLOAD") u.uploaded = true;
      else await sleep(2000);
    }
  }

  // --- live broadcasts, each by a publisher that reconnects as an encoder does -----------------
  const CREATE_LIVE_STREAM = /* GraphQL */ `mutation($title: String!, $tag: String!) {
    createLiveStream(input: { title: $title, tags: [$tag] }) {
      __typename ... on LiveStreamWithKey { streamKey liveStream { id ingestUrl } } ... on Error { message } } }`;
  async function broadcastOne(index: number): Promise<void> {
    // The stream's tag goes on each of its broadcasts' videos: how the videos it made are counted.
    const b: Broadcast = { index, tag: `chaos-broadcast-${index}`, streamId: null, publisher: null, problem: null };
    broadcasts.push(b);
    let created: { streamKey: string; liveStream: { id: string; ingestUrl: string } } | null = null;
    for (let tries = 0; !created && tries < 60; tries++) {
      const r = await gql(CREATE_LIVE_STREAM, { title: `chaos broadcast ${index}`, tag: b.tag }).catch(
        (): GraphQLResponse => ({}),
      );
      if (r.data?.createLiveStream?.streamKey) created = r.data.createLiveStream;
      else await sleep(1000);
    }
    if (!created) {
      b.problem = "createLiveStream was not answered in 60 tries";
      return;
    }
    b.streamId = created.liveStream.id;
    say(`broadcast ${index}: publishing ${broadcastSeconds} s to live stream ${b.streamId}`);
    b.publisher = publishReconnecting(
      `${created.liveStream.ingestUrl.replace("localhost", "127.0.0.1")}/${created.streamKey}`,
      { seconds: broadcastSeconds, log: (line) => say(`broadcast ${index}: ${line}`) },
    );
    await b.publisher.done;
    say(
      `broadcast ${index}: the publisher ${b.publisher.gaveUp() ? "GAVE UP" : "stopped"} after sending ` +
        `${b.publisher.sentSeconds().toFixed(1)} s over ${b.publisher.connections.length} connection(s)`,
    );
  }
  const STREAM = /* GraphQL */ `query($id: ID!) { liveStream(id: $id) { status lastError activeVideo { id status } } }`;
  const BROADCAST_VIDEOS = /* GraphQL */ `query($tag: String!) { videos(filter: { tags: [$tag] }, first: 10) {
    edges { node { id status error duration variants { name height } } } } }`;
  async function measureBroadcast(b: Broadcast): Promise<BroadcastFinal> {
    const stream = b.streamId
      ? (await gql(STREAM, { id: b.streamId }).catch((): GraphQLResponse => ({}))).data?.liveStream
      : null;
    const made: {
      id: string;
      status: string;
      error: string | null;
      duration: number | null;
      variants: { name: string; height: number | null }[];
    }[] = (
      (await gql(BROADCAST_VIDEOS, { tag: b.tag }).catch((): GraphQLResponse => ({}))).data?.videos?.edges ?? []
    ).map((e: { node: unknown }) => e.node);
    // The top video rung's playlist as storage holds it: an encode taking the broadcast over starts after a discontinuity.
    const discontinuitiesOf = async (video: (typeof made)[number]) => {
      const top = video.variants.filter((v) => v.height !== null).sort((x, y) => y.height! - x.height!)[0];
      if (!top) return null;
      const playlist = await readFile(
        path.join(dataDir, hlsLayout(videoPrefix(video.id)).playlistKey(top.name)),
        "utf8",
      ).catch(() => null);
      return playlist === null ? null : playlistDiscontinuities(playlist);
    };
    const recordedSeconds = made.reduce((sum, v) => sum + (v.duration ?? 0), 0);
    return {
      broadcast: b,
      streamStatus: stream?.status ?? "UNKNOWN",
      lastError: stream?.lastError ?? null,
      videos: await Promise.all(
        made.map(async (v) => ({
          id: v.id,
          status: v.status,
          error: v.error,
          duration: v.duration,
          discontinuities: await discontinuitiesOf(v),
        })),
      ),
      recordedSeconds,
      missingSeconds: missingSentSeconds({
        sentSeconds: b.publisher?.sentWhileConnected() ?? 0,
        recordedSeconds,
        drops: b.publisher?.drops() ?? 0,
      }),
    };
  }

  // --- faults --------------------------------------------------------------------------------
  const workers = services.filter((s) => s.name.startsWith("worker-"));
  const record = (kind: FaultKind, what: string): FaultRecord => {
    const f: FaultRecord = { at: Date.now(), kind, what, outcome: [], injected: true };
    faults.push(f);
    say(`${kind}: ${what}`);
    return f;
  };
  const notInjected = (kind: FaultKind, why: string) => {
    faults.push({ at: Date.now(), kind, what: why, outcome: [], injected: false });
    say(`${kind}: NOT injected: ${why}`);
  };
  /** Workers a fault is being injected into now: two faults on one process at once would blur both. */
  const targeted = new Set<SupervisedService>();
  /**
   * A worker to signal: first one whose ffmpeg started less than 1.5 s ago (the most work left to
   * orphan), after 10 s any that is encoding, after 15 s any that is up.
   */
  const workerToSignal = (since: number): SupervisedService | null => {
    const waited = Date.now() - since;
    const up = workers.filter((w) => w.current()?.child.pid && !targeted.has(w));
    const all = listProcesses();
    const ffmpegOf = (w: SupervisedService) =>
      familyOf(w.current()!.child.pid!, all).filter((p) => p.command === "ffmpeg");
    return (
      up.find((w) => ffmpegOf(w).some((p) => ageSeconds(p) < 1.5)) ??
      (waited > 10_000 ? up.find((w) => ffmpegOf(w).length > 0) : undefined) ??
      (waited > 15_000 ? up[Math.floor(random() * up.length)] : undefined) ??
      null
    );
  };

  async function killWorker(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    const kind = signal === "SIGKILL" ? "worker-kill" : "worker-term";
    const since = Date.now();
    let w = workerToSignal(since);
    while (!w && Date.now() - since < 60_000) {
      await sleep(200);
      w = workerToSignal(since);
    }
    if (!w) return notInjected(kind, "no worker was up for 60 s");
    targeted.add(w);
    try {
      await signalWorker(w, signal, kind);
    } finally {
      targeted.delete(w);
    }
  }

  async function signalWorker(w: SupervisedService, signal: "SIGKILL" | "SIGTERM", kind: FaultKind): Promise<void> {
    const pid = w.current()!.child.pid!;
    const group = familyOf(pid);
    const children = group.map(
      (p) =>
        `${p.command} ${p.pid} (${ageSeconds(p).toFixed(1)} s ` +
        `old${workingDirectory(p.pid)?.startsWith(workDir) ? ` in ${path.basename(workingDirectory(p.pid)!)}` : ""})`,
    );
    const f = record(
      kind,
      `${signal} ${w.name} (pid ${pid}, ${children.length ? `running ${children.join(", ")}` : "idle"})`,
    );
    const downAt = Date.now();
    await w.signal(signal);
    const back = w
      .up()
      .then(() => (w.current() ? `back after ${((Date.now() - downAt) / 1000).toFixed(1)} s` : "did NOT come back"));
    if (signal === "SIGKILL") {
      let lastSeenAlive = downAt;
      for (const until = downAt + ORPHAN_GRACE_MS; Date.now() < until && group.some(stillRunning); await sleep(100))
        lastSeenAlive = Date.now();
      const outlived = group.filter(stillRunning);
      killedWorkerDebris.push({ fault: f, processes: outlived });
      f.outcome.push(
        `${outlived.length} of its ${group.length} child process(es) still running ${ORPHAN_GRACE_MS / 1000} s ` +
          `after it (${outlived.map((p) => `${p.command} ${p.pid}`).join(", ") || "none"})` +
          (group.length && !outlived.length
            ? `; the last ended ${((lastSeenAlive - downAt) / 1000).toFixed(1)} s after it`
            : ""),
      );
    }
    f.outcome.push(await back);
  }

  async function killApi(): Promise<void> {
    await api.up();
    const pid = api.current()?.child.pid;
    if (!pid) return notInjected("api-kill", "the API did not come back");
    const f = record("api-kill", `SIGKILL api (pid ${pid})`);
    const downAt = Date.now();
    await api.signal("SIGKILL");
    await api.up();
    f.outcome.push(api.current() ? `back after ${((Date.now() - downAt) / 1000).toFixed(1)} s` : "did NOT come back");
  }

  // One restart at a time: two overlapping would stop the instance the other just started.
  let postgresRestarts = Promise.resolve();
  const restartPostgres = () => (postgresRestarts = postgresRestarts.then(restartPostgresNow));
  async function restartPostgresNow(): Promise<void> {
    const f = record("pg-restart", `stop and start the embedded Postgres on port ${pgPort}`);
    const began = Date.now();
    await database!.stop();
    const stoppedAt = Date.now();
    await sleep(2000);
    await startPostgres();
    f.outcome.push(
      `stop took ${((stoppedAt - began) / 1000).toFixed(1)} s (it waits up to 5 s for clients, then shuts down ` +
        `fast); down ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`,
    );
  }

  const slowWebhook = requested.has("slow-webhook") ? await startSlowWebhookFault({ databaseUrl, gql }) : null;
  async function injectSlowWebhook(): Promise<void> {
    const f = record("slow-webhook", "registering a slow and a healthy webhook receiver");
    f.outcome.push(await slowWebhook!.inject());
  }

  let duplicates = 0;
  async function duplicateDelivery(): Promise<void> {
    const wanted = duplicates++ % 2 === 0 ? "RUNNING" : "SUCCEEDED";
    const giveUpAt = Date.now() + 30_000;
    while (Date.now() < giveUpAt) {
      for (const u of videos.filter((v) => v.uploaded)) {
        const state = await videoState(u.id!).catch(() => null);
        const job = state?.jobs.edges.map((e) => e.node).find((j) => j.status === wanted && j.dispatchedTo);
        if (!job) continue;
        const queue = jobQueueName(job.dispatchedTo as Capability);
        const client = new pg.Client({ connectionString: databaseUrl });
        client.on("error", () => undefined);
        let message: unknown;
        try {
          await client.connect();
          // The message exactly as the dispatcher published it.
          const { rows } = await client.query(
            `SELECT data FROM pgboss.job WHERE name = $1 AND data->>'jobId' = $2 AND (data->>'attempt')::int = $3 ` +
              `ORDER BY created_on DESC LIMIT 1`,
            [queue, job.id, job.attempt],
          );
          message = rows[0]?.data;
        } catch {
          continue; // Postgres restarting: try again
        } finally {
          await client.end().catch(() => undefined);
        }
        if (!message) continue;
        const transport = createPostgresTransport({ connectionString: databaseUrl, stallSeconds: 10 });
        try {
          await transport.start();
          await transport.publishJob(job.dispatchedTo as Capability, message as never);
        } catch {
          continue;
        } finally {
          await transport.stop().catch(() => undefined);
        }
        const f = record(
          "duplicate",
          `job ${job.id} of video ${u.id} (${wanted}, attempt ${job.attempt}): its message published again to ${queue}`,
        );
        duplicateChecks.push({ fault: f, videoId: u.id!, jobId: job.id });
        return;
      }
      await sleep(1000);
    }
    notInjected("duplicate", `no ${wanted} job with a message to copy within 30 s`);
  }
  const duplicateChecks: { fault: FaultRecord; videoId: string; jobId: string }[] = [];

  async function fillDisk(): Promise<void> {
    if (!tmpfsMounted) return notInjected("disk-full", asRoot ? "no tmpfs" : "skipped: mounting a tmpfs needs root");
    // tmpfs refuses a size below what is in use, and uploads keep writing: measure and shrink until it takes.
    let shrunk: { usedKiB: number; sizeKiB: number } | null = null;
    for (let marginKiB = 64; !shrunk && marginKiB <= 4096; marginKiB *= 2) {
      const s = await statfs(diskDir);
      const usedKiB = Math.ceil(((s.blocks - s.bfree) * s.bsize) / 1024);
      const ok = await run("mount", ["-o", `remount,size=${usedKiB + marginKiB}k`, diskDir]).then(
        () => true,
        () => false,
      );
      if (ok) shrunk = { usedKiB, sizeKiB: usedKiB + marginKiB };
    }
    if (!shrunk) return notInjected("disk-full", "tmpfs refused every smaller size");
    const f = record(
      "disk-full",
      `tmpfs of storage and worker temp dirs shrunk to ${shrunk.sizeKiB} KiB (in use: ${shrunk.usedKiB} KiB) for 10 s`,
    );
    await sleep(10_000);
    await run("mount", ["-o", `remount,size=${TMPFS_SIZE}`, diskDir]);
    const during = refusalTimes.filter((r) => r.at >= f.at);
    f.outcome.push(
      `enlarged again; the client was refused ${during.length} time(s) ` +
        `meanwhile${during.length ? `: ${[...new Set(during.map((r) => r.what))].join("; ")}` : ""}`,
    );
  }

  // A GPU worker that passes its start-up probe and fails every real encode: each of its attempts
  // must go on to cpu, and the worker must drop nvenc after NVENC_MAX_CONSECUTIVE_FAILURES (3).
  const FAILING_GPU_FFMPEG = path.resolve(import.meta.dirname, "../test/fixtures/stand-in-ffmpeg/failing-nvenc");
  const FAILING_GPU_PREFIX = "chaos-gpu-worker-";
  const failingGpus: { fault: FaultRecord; name: string }[] = [];
  async function startFailingGpu(): Promise<void> {
    const name = `gpu-worker-${failingGpus.length + 1}`;
    const f = record(
      "gpu-failing",
      `start ${name}: advertises nvenc; its stand-in ffmpeg passes the NVENC probe and fails every h264_nvenc encode`,
    );
    failingGpus.push({ fault: f, name });
    const service = supervise(
      name,
      (incarnation) =>
        startWorkerProcess(
          workerIdOf(name, incarnation),
          {
            ...common,
            WORKER_CAPABILITIES: "nvenc",
            FFMPEG_PATH: FAILING_GPU_FFMPEG,
            WORKER_TMP_DIR: workDir,
            HEARTBEAT_INTERVAL_SECONDS: "2",
            SHUTDOWN_GRACE_SECONDS: "2",
            PROGRESS_INTERVAL_MS: "250",
          },
          { ownProcessGroup: true },
        ),
      { restartDelayMs: 1000, giveUpAfterMs: 90_000, logFile: path.join(logDir, `${name}.log`) },
    );
    services.push(service);
    await service.up();
    f.outcome.push(service.current() ? "up, advertising nvenc" : "did NOT start");
  }

  /**
   * SIGKILLs the API right after it claimed a batch of worker events: one is claimed while rows of the
   * events queue are `active`; those still active after the kill were held by the dead API. Tried up to
   * 3 times (a batch may finish between the look and the kill); then how long until they were applied.
   */
  async function killApiMidBatch(): Promise<void> {
    // A connection of its own, opened again when it broke (a pg-restart fault may land meanwhile).
    let connection: PgClient | null = null;
    const client = {
      async query<R extends QueryResultRow>(text: string, values: unknown[]) {
        try {
          connection ??= await (async () => {
            const c = new pg.Client({ connectionString: databaseUrl });
            c.on("error", () => undefined);
            await c.connect();
            return c;
          })();
          return await connection.query<R>(text, values);
        } catch (err) {
          await connection?.end().catch(() => undefined);
          connection = null;
          throw err;
        }
      },
      end: async () => connection?.end(),
    };
    const claimed = async () =>
      (
        await client.query<{ id: string }>(`SELECT id FROM pgboss.job WHERE name = $1 AND state = 'active'`, [
          EVENTS_QUEUE,
        ])
      ).rows.map((r) => r.id);
    try {
      for (let tries = 0; tries < 3; tries++) {
        await api.up();
        const pid = api.current()?.child.pid;
        if (!pid) return notInjected("api-kill-mid-batch", "the API did not come back");
        let held: string[] = [];
        for (const until = Date.now() + 30_000; !held.length && Date.now() < until; await sleep(10))
          held = await claimed().catch(() => []);
        if (!held.length) continue;
        const downAt = Date.now();
        await api.signal("SIGKILL");
        const stillHeld = (await claimed()).filter((id) => held.includes(id));
        if (!stillHeld.length) {
          say(`api-kill-mid-batch: the batch ended before the kill landed (try ${tries + 1} of 3)`);
          await api.up();
          continue;
        }
        const f = record(
          "api-kill-mid-batch",
          `SIGKILL api (pid ${pid}) holding a claimed batch of ${stillHeld.length} worker event(s)`,
        );
        await api.up();
        f.outcome.push(
          api.current() ? `back after ${((Date.now() - downAt) / 1000).toFixed(1)} s` : "did NOT come back",
        );
        const appliedAt = async () => {
          for (const until = downAt + 120_000; Date.now() < until; await sleep(250)) {
            const { rows } = await client
              .query<{ n: number }>(
                `SELECT count(*)::int AS n FROM pgboss.job WHERE id = ANY($1::uuid[]) AND state <> 'completed'`,
                [stillHeld],
              )
              .catch(() => ({ rows: [{ n: -1 }] }));
            if (rows[0]!.n === 0) return Date.now();
          }
          return null;
        };
        const at = await appliedAt();
        f.outcome.push(
          at === null
            ? `its claimed events were NOT applied within 120 s`
            : `its claimed events were applied ${((at - downAt) / 1000).toFixed(1)} s after the kill`,
        );
        return;
      }
      notInjected("api-kill-mid-batch", "no batch was still claimed when the kill landed, 3 times");
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async function cutStorage(): Promise<void> {
    if (!storageBindMounted) return notInjected("storage-outage", "skipped: a bind mount needs root");
    await run("mount", ["-o", "remount,bind,ro", dataDir]);
    const f = record("storage-outage", `storage (${dataDir}) read-only for ${STORAGE_OUTAGE_MS / 1000} s`);
    await sleep(STORAGE_OUTAGE_MS);
    await run("mount", ["-o", "remount,bind,rw", dataDir]);
    const during = refusalTimes.filter((r) => r.at >= f.at);
    f.outcome.push(
      `writable again; the client was refused ${during.length} time(s) ` +
        `meanwhile${during.length ? `: ${[...new Set(during.map((r) => r.what))].join("; ")}` : ""}`,
    );
  }

  interface CancelCheck {
    fault: FaultRecord;
    videoId: string;
    jobIds: string[];
    sentAt: number;
    answer: "success" | "refused" | "error";
    canceledAfterMs: number | null;
    ffmpegGoneAfterMs: number | null;
  }
  const cancelChecks: CancelCheck[] = [];
  const pendingCancels: Promise<void>[] = [];

  /** The first terminal status each cancel target's subscription reported (it ends there). */
  const firstTerminalSeen = new Map<string, string>();
  function armCancel(u: Upload): void {
    const EVENTS = /* GraphQL */ `subscription($id: ID!) { videoEvents(videoId: $id) { video { status }
      ... on VariantProgressEvent { variant { status progress } } ... on VariantStatusEvent { variant { status \
progress } } } }`;
    followCancelTarget(
      (sink) => ws!.subscribe({ query: EVENTS, variables: { id: u.id } }, sink),
      {
        status: (status) => {
          if (["READY", "FAILED", "CANCELED"].includes(status) && !firstTerminalSeen.has(u.id!))
            firstTerminalSeen.set(u.id!, status);
        },
        nearCompletion: () => pendingCancels.push(cancelNearCompletion(u.id!)),
        endedFirst: () => {
          // Moved to an upload not started yet, if any, so the requested number of cancels still lands.
          const later = uploadAt.findIndex(
            (_, i) => i > u.index && !cancelTargets.has(i) && !videos.some((v) => v.index === i),
          );
          if (later !== -1 && !stackStopped) {
            cancelTargets.add(later);
            say(`cancel: video ${u.id} ended before its rungs passed 60 %; upload #${later} will be canceled instead`);
          } else
            pendingCancels.push(
              Promise.resolve(notInjected("cancel", `video ${u.id}: its events ended before its rungs passed 60 %`)),
            );
        },
      },
      () => !stackStopped,
    );
  }

  async function cancelNearCompletion(videoId: string): Promise<void> {
    const before = await videoState(videoId).catch(() => null);
    if (!before) return notInjected("cancel", `video ${videoId}: its state could not be read`);
    const unfinished = before.jobs.edges
      .map((e) => e.node)
      .filter((j) => j.status === "RUNNING" || j.status === "QUEUED");
    const jobIds = unfinished.map((j) => j.id);
    const runners = unfinished
      .flatMap((j) => j.runs.filter((r) => r.status === "RUNNING").map((r) => workerPids.get(r.workerId)))
      .filter((pid) => pid !== undefined);
    // Its ffmpeg: one in the job's temp dir, or one started by a worker running the job now.
    const encodesTheJob = () => encodesJobs(workDir, jobIds, runners);
    const f = record(
      "cancel",
      `cancelVideo ${videoId} near completion (video ${before.status}, ` +
        `variants ${before.variants.map((v) => v.status).join("/")})`,
    );
    const requestedAt = Date.now();
    // As a CMS would, asked again after an unexpected error (not after a modelled answer such as a ValidationError).
    let r: GraphQLResponse = {};
    for (let tries = 0; tries < 15; tries++) {
      r = await gql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename ... on Error { message } } }`, {
        id: videoId,
      }).catch((err: Error): GraphQLResponse => ({ errors: [{ message: err.message }] }));
      if (r.data?.cancelVideo) break;
      f.outcome.push(`answered ${JSON.stringify(r.errors)}; asking again`);
      await sleep(1000);
    }
    // Timed from the answer: while the API or Postgres is restarting the request itself waits.
    const sentAt = Date.now();
    const typename = r.data?.cancelVideo?.__typename;
    // `gql` sends a request again when the API died before answering: when the first delivery had
    // already canceled the video, the answer to the second is "the video is CANCELED". Nothing else
    // in this run cancels a video, so that is this cancel, honoured.
    const canceledByAnEarlierDelivery =
      typename === "ValidationError" && /^The video is CANCELED\b/.test(r.data?.cancelVideo?.message ?? "");
    if (canceledByAnEarlierDelivery)
      f.outcome.push("the request was sent again after the API died: counted as success");
    const check: CancelCheck = {
      fault: f,
      videoId,
      jobIds,
      sentAt,
      answer:
        typename === "CancelVideoSuccess" || canceledByAnEarlierDelivery ? "success" : typename ? "refused" : "error",
      canceledAfterMs: null,
      ffmpegGoneAfterMs: null,
    };
    cancelChecks.push(check);
    f.outcome.push(
      `answered ${typename ?? JSON.stringify(r.errors)}` +
        `${r.data?.cancelVideo?.message ? `: ${r.data.cancelVideo.message}` : ""} after ${sentAt - requestedAt} ms`,
    );
    for (
      const deadline = sentAt + 10_000;
      Date.now() < deadline && (check.canceledAfterMs === null || check.ffmpegGoneAfterMs === null);
      await sleep(200)
    ) {
      if (check.ffmpegGoneAfterMs === null && !encodesTheJob()) check.ffmpegGoneAfterMs = Date.now() - sentAt;
      if (check.canceledAfterMs === null && (await videoState(videoId).catch(() => null))?.status === "CANCELED")
        check.canceledAfterMs = Date.now() - sentAt;
    }
    f.outcome.push(
      `after the answer: CANCELED after ${check.canceledAfterMs ?? "—"} ms, its ffmpeg gone ` +
        `after ${check.ffmpegGoneAfterMs ?? "—"} ms`,
    );
  }

  // --- run -----------------------------------------------------------------------------------
  const uploading = uploadAt.map(async (at, i) => {
    await sleep(at - (Date.now() - t0));
    await uploadOne(i);
  });
  const broadcasting = Array.from({ length: broadcastCount }, async (_, i) => {
    await sleep(0.05 * windowMs + i * 3000 - (Date.now() - t0));
    await broadcastOne(i + 1);
  });
  const injecting = timed.map(async ({ at, kind }) => {
    await sleep(at - (Date.now() - t0));
    const inject = {
      "worker-kill": () => killWorker("SIGKILL"),
      "worker-term": () => killWorker("SIGTERM"),
      "api-kill": killApi,
      "pg-restart": restartPostgres,
      duplicate: duplicateDelivery,
      "disk-full": fillDisk,
      "gpu-failing": startFailingGpu,
      "api-kill-mid-batch": killApiMidBatch,
      "storage-outage": cutStorage,
      "slow-webhook": injectSlowWebhook,
      cancel: async () => {},
    }[kind];
    const recordedBefore = faults.length;
    await inject().catch((err: Error) => {
      // A fault recorded and then cut short by the harness's own error was not injected as planned.
      const started = faults.slice(recordedBefore).find((f) => f.kind === kind && f.injected);
      if (started) {
        started.injected = false;
        started.outcome.push(`the harness failed: ${err.message}`);
        say(`${kind}: the harness failed: ${err.message}`);
      } else notInjected(kind, `the harness failed: ${err.message}`);
    });
  });
  for (const s of services) {
    // A crash the harness did not cause is a finding: logged as it happens.
    const seenExits = { n: 0 };
    const poll = setInterval(() => {
      for (const e of s.unplannedExits.slice(seenExits.n)) {
        faults.push({
          at: e.at,
          kind: "unplanned exit",
          what: `${s.name} exited by itself (code ${e.code}, signal ${e.signal})`,
          outcome: [e.reason],
          injected: false,
        });
        say(`${s.name} EXITED BY ITSELF (code ${e.code}, signal ${e.signal}): ${e.reason}`);
      }
      seenExits.n = s.unplannedExits.length;
    }, 500);
    poll.unref();
  }
  await Promise.all([...uploading, ...injecting, ...broadcasting]);
  const lastFaultAt = Date.now();
  say(`schedule done; waiting up to ${settleMs / 1000} s for every video and broadcast to end`);
  const terminal = new Set(["READY", "FAILED", "CANCELED"]);
  const streamEnded = async (b: Broadcast) => {
    const stream = (await gql(STREAM, { id: b.streamId }).catch((): GraphQLResponse => ({}))).data?.liveStream;
    return stream?.status === "ENDED" && terminal.has(stream.activeVideo?.status);
  };
  for (const deadline = lastFaultAt + settleMs; Date.now() < deadline; await sleep(2000)) {
    const states = await Promise.all(videos.filter((u) => u.uploaded).map((u) => videoState(u.id!).catch(() => null)));
    const ended = await Promise.all(broadcasts.filter((b) => b.streamId).map(streamEnded));
    if (states.every((s) => s && terminal.has(s.status)) && ended.every(Boolean)) break;
  }
  await Promise.all(pendingCancels);
  ws.dispose();
  await slowWebhook?.stop();

  // --- measure -------------------------------------------------------------------------------
  const finals = new Map<string, VideoState>();
  for (const u of videos.filter((v) => v.id)) {
    const state = await videoState(u.id!).catch(() => null);
    if (state) finals.set(u.id!, state);
  }
  const broadcastFinals: BroadcastFinal[] = [];
  for (const b of broadcasts) broadcastFinals.push(await measureBroadcast(b));
  await watcher.stop();
  const { wouldNotStop, leftovers } = await stopStack();

  const uploaded = videos.filter((u) => u.uploaded);
  const statusOf = (u: Upload) => finals.get(u.id!)?.status ?? "UNKNOWN";
  const liveJob = (u: Upload) =>
    finals.get(u.id!)?.jobs.edges.some((e) => e.node.status === "QUEUED" || e.node.status === "RUNNING") ?? false;
  const ready = uploaded.filter((u) => statusOf(u) === "READY");
  const failed = uploaded.filter((u) => statusOf(u) === "FAILED");
  const canceled = uploaded.filter((u) => statusOf(u) === "CANCELED");
  const unfinished = uploaded.filter((u) => !terminal.has(statusOf(u)));
  const stuck = unfinished.filter(liveJob);
  const lost = unfinished.filter((u) => !liveJob(u));
  const failedReasons = new Map<string, number>();
  for (const u of failed) {
    const reason = (finals.get(u.id!)?.error ?? "(no error)").replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "…").slice(0, 160);
    failedReasons.set(reason, (failedReasons.get(reason) ?? 0) + 1);
  }
  const rewrites = watcher.rewrites();
  const changedBytes = rewrites.filter((r) => !r.sameBytes);
  const rewrittenSegments = new Set(changedBytes.map((r) => r.key));
  const rewrittenByVideo = new Map<string, number>();
  for (const key of rewrittenSegments) {
    const id = key.split("/")[1]!;
    rewrittenByVideo.set(id, (rewrittenByVideo.get(id) ?? 0) + 1);
  }
  const honoured = cancelChecks.filter((c) => {
    if (c.answer === "refused")
      return terminal.has(finals.get(c.videoId)?.status ?? "") && finals.get(c.videoId)?.status !== "CANCELED";
    const final = finals.get(c.videoId);
    const writesAfter =
      watcher.firstSeen(c.videoId).filter((at) => at > c.sentAt + 5000).length +
      rewrites.filter((r) => r.key.startsWith(`videos/${c.videoId}/`) && r.at > c.sentAt + 5000).length;
    // A cancel that "succeeds" on a video already READY (or whose job went on to succeed) was not honoured, it was
    // overruled; a part of a split transcode succeeding just before it landed was not the video's end.
    const overruled = cancelOverruled(final?.jobs.edges.map((e) => e.node) ?? [], c.jobIds);
    const sawFirst = firstTerminalSeen.get(c.videoId);
    c.fault.outcome.push(
      `final: ${final?.status}, variants ${final?.variants.map((v) => v.status).join("/")}, its \
job(s) ${final?.jobs.edges
        .filter((e) => c.jobIds.includes(e.node.id))
        .map((e) => e.node.status)
        .join("/")}; first end state seen live: ${sawFirst ?? "none"}; ${writesAfter} segment write(s) more than 5 s \
after the answer`,
    );
    return (
      c.answer === "success" &&
      c.canceledAfterMs !== null &&
      c.canceledAfterMs <= 5000 &&
      c.ffmpegGoneAfterMs !== null &&
      c.ffmpegGoneAfterMs <= 5000 &&
      writesAfter === 0 &&
      final?.status === "CANCELED" &&
      !overruled &&
      (sawFirst === undefined || sawFirst === "CANCELED")
    );
  });
  for (const d of duplicateChecks) {
    const v = finals.get(d.videoId);
    const job = v?.jobs.edges.map((e) => e.node).find((j) => j.id === d.jobId);
    const segmentsRewritten = changedBytes.filter((r) => r.key.startsWith(`videos/${d.videoId}/`)).length;
    d.fault.outcome.push(
      `final: video ${v?.status}, job ${job?.status}, ` +
        `runs ${job?.runs.map((r) => `${r.workerId}:${r.status}`).join(", ")}; ${segmentsRewritten} segment(s) ` +
        `of it rewritten`,
    );
  }
  const ranOnFailingGpu = uploaded.filter((u) =>
    finals.get(u.id!)?.jobs.edges.some((e) => e.node.runs.some((r) => r.workerId.startsWith(FAILING_GPU_PREFIX))),
  );
  // A video whose job went on to cpu and failed there for another reason (a disk-full fault) did not
  // fail because of the GPU: it is counted under FAILED with that reason, not here.
  const wentOnToCpu = (u: (typeof uploaded)[number]) =>
    finals
      .get(u.id!)
      ?.jobs.edges.some(
        (e) =>
          e.node.routingReason === "GPU_ENCODE_FAILED" &&
          e.node.runs.some((r) => !r.workerId.startsWith(FAILING_GPU_PREFIX)),
      ) ?? false;
  const failedAfterGpu = ranOnFailingGpu.filter((u) => statusOf(u) === "FAILED" && !wentOnToCpu(u));
  for (const { fault, name } of failingGpus) {
    const gpuLog = await readFile(path.join(logDir, `${name}.log`), "utf8").catch(() => "");
    const sentToCpu = uploaded.filter((u) =>
      finals.get(u.id!)?.jobs.edges.some((e) => e.node.routingReason === "GPU_ENCODE_FAILED"),
    ).length;
    fault.outcome.push(
      `${ranOnFailingGpu.length} video(s) ran on a failing GPU: ` +
        `${ranOnFailingGpu.filter((u) => statusOf(u) === "READY").length} READY, ${failedAfterGpu.length} FAILED; ` +
        `${sentToCpu} sent on to cpu with GPU_ENCODE_FAILED; ` +
        (gpuLog.includes("NVENC DROPPED") ? "the worker dropped nvenc" : "the worker still advertised nvenc"),
    );
  }
  const orphaned = killedWorkerDebris.flatMap((k) => k.processes);
  const gaveUp = services.filter((s) => s.gaveUp).map((s) => s.name);
  const needingHuman = orphaned.length + leftovers.length + gaveUp.length;
  const readyIncomplete = ready.filter((u) => finals.get(u.id!)?.variants.some((v) => v.status !== "READY")).length;
  const failedPlayable = failed.filter((u) => finals.get(u.id!)?.playable).length;
  const internalPath = new RegExp(
    [root, "disk/data", "disk/work", "/tmp/"].map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"),
  );
  const leakingPaths = uploaded.filter((u) => internalPath.test(finals.get(u.id!)?.error ?? "")).length;
  const injectedCount = (kind: FaultKind) => faults.filter((f) => f.kind === kind && f.injected).length;
  const missing = [...requested].filter(
    ([kind, n]) => injectedCount(kind) < n && !((kind === "disk-full" || kind === "storage-outage") && !asRoot),
  );
  const unplanned = services.flatMap((s) => s.unplannedExits.map(() => s.name));
  const tempDirsLeft = (await readdir(workDir).catch(() => [])).length;
  const refusals = new Map<string, number>();
  for (const u of videos) for (const [what, n] of u.refusals) refusals.set(what, (refusals.get(what) ?? 0) + n);

  const gate = (n: number) => (n === 0 ? "" : "   <-- must be 0");
  const notOneVideo = broadcastFinals.filter((f) => f.videos.length !== 1);
  const notReady = broadcastFinals.filter((f) => f.videos.length === 0 || f.videos.some((v) => v.status !== "READY"));
  const missingSeconds = broadcastFinals.reduce((sum, f) => sum + f.missingSeconds, 0);
  const publishersGaveUp = broadcasts.filter((b) => b.publisher === null || b.publisher.gaveUp());
  const broadcastFailures =
    broadcastCount - broadcasts.length + notOneVideo.length + notReady.length + publishersGaveUp.length;
  const secondsOf = (n: number | null) => (n === null ? "—" : `${n.toFixed(1)} s`);
  const broadcastLines = broadcastFinals.map(({ broadcast: b, ...f }) => {
    const p = b.publisher;
    const connections = p?.connections ?? [];
    return (
      `\n  #${b.index} ${b.problem ?? `stream ${b.streamId}`} ${f.streamStatus}: ${f.videos.length} video(s) ` +
      `(${f.videos
        .map((v) => `${v.id} ${v.status} ${secondsOf(v.duration)}, ${v.discontinuities ?? "—"} discontinuities`)
        .join("; ")}); ` +
      `recorded ${secondsOf(f.recordedSeconds)} of ${secondsOf(p?.sentWhileConnected() ?? null)} sent while ` +
      `connected over ` +
      `${connections.length} connection(s) (${p?.drops() ?? 0} cut off, ${p?.refusals() ?? 0} refused), ` +
      `missing ${secondsOf(f.missingSeconds)}` +
      `${f.lastError ? `; lastError: ${f.lastError}` : ""}` +
      f.videos
        .filter((v) => v.error)
        .map((v) => `\n     ${v.id}: ${v.error!.slice(0, 160)}`)
        .join("")
    );
  });
  const broadcastBlock = broadcastCount
    ? `broadcasts                     ${broadcasts.length}/${broadcastCount} on air${broadcastLines.join("")}
broadcasts not one video       ${notOneVideo.length}${gate(notOneVideo.length)}
broadcasts not READY           ${notReady.length}${gate(notReady.length)}
broadcast seconds missing      ${missingSeconds.toFixed(1)}${gate(missingSeconds)} (sent while connected and not \
recorded, beyond ${RECORDING_ALLOWANCE_SECONDS} s + ${DROP_ALLOWANCE_SECONDS} s per connection cut off)
publishers that gave up        ${publishersGaveUp.length}${gate(publishersGaveUp.length)}
`
    : "";
  const webhookFairness = slowWebhook?.summary() ?? null;
  const webhookLine = webhookFairness
    ? `webhooks beside a slow one     ${webhookFairness.line}${webhookFairness.failed ? "   <-- over a bound" : ""}\n`
    : "";
  const faultLine = FAULT_KINDS.map((k) => `${k} ${injectedCount(k)}/${requested.get(k) ?? 0}`).join(", ");
  console.log(`
videograph chaos run — ${new Date().toISOString()}, seed ${seed} (replay: npm run chaos -- --seed=${seed} \
--uploads=${uploads} --workers=${workerCount} --seconds=${clipSeconds} --size=${width}x${height} \
--faults=${flags.faults} --broadcasts=${broadcastCount} --broadcast-seconds=${broadcastSeconds})
machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}, Node ${process.version}${asRoot ? ", root" : ""}
stack:   1 API, ${workerCount} worker(s), transport postgres, embedded Postgres of its own, local \
storage${tmpfsMounted ? ` on a ${TMPFS_SIZE} tmpfs` : ""}
load:    ${uploads} uploads of a ${clipSeconds} s ${width}x${height} clip with audio over ${windowMs / 1000} s, 2 s \
segments; ${broadcastCount} live broadcast(s) of ${broadcastSeconds} s (320x240 25 fps over RTMP, 2 s segments)

uploads                        ${uploaded.length}/${uploads} \
uploaded${refusals.size ? ` (client retries: ${[...refusals].map(([w, n]) => `${n}× ${w}`).join("; ")})` : ""}
faults injected/requested      ${faultLine}
READY                          ${ready.length}${readyIncomplete ? ` (${readyIncomplete} with a rung not READY)` : ""}
FAILED                         ${failed.length}${gate(failed.length)}${[...failedReasons].map(([r, n]) => `\n  ${n}× ${r}`).join("")}
CANCELED                       ${canceled.length}
lost                           ${lost.length}${gate(lost.length)}\
${lost.map((u) => ` ${u.id} (${statusOf(u)})`).join("")}
stuck                          ${stuck.length}${gate(stuck.length)}\
${stuck.map((u) => ` ${u.id} (${statusOf(u)})`).join("")}
rewritten segments             ${rewrittenSegments.size}${gate(rewrittenSegments.size)} \
(of ${watcher.segmentCount()} published; ${rewrites.length - changedBytes.length} written again with the same \
bytes)${[...rewrittenByVideo].map(([id, n]) => `\n  ${n} of video ${id}`).join("")}
cancels honoured within 5 s    ${honoured.length}/${cancelChecks.length}${gate(cancelChecks.length - honoured.length)}
FAILED after a failing GPU     ${failedAfterGpu.length}${gate(failedAfterGpu.length)} (of ${ranOnFailingGpu.length} \
that ran on it)
processes needing a human      ${needingHuman}${gate(needingHuman)} (${orphaned.length} outliving a killed worker \
by ${ORPHAN_GRACE_MS / 1000} s, ${leftovers.length} left after \
stopping${leftovers.length ? `: ${leftovers.map((p) => `${p.command} ${p.pid}`).join(", ")}` : ""}, \
${gaveUp.length} service(s) not coming back${gaveUp.length ? `: ${gaveUp.join(", ")}` : ""})
services that exited by themselves ${unplanned.length}${gate(unplanned.length)}\
${unplanned.length ? ` (${unplanned.join(", ")}: the fault log says why)` : ""}
${webhookLine}${broadcastBlock}faults not injected            ${missing.length}${gate(missing.length)}\
${missing.map(([k, n]) => ` ${k} ${injectedCount(k)}/${n}`).join(",")}\
${!asRoot && (requested.get("disk-full") ?? 0) > 0 ? "\n  disk-full skipped: mounting a tmpfs needs root" : ""}\
${!asRoot && (requested.get("storage-outage") ?? 0) > 0 ? "\n  storage-outage skipped: a bind mount needs root" : ""}
not gated:
  services SIGKILLed at the end        ${wouldNotStop.length} (no exit within 40 s of \
SIGTERM)${wouldNotStop.length ? `: ${wouldNotStop.join(", ")}` : ""}
  FAILED videos still playable         ${failedPlayable}
  errors naming internal paths         ${leakingPaths}
  worker temp dirs left                ${tempDirsLeft}

fault log:
${faults
  .sort((a, b) => a.at - b.at)
  .map(
    (f) =>
      `  ${elapsed(f.at).padStart(7)} ${f.kind}${f.injected ? "" : " (not injected)"}: ${f.what}` +
      f.outcome.map((o) => `\n           ${o}`).join(""),
  )
  .join("\n")}`);
  exitCode = chaosExitCode({
    failedVideos: failed.length,
    lostVideos: lost.length,
    stuckVideos: stuck.length,
    rewrittenSegments: rewrittenSegments.size,
    cancelsNotHonoured: cancelChecks.length - honoured.length,
    failedAfterFailingGpu: failedAfterGpu.length,
    processesNeedingHuman: needingHuman,
    faultsNotInjected: missing.length,
    webhookFairnessBroken: webhookFairness?.failed ? 1 : 0,
    broadcastFailures,
    broadcastSecondsMissing: missingSeconds,
    unplannedExits: unplanned.length,
  });
  await cleanUp(leftovers);
} catch (err) {
  say(`the run failed: ${(err as Error).stack}`);
  if (!stackStopped)
    await stopStack()
      .then(({ leftovers }) => cleanUp(leftovers))
      .catch(() => undefined);
  else await cleanUp([]);
}
process.exit(exitCode);
