import type { Db } from "../db/client.ts";
import { type QueuePosition, videoSnapshot, type VideoPubSub } from "../events/video-events.ts";
import type { Job } from "../generated/prisma/client.ts";
import { log } from "../log.ts";

/** The queue a job waits in. */
export const queueOf = (job: Pick<Job, "dispatchedTo" | "capability">): string => job.dispatchedTo ?? job.capability;

/** Finished jobs of a queue the estimates learn from: the last this many of the last day. */
const RECENT_JOBS = 20;
const RECENT_WINDOW_MS = 24 * 3600_000;
/** A running job's progress is trusted for its remaining time from this fraction on. */
const TRUSTED_PROGRESS = 0.05;

/** How a queue's slots free up: what its live workers run, what it waits for, and how long its jobs take. */
interface QueueState {
  queued: Array<{ id: string; videoId: string; estimatedWallSeconds: number | null; dispatchedAt: Date | null }>;
  slots: number;
  /** When each slot is free next, in seconds from now, sorted. */
  freeAt: number[];
  expected: (estimate: number | null) => number | null;
}

async function readQueueState(db: Db, queue: string, aliveWithinSeconds: number, now: number): Promise<QueueState> {
  const [queued, running, workers, recent] = await Promise.all([
    db.job.findMany({
      where: { status: "QUEUED", OR: [{ dispatchedTo: queue }, { dispatchedTo: null, capability: queue }] },
      select: { id: true, videoId: true, estimatedWallSeconds: true, dispatchedAt: true },
      orderBy: [{ dispatchedAt: { sort: "asc", nulls: "last" } }, { createdAt: "asc" }, { id: "asc" }],
    }),
    // A run whose worker went silent frees no slot of a live worker: its job is queued again.
    db.job.findMany({
      where: {
        status: "RUNNING",
        dispatchedTo: queue,
        heartbeatAt: { gte: new Date(now - aliveWithinSeconds * 1000) },
      },
      select: { startedAt: true, progress: true, estimatedWallSeconds: true },
    }),
    db.worker.aggregate({
      _sum: { slots: true },
      where: { capabilities: { has: queue }, lastHeartbeatAt: { gte: new Date(now - aliveWithinSeconds * 1000) } },
    }),
    db.job.findMany({
      where: {
        status: "SUCCEEDED",
        dispatchedTo: queue,
        startedAt: { not: null },
        finishedAt: { gte: new Date(now - RECENT_WINDOW_MS) },
      },
      select: { startedAt: true, finishedAt: true, wallSeconds: true, estimatedWallSeconds: true },
      orderBy: { finishedAt: "desc" },
      take: RECENT_JOBS,
    }),
  ]);
  const slots = workers._sum.slots ?? 0;
  const expected = expectedRunSeconds(recent);
  const freeAt: number[] = running
    .map((job) => {
      const elapsed = job.startedAt ? Math.max(0, (now - job.startedAt.getTime()) / 1000) : 0;
      const total = job.progress >= TRUSTED_PROGRESS ? elapsed / job.progress : expected(job.estimatedWallSeconds);
      return total === null ? null : Math.max(0, total - elapsed);
    })
    .filter((s): s is number => s !== null)
    .sort((a, b) => a - b)
    .slice(0, slots);
  while (freeAt.length < slots) freeAt.unshift(0);
  return { queued, slots, freeAt, expected };
}

/**
 * Takes jobs in order: each starts when the first slot frees, but not before its `readyAt` (seconds
 * from now), and holds that slot for its expected run time. Null from the first job whose run time
 * is unknown on (and for all when no slot serves the queue). Consumes `state.freeAt`.
 */
function simulateStarts(
  state: QueueState,
  jobs: Array<{ estimatedWallSeconds: number | null; readyAt?: number }>,
): Array<number | null> {
  let known = state.slots > 0;
  return jobs.map((job) => {
    if (!known) return null;
    const start = Math.max(state.freeAt.shift()!, job.readyAt ?? 0);
    const runSeconds = state.expected(job.estimatedWallSeconds);
    if (runSeconds === null) known = false;
    else insertSorted(state.freeAt, start + runSeconds);
    return start;
  });
}

