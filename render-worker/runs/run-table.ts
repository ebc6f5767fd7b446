/** How a run left its delivery: `ended` (the run reported its end; the message is done with) or `handedBack` (it goes back to the transport). */
export type RunOutcome = "ended" | "handedBack";

/** One run in flight: a delivery of a job attempt this worker took on. */
export interface ActiveRun {
  runId: string;
  jobId: string;
  attempt: number;
  controller: AbortController;
  /** Stopped by a cancel (of the job, or of this run as a duplicate), not by a failure or shutdown. */
  canceled: boolean;
  done: Promise<void>;
  outcome: Promise<RunOutcome>;
}

/** Raised when a job was stopped because the worker is shutting down, so the transport redelivers it. */
export class HandedBackError extends Error {
  constructor(jobId: string) {
    super(`Job ${jobId} handed back at shutdown`);
    this.name = "HandedBackError";
  }
}

/** The runs in flight on this worker, by run id: what heartbeats list, cancels stop and shutdown waits for. */
export function createRunTable() {
  const runs = new Map<string, ActiveRun>();
  return {
    add(run: ActiveRun): void {
      runs.set(run.runId, run);
    },
    remove(runId: string): void {
      runs.delete(runId);
    },
    byRunId(runId: string): ActiveRun | undefined {
      return runs.get(runId);
    },
    /** The run of this attempt of the job, if one is in flight here. */
    ofAttempt(jobId: string, attempt: number): ActiveRun | undefined {
      return [...runs.values()].find((r) => r.jobId === jobId && r.attempt === attempt);
    },
    all(): ActiveRun[] {
      return [...runs.values()];
    },
    get size(): number {
      return runs.size;
    },
  };
}

export type RunTable = ReturnType<typeof createRunTable>;
