// A render worker without ffmpeg, for the control plane's benchmark (bench/control-plane.ts) and its
// test: it takes real job messages from the real transport (the render worker's own adapters),
// parses them with the contract and sends what a transcode's run sends, on the worker's timers:
// `job.started`, `job.probed` with the ladder `planLadder` plans, `job.progress` every
// `progressIntervalMs` while the "encode" runs at `speed` × real time, `video.playable` once the
// first segment would be out, then each rung's `variant.ready` and `job.succeeded` in one send (the
// worker's `emitTogether`); a share of first
// attempts fail (`job.failed`, retryable, so the API retries them) and a cancel on the control
// channel ends a run with `job.canceled`. Heartbeats say what it serves, like a worker's.
import { randomUUID } from "node:crypto";
import { planLadder } from "../../render-worker/media/ladder.ts";
import type { WorkerTransport } from "../../render-worker/transport/types.ts";
import { type JobDelivery, JobEvent, type JobEventBody } from "../../src/protocol/job-events.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/version.ts";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { parseControlMessage } from "../../src/protocol/worker-messages.ts";
import { parseJobMessage } from "../../src/protocol/job-message.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { hlsLayout, posterKey } from "../../src/protocol/storage-layout.ts";
import { epochMs, SENT_AT_FIELD } from "./fanout-load.ts";

/** The source every simulated upload stands for, and how fast the fleet "encodes" it. */
export interface SimulatedSource {
  seconds: number;
  /** The picture's short side (16:9 landscape): 1080 plans the 8-rung ladder. */
  height: number;
  /** Media seconds encoded per wall second (deploy/CAPACITY.md §3: a 1080p ladder on 4 vCPU ≈ 1.2). */
  speed: number;
}

export interface SimulatedWorkerOptions {
  transport: WorkerTransport;
  workerId: string;
  /** Jobs it runs at once, over all the workers it stands for. */
  slots: number;
  /**
   * Jobs one worker of the fleet it stands for runs at once (WORKER_CONCURRENCY, 1 by default): its
   * runs go to virtual workers of this many slots, each with its own id and heartbeat, added as the
   * runs at once reach them, as an autoscaler adds workers. Defaults to `slots` (one worker).
   */
  workerSlots?: number;
  source: SimulatedSource;
  /** The worker's PROGRESS_INTERVAL_MS (1000 by default). */
  progressIntervalMs: number;
  heartbeatIntervalSeconds: number;
  /** Share of first attempts (0..1) that fail part-way, retryable. */
  failureRate: number;
  /** Told of every event the transport took. */
  onSent?: (event: JobEvent) => void;
}

/** Wall time a simulated probe takes, before `job.probed`. */
const PROBE_MS = 500;

export interface SimulatedWorker {
  /** Runs in flight. */
  running(): number;
  stop(): Promise<void>;
}