/** What the nvenc queue's estimates need to know of GPU routing's fallback to cpu. */
export interface GpuFallbackEstimate {
  /** GPU_FALLBACK_AFTER_SECONDS: a job left this long on the nvenc queue is sent to cpu. */
  afterSeconds: number;
  /** A GPU pool whose last heartbeat is older than this (JOB_STALL_SECONDS) is taken for dead. */
  silentAfterSeconds: number;
}

/**
 * Positions and estimated starts of `queue`'s QUEUED jobs, in the order workers take them, by simulating the
 * queue: each live slot frees when its job is expected to end and takes the next, which runs its cost model's
 * wall seconds scaled by how the queue's recent jobs compared with their estimates. An nvenc job with no GPU
 * worker heard for `silentAfterSeconds` starts no sooner than GPU routing's fallback moves it to cpu.
 */
async function readQueuePositions(
  db: Db,
  queue: string,
  aliveWithinSeconds: number,
  gpuFallback: GpuFallbackEstimate | undefined,
): Promise<Array<{ jobId: string; videoId: string; position: QueuePosition }>> {
  const now = Date.now();
  const state = await readQueueState(db, queue, aliveWithinSeconds, now);
  let starts: Array<number | null>;
  if (queue === "nvenc" && gpuFallback && (await gpuPoolSilent(db, now, gpuFallback.silentAfterSeconds))) {
    const cpu = await readQueueState(db, "cpu", aliveWithinSeconds, now);
    simulateStarts(cpu, cpu.queued);
    starts = simulateStarts(
      cpu,
      state.queued.map((job) => {
        const sentAt = job.dispatchedAt?.getTime() ?? now;
        const readyAt = Math.max(0, (sentAt - now) / 1000 + gpuFallback.afterSeconds);
        return { estimatedWallSeconds: job.estimatedWallSeconds, readyAt };
      }),
    );
  } else {
    starts = simulateStarts(state, state.queued);
  }
  const at = new Date(now).toISOString();
  return state.queued.map((job, i) => ({
    jobId: job.id,
    videoId: job.videoId,
    position: { queue, position: i + 1, slots: state.slots, estimatedStartSeconds: starts[i]!, at },
  }));
}

/** No worker advertising nvenc has heartbeated within `silentAfterSeconds`. */
async function gpuPoolSilent(db: Db, now: number, silentAfterSeconds: number): Promise<boolean> {
  const since = new Date(now - silentAfterSeconds * 1000);
  return (await db.worker.count({ where: { capabilities: { has: "nvenc" }, lastHeartbeatAt: { gte: since } } })) === 0;
}

/**
 * A queued job's expected run time from the queue's recent jobs: its estimate times how long they
 * really ran against their estimates, or their mean run time; its bare estimate before any.
 */
function expectedRunSeconds(
  recent: Array<{
    startedAt: Date | null;
    finishedAt: Date | null;
    wallSeconds: number | null;
    estimatedWallSeconds: number | null;
  }>,
): (estimate: number | null) => number | null {
  const measured = recent.map((j) => ({
    seconds: j.wallSeconds ?? ((j.finishedAt?.getTime() ?? 0) - (j.startedAt?.getTime() ?? 0)) / 1000,
    estimate: j.estimatedWallSeconds,
  }));
  const withEstimate = measured.filter((m) => m.estimate !== null && m.estimate > 0);
  const factor =
    withEstimate.length > 0
      ? withEstimate.reduce((a, m) => a + m.seconds, 0) / withEstimate.reduce((a, m) => a + m.estimate!, 0)
      : null;
  const mean = measured.length > 0 ? measured.reduce((a, m) => a + m.seconds, 0) / measured.length : null;
  return (estimate) => {
    if (estimate !== null && factor !== null) return estimate * factor;
    return mean ?? estimate;
  };
}

function insertSorted(list: number[], value: number): void {
  const i = list.findIndex((v) => v > value);
  if (i === -1) list.push(value);
  else list.splice(i, 0, value);
}

/** How often the watch looks for workers that went silent. */
const SILENCE_SWEEP_MS = 2000;

