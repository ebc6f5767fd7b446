import { type ControlMessage, parseControlMessage } from "../../src/protocol/worker-messages.ts";
import { log } from "../log.ts";
import type { ActiveRun, RunTable } from "./run-table.ts";

const CANCELED_MEMORY_MS = 10 * 60_000;

/**
 * Acts on the control channel's cancels: stops the canceled attempt's runs, or one duplicate run,
 * and remembers canceled attempts a while in case the job message comes after the cancel.
 */
export function createCancelListener(workerId: string, runs: RunTable) {
  /** Canceled attempts: job id → attempt. */
  const canceled = new Map<string, number>();
  return {
    onControl(raw: unknown): void {
      let message: ControlMessage;
      try {
        message = parseControlMessage(raw);
      } catch (err) {
        log.error("control message rejected", { err: (err as Error).message });
        return;
      }
      if (message.workerId !== undefined && message.workerId !== workerId) return;
      if (message.runId !== undefined) {
        // A duplicate run is stopped; the job itself is not canceled, so a later delivery still runs.
        const run = runs.byRunId(message.runId);
        if (run) stopRun(run, "cancel of a duplicate run received: stopping it", "duplicate run stopped");
        return;
      }
      canceled.set(message.jobId, message.attempt);
      setTimeout(() => canceled.delete(message.jobId), CANCELED_MEMORY_MS).unref();
      for (const run of runs.all()) {
        if (run.jobId === message.jobId && run.attempt === message.attempt) {
          stopRun(run, "cancel received: stopping the job", "job canceled");
        }
      }
    },
    /** Whether a cancel of this attempt was received (in the last ten minutes). */
    wasCanceled(jobId: string, attempt: number): boolean {
      return canceled.get(jobId) === attempt;
    },
  };
}

export type CancelListener = ReturnType<typeof createCancelListener>;

/** Stops a run because of a cancel: it ends canceled, not failed. */
function stopRun(run: ActiveRun, logMessage: string, reason: string): void {
  log.info(logMessage, { jobId: run.jobId, attempt: run.attempt, runId: run.runId });
  run.canceled = true;
  run.controller.abort(new Error(reason));
}
