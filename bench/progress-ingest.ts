// What the API and Postgres spend per worker progress event applied (`npm run bench:progress-ingest`):
// the API's event ingestor, in this process, applies `job.progress` of --jobs running transcodes of a
// 1080p ladder (8 rungs), each reporting once a round, through the real fan-out (NOTIFYs), with the
// default progress write interval; once all of a round's events in one batch (as a busy API takes
// them), and, the anchor in the same run, each event in a batch of its own. Prints the CPU of this
// process and of our database's Postgres backends per event. docs/performance.md, "The control plane".
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseCommandLine, usageError } from "../src/shared/command-line.ts";

const USAGE = `usage: npm run bench:progress-ingest -- [--jobs=N] [--rounds=R] [--round-ms=MS]
Applies R rounds of one job.progress per job for N running 1080p transcodes (8 rungs), a round every
MS ms (writes every PROGRESS_WRITE_INTERVAL_MS, 2 s, per job): batched (a round in one batch) and,
as the anchor, one event a batch. Prints the API's and Postgres's CPU per event.
Defaults: 100 jobs, 20 rounds, 1000 ms.`;
const { values: flags } = parseCommandLine(USAGE, {
  options: {
    jobs: { type: "string", default: "100" },
    rounds: { type: "string", default: "20" },
    "round-ms": { type: "string", default: "1000" },
  },
});
const [jobCount, rounds, roundMs] = [flags.jobs, flags.rounds, flags["round-ms"]].map(Number) as [
  number,
  number,
  number,
];
if (![jobCount, rounds, roundMs].every((n) => Number.isInteger(n) && n > 0)) usageError(USAGE, "positive integers");

const { applyMigrations } = await import("../src/db/migrate.ts");
const { createDb } = await import("../src/db/client.ts");
const { PostgresEventTarget } = await import("../src/events/postgres-event-target.ts");
const { createVideoPubSub } = await import("../src/events/video-events.ts");
const { PROTOCOL_VERSION } = await import("../src/protocol/version.ts");
const { CLOCK_TICKS_PER_SECOND, parseProcStat } = await import("../src/shared/proc-stat.ts");
const { planLadder } = await import("../render-worker/media/ladder.ts");
const { createTestEventIngestor } = await import("../test/support/event-ingestor.ts");
const { ensureTenant } = await import("../src/auth/api-keys.ts");
const { benchDatabase } = await import("./support/stack.ts");

const log = (line: string) => process.stderr.write(`[progress-ingest] ${line}\n`);
const root = await mkdtemp(path.join(os.tmpdir(), "videograph-progress-ingest-"));
const database = await benchDatabase(root, "videograph_progress_ingest", log);
await applyMigrations(database.url);
const db = createDb(database.url);
const fanOut = new PostgresEventTarget<never>(database.url);
await fanOut.start();
try {
  const probe = { duration: 180, width: 1920, height: 1080, fps: 30, rotation: 0, hasAudio: true };
  const ladder = planLadder({ ...probe, videoCodec: "h264", audioCodec: "aac" }, { segmentSeconds: 4 });
  const tenantId = (await ensureTenant(db, "progress-ingest")).id;

  /**
   * CPU seconds of our database's backends (the ingestor's pool and the fan-out's connection) so far,
   * sampled each round: a backend that ends between samples takes only its last round's CPU along.
   */
  let seenByPid = new Map<number, number>();
  let postgresTotal = 0;
  async function postgresCpu(): Promise<number> {
    const pids = await db.$queryRaw<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE datname = current_database()`;
    const now = new Map<number, number>();
    for (const { pid } of pids) {
      const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
      if (!text) continue;
      const stat = parseProcStat(text);
      now.set(pid, (stat.field(14) + stat.field(15)) / CLOCK_TICKS_PER_SECOND);
    }
    for (const [pid, seconds] of now) postgresTotal += Math.max(0, seconds - (seenByPid.get(pid) ?? seconds));
    seenByPid = now;
    return postgresTotal;
  }

  async function measure(batched: boolean) {
    const ingestor = createTestEventIngestor(db, { pubSub: createVideoPubSub(fanOut), progressWriteIntervalMs: 2000 });
    const jobIds: string[] = [];
    for (let i = 0; i < jobCount; i++) {
      const video = await db.video.create({ data: { tenantId, title: `p${i}`, status: "PROCESSING" } });
      await db.variant.createMany({
        data: ladder.map((r) => ({
          videoId: video.id,
          name: r.name,
          kind: r.kind,
          width: r.width,
          height: r.height,
          bandwidth: r.bandwidth,
          codecs: r.codecs,
        })),
      });
      jobIds.push((await db.job.create({ data: { videoId: video.id, kind: "TRANSCODE", status: "RUNNING" } })).id);
    }
    const round = (k: number) =>
      jobIds.map((jobId) => ({
        v: PROTOCOL_VERSION,
        type: "job.progress",
        jobId,
        attempt: 1,
        seq: k + 1,
        workerId: "bench",
        at: new Date().toISOString(),
        progress: k / (rounds + 1),
        fps: 30,
        speed: 1.2,
        etaSeconds: 60,
        variants: ladder.map((r) => ({ name: r.name, progress: k / (rounds + 1), segmentCount: k })),
      }));
    const [pg0, cpu0, t0] = [await postgresCpu(), process.cpuUsage(), performance.now()];
    for (let k = 1; k <= rounds; k++) {
      const start = performance.now();
      if (batched) await ingestor.ingest(round(k));
      else for (const e of round(k)) await ingestor.ingest([e]);
      await postgresCpu();
      await new Promise((r) => setTimeout(r, Math.max(0, roundMs - (performance.now() - start))));
    }
    const cpu = process.cpuUsage(cpu0);
    const [pg, wall] = [(await postgresCpu()) - pg0, (performance.now() - t0) / 1000];
    const events = rounds * jobCount;
    const line =
      `${batched ? "a round a batch" : "an event a batch"}`.padEnd(17) +
      `${events} events in ${wall.toFixed(1)} s; API ${((cpu.user + cpu.system) / 1000 / events).toFixed(3)} ms ` +
      `and Postgres ${((pg * 1000) / events).toFixed(3)} ms of CPU per event`;
    console.log(line);
  }
  log(`${os.cpus().length} cores (${os.cpus()[0]?.model}), load average ${os.loadavg()[0]!.toFixed(1)}`);
  console.log(`${jobCount} running 1080p transcodes (${ladder.length} rungs), ${rounds} rounds of ${roundMs} ms`);
  await measure(true);
  await measure(false);
  console.log(`load average ${os.loadavg()[0]!.toFixed(1)}, ${new Date().toISOString()}`);
} finally {
  await fanOut.close();
  await db.$disconnect();
  await database.drop();
  await rm(root, { recursive: true, force: true });
}
