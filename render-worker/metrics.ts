import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The worker's Prometheus metrics (docs/operations.md lists each), served by ops-server.ts.
 * Labels take only values from small fixed sets (job types, rung names, encoders, outcomes).
 */
export const workerRegistry = new Registry();
collectDefaultMetrics({ register: workerRegistry });

export const jobsInFlight = new Gauge({
  name: "videograph_worker_jobs_in_flight",
  help: "Jobs this worker is running now, by type",
  labelNames: ["type"] as const,
  registers: [workerRegistry],
});

/** `outcome`: succeeded, failed, canceled, handed_back (not enough memory now, or shutdown). */
export const jobDuration = new Histogram({
  name: "videograph_worker_job_duration_seconds",
  help: "Wall time of a job run on this worker, by type (transcode, render_manim, render_composition, import_url)",
  labelNames: ["type", "outcome"] as const,
  buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600],
  registers: [workerRegistry],
});

const SPEED_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20];

const encodeRealtimeFactor = new Histogram({
  name: "videograph_worker_encode_realtime_factor",
  help: "Media seconds encoded per wall second of a ladder encode, per rung and encoder (above 1: faster than realtime)",
  labelNames: ["rung", "encoder"] as const,
  buckets: SPEED_BUCKETS,
  registers: [workerRegistry],
});

const encodeFps = new Histogram({
  name: "videograph_worker_encode_fps",
  help: "Frames encoded per wall second of a ladder encode, per video rung and encoder",
  labelNames: ["rung", "encoder"] as const,
  buckets: [1, 5, 10, 15, 24, 30, 45, 60, 90, 120, 240, 480],
  registers: [workerRegistry],
});

export const ffmpegCpuSeconds = new Counter({
  name: "videograph_worker_ffmpeg_cpu_seconds_total",
  help: "CPU seconds (user + system) of the ffmpeg runs that succeeded, as ffmpeg's -benchmark reports them",
  registers: [workerRegistry],
});

/** `reason`: busy (fits this worker, not beside the jobs running now), too_large (never fits). */
export const memoryAdmissionsRefused = new Counter({
  name: "videograph_worker_memory_admissions_refused_total",
  help: "Jobs refused by the memory budget, by reason",
  labelNames: ["reason"] as const,
  registers: [workerRegistry],
});

/**
 * Records a finished ladder encode. Every rung is encoded by one decode-once ffmpeg process, so the
 * rungs of one encode share its speed; the rung label lets speeds be compared by resolution across jobs.
 */
export function observeLadderEncode(encode: {
  rungs: readonly { name: string; kind: "VIDEO" | "AUDIO" }[];
  encoder: string;
  mediaSeconds: number;
  wallSeconds: number;
  fps: number;
}): void {
  if (encode.wallSeconds <= 0 || encode.mediaSeconds <= 0) return;
  const realtime = encode.mediaSeconds / encode.wallSeconds;
  for (const rung of encode.rungs) {
    const labels = { rung: rung.name, encoder: rung.kind === "AUDIO" ? "aac" : encode.encoder };
    encodeRealtimeFactor.observe(labels, realtime);
    if (rung.kind === "VIDEO" && encode.fps > 0) encodeFps.observe(labels, realtime * encode.fps);
  }
}