export interface QueueWatch {
  /** Starts looking for workers that go silent: their queues' waiting videos hear where they stand. */
  start(): void;
  /** The queue changed (a job of it started, ended or was canceled): its waiting jobs' videos hear where they stand. */
  changed(queue: string): void;
  /** As `changed`, for the queue of job `jobId`. */
  jobChanged(jobId: string): Promise<void>;
  /** Every QUEUED job's position in `queue`, read once per call. */
  positions(queue: string): ReturnType<typeof readQueuePositions>;
  /**
   * No publish starts after this; resolves once those under way are done (the API's stop, before
   * its database is closed: a change coalescing when it stopped is dropped, its readers are gone).
   */
  stop(): Promise<void>;
}

/**
 * Publishes a `queuePosition` event to each waiting video of a queue when the queue changes:
 * changes within `coalesceMs` are read once, in one set of queries for the whole queue, and each
 * waiting video gets one event on its own channel (its subscribers only). A worker that goes silent
 * (no heartbeat for `aliveWithinSeconds`) changes its queues too: their slots and when they free.
 */
export function createQueueWatch(deps: {
  db: Db;
  pubSub: VideoPubSub;
  /** A worker heard from within this long serves its queues (JOB_STALL_SECONDS: silent longer, its jobs stall). */
  aliveWithinSeconds: number;
  /** How often to look for workers that went silent (2 s). */
  sweepMs?: number;
  /** GPU routing's fallback, for the nvenc queue's estimates; absent: no fallback is counted. */
  gpuFallback?: GpuFallbackEstimate;
  coalesceMs?: number;
}): QueueWatch {
  const pending = new Map<string, NodeJS.Timeout>();
  const publishing = new Set<Promise<void>>();
  let stopped = false;
  let sweep: NodeJS.Timeout | undefined;
  let sweptAt = Date.now();
  const positions = (queue: string) => readQueuePositions(deps.db, queue, deps.aliveWithinSeconds, deps.gpuFallback);

  async function publish(queue: string): Promise<void> {
    const waiting = await positions(queue);
    if (waiting.length === 0) return;
    const videos = await deps.db.video.findMany({ where: { id: { in: waiting.map((w) => w.videoId) } } });
    const byId = new Map(videos.map((v) => [v.id, v]));
    for (const { videoId, position } of waiting) {
      const video = byId.get(videoId);
      if (video)
        deps.pubSub.publish("videoEvents", videoId, { kind: "queuePosition", video: videoSnapshot(video), position });
    }
  }

  function changed(queue: string): void {
    if (stopped || pending.has(queue)) return;
    const timer = setTimeout(() => {
      pending.delete(queue);
      const done = publish(queue)
        .catch((err) => log.warn("queue positions not published", { queue, err }))
        .finally(() => publishing.delete(done));
      publishing.add(done);
    }, deps.coalesceMs ?? 100).unref();
    pending.set(queue, timer);
  }

  /** The queues of workers whose silence crossed `aliveWithinSeconds` since the last sweep. */
  async function publishSilenced(): Promise<void> {
    const now = Date.now();
    const window = deps.aliveWithinSeconds * 1000;
    const silenced = await deps.db.worker.findMany({
      where: { lastHeartbeatAt: { gte: new Date(sweptAt - window), lt: new Date(now - window) } },
      select: { capabilities: true },
    });
    sweptAt = now;
    for (const queue of new Set(silenced.flatMap((w) => w.capabilities))) changed(queue);
  }

  return {
    changed,
    positions,
    start() {
      sweptAt = Date.now();
      sweep = setInterval(() => {
        if (stopped) return;
        const done = publishSilenced()
          .catch((err) => log.warn("silent workers not looked for", { err }))
          .finally(() => publishing.delete(done));
        publishing.add(done);
      }, deps.sweepMs ?? SILENCE_SWEEP_MS);
      sweep.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(sweep);
      for (const timer of pending.values()) clearTimeout(timer);
      pending.clear();
      await Promise.all(publishing);
    },
    async jobChanged(jobId) {
      const job = await deps.db.job.findUnique({
        where: { id: jobId },
        select: { dispatchedTo: true, capability: true },
      });
      if (job) changed(queueOf(job));
    },
  };
}
