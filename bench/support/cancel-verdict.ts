/** A job of a video as `npm run chaos` reads it back. */
export interface JobOutcome {
  id: string;
  kind: string;
  status: string;
}

/**
 * Whether a cancel was overruled: a job unfinished when it was sent went on to succeed with the
 * video's whole encode. A split transcode's parts are not that (docs/chunked-transcoding.md): its
 * first run (the TRANSCODE job that has TRANSCODE_CHUNK children) and its chunks each encode a part,
 * so one of them succeeding just before the cancel landed leaves the video to be canceled.
 */
export function cancelOverruled(jobs: readonly JobOutcome[], unfinishedAtCancel: readonly string[]): boolean {
  const split = jobs.some((j) => j.kind === "TRANSCODE_CHUNK");
  const endsTheVideo = (j: JobOutcome) => j.kind !== "TRANSCODE_CHUNK" && !(split && j.kind === "TRANSCODE");
  return jobs.some((j) => unfinishedAtCancel.includes(j.id) && j.status === "SUCCEEDED" && endsTheVideo(j));
}

/**
 * The figures a chaos run must end with at 0 (docs/failure-model.md, "Chaos"), each named: no fault
 * sets out to fail a video (a failing GPU's jobs go on to cpu, a cancel ends CANCELED), so any
 * FAILED video is a finding, as are lost, stuck and rewritten work and every other count here.
 */
export interface ChaosGates {
  failedVideos: number;
  lostVideos: number;
  stuckVideos: number;
  rewrittenSegments: number;
  cancelsNotHonoured: number;
  failedAfterFailingGpu: number;
  processesNeedingHuman: number;
  faultsNotInjected: number;
  webhookFairnessBroken: number;
  broadcastFailures: number;
  broadcastSecondsMissing: number;
  /** Services that exited without a fault killing them (a crash: an uncaught error, an abort). */
  unplannedExits: number;
}

/** The chaos run's exit code: 0 when every gate is 0, else 1. */
export function chaosExitCode(gates: ChaosGates): 0 | 1 {
  return Object.values(gates).every((n) => n === 0) ? 0 : 1;
}