export async function startSimulatedWorker(options: SimulatedWorkerOptions): Promise<SimulatedWorker> {
  const { transport, workerId, source } = options;
  const runs = new Map<string, { jobId: string; attempt: number; worker: number; cancel: () => void }>();
  let stopping = false;
  const probe: ProbeResult = {
    duration: source.seconds,
    width: Math.round((source.height * 16) / 9 / 2) * 2,
    height: source.height,
    fps: 30,
    rotation: 0,
    hasAudio: true,
    videoCodec: "h264",
    audioCodec: "aac",
  };
  const workerSlots = Math.max(1, Math.min(options.workerSlots ?? options.slots, options.slots));
  /** The workers it stands for, by index, added as runs need them and never removed; each run names its own. */
  let workerCount = 0;
  const virtualId = (index: number) => (workerSlots === options.slots ? workerId : `${workerId}-${index}`);
  const runsOf = (index: number) => [...runs.values()].filter((r) => r.worker === index);
  /** On the timer a sample, as the render worker's (render-worker/heartbeats.ts); a worker's first durably. */
  const heartbeat = (index: number, sample = false) =>
    transport.publishEvent(
      {
        v: PROTOCOL_VERSION,
        type: "worker.heartbeat",
        workerId: virtualId(index),
        capabilities: ["cpu"],
        slots: workerSlots,
        activeJobs: runsOf(index).map(({ jobId, attempt }) => ({ jobId, attempt })),
        at: new Date().toISOString(),
      },
      { sample },
    );
  const heartbeatTimers: NodeJS.Timeout[] = [];
  /** A worker of `workerSlots` more, heartbeating every interval from now; its index and first heartbeat. */
  function addWorker(): { index: number; heard: Promise<void> } {
    const index = workerCount++;
    heartbeatTimers.push(
      setInterval(() => void heartbeat(index, true).catch(() => undefined), options.heartbeatIntervalSeconds * 1000),
    );
    return { index, heard: heartbeat(index) };
  }
  /** The first worker with a free slot, else a new one. */
  function assign(): number {
    const counts = new Array<number>(workerCount).fill(0);
    for (const r of runs.values()) counts[r.worker]!++;
    const free = counts.findIndex((n) => n < workerSlots);
    if (free >= 0) return free;
    const added = addWorker();
    void added.heard.catch(() => undefined);
    return added.index;
  }

  async function run(job: TranscodeJobMessage, delivery: JobDelivery | undefined): Promise<void> {
    const runId = randomUUID();
    const worker = assign();
    const runWorkerId = virtualId(worker);
    let seq = 0;
    const envelope = (body: JobEventBody) =>
      JobEvent.parse({
        ...body,
        ...(body.type === "job.started" && delivery ? { delivery } : {}),
        v: PROTOCOL_VERSION,
        jobId: job.jobId,
        attempt: job.attempt,
        seq: ++seq,
        workerId: runWorkerId,
        runId,
        at: new Date().toISOString(),
      });
    const emit = async (body: JobEventBody) => {
      const event = envelope(body);
      await transport.publishEvent(event);
      options.onSent?.(event);
    };
    // A run's end, sent together as the worker's is (`emitTogether`).
    const emitAll = async (bodies: JobEventBody[]) => {
      const events = bodies.map(envelope);
      await transport.publishEvents(events);
      for (const event of events) options.onSent?.(event);
    };
    let canceled = false;
    let wake: () => void = () => undefined;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    runs.set(runId, {
      jobId: job.jobId,
      attempt: job.attempt,
      worker,
      cancel: () => {
        canceled = true;
        wake();
      },
    });
    try {
      await emit({ type: "job.started" });
      await sleep(PROBE_MS);
      const segmentSeconds = job.options.segmentSeconds;
      const ladder = planLadder(probe, { segmentSeconds, segmentFormat: job.options.segmentFormat });
      if (!canceled) await emit({ type: "job.probed", probe, ladder });
      const layout = hlsLayout(job.outputPrefix);
      const encodeMs = (source.seconds / source.speed) * 1000;
      const failAt = job.attempt === 1 && Math.random() < options.failureRate ? Math.random() * encodeMs : null;
      const started = Date.now();
      let playable = false;
      for (;;) {
        await sleep(options.progressIntervalMs);
        if (stopping) throw new Error("the simulated worker stopped");
        if (canceled) return void (await emit({ type: "job.canceled" }));
        const elapsed = Date.now() - started;
        if (failAt !== null && elapsed >= failAt) {
          return void (await emit({ type: "job.failed", error: "simulated failure", retryable: true }));
        }
        if (elapsed >= encodeMs) break;
        const encoded = (elapsed / encodeMs) * source.seconds;
        const fraction = Math.round((encoded / source.seconds) * 1000) / 1000;
        const segmentCount = Math.floor(encoded / segmentSeconds);
        if (!playable && segmentCount > 0) {
          playable = true;
          await emit({ type: "video.playable", masterKey: layout.masterKey });
        }
        await emit({
          type: "job.progress",
          progress: fraction,
          fps: source.speed * probe.fps,
          speed: source.speed,
          // The send time rides in the ETA, as bench:fanout's does: subscribers measure latency from it.
          [SENT_AT_FIELD]: epochMs(),
          variants: ladder.map((rung) => ({ name: rung.name, progress: fraction, segmentCount })),
        });
      }
      const segmentCount = Math.ceil(source.seconds / segmentSeconds);
      if (!playable) await emit({ type: "video.playable", masterKey: layout.masterKey });
      await emitAll([
        ...ladder.map((rung) => ({
          type: "variant.ready" as const,
          name: rung.name,
          rung,
          playlistKey: layout.playlistKey(rung.name),
          segmentCount,
        })),
        { type: "job.succeeded", masterKey: layout.masterKey, posterKey: posterKey(job.outputPrefix) },
      ]);
    } finally {
      runs.delete(runId);
    }
  }

  await transport.start();
  await transport.onControl(
    (raw) => {
      let message: ReturnType<typeof parseControlMessage>;
      try {
        message = parseControlMessage(raw);
      } catch {
        return;
      }
      for (const [runId, r] of runs) {
        if (message.workerId !== undefined && message.workerId !== virtualId(r.worker)) continue;
        if (r.jobId === message.jobId && r.attempt === message.attempt && (!message.runId || message.runId === runId))
          r.cancel();
      }
    },
    () => void Promise.all(Array.from({ length: workerCount }, (_, i) => heartbeat(i))).catch(() => undefined),
  );
  await addWorker().heard; // the first heartbeats from the start, as a worker does
  await transport.consumeJobs(["cpu"], options.slots, async (raw, _signal, _capability, delivery) => {
    let job: ReturnType<typeof parseJobMessage>;
    try {
      job = parseJobMessage(raw);
    } catch {
      return; // as the worker does: a message that cannot parse is never redelivered
    }
    // Only transcodes of uploads come to the cpu queue in the benchmark.
    if (job.type === "transcode") await run(job, delivery);
  });
  return {
    running: () => runs.size,
    async stop() {
      stopping = true;
      for (const timer of heartbeatTimers) clearInterval(timer);
      for (const r of runs.values()) r.cancel();
      await transport.stop();
    },
  };
}
