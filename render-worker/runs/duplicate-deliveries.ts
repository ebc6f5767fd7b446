import { log } from "../log.ts";
import { type ActiveRun, HandedBackError, type RunTable } from "./run-table.ts";

/**
 * A second delivery of an attempt this worker is running (a transport redelivers when it thinks
 * the first delivery's lease lapsed) does no work: it waits for the running one and settles as
 * it does. Acknowledging it at once could acknowledge the message whose lease the running one
 * depends on (Pub/Sub), and a job lost with its worker would then never be delivered again.
 */
export async function joinRunningRun(running: ActiveRun, transportSignal: AbortSignal): Promise<void> {
  log.warn("a job running here was delivered again: the delivery waits for the running run and does no work", {
    jobId: running.jobId,
    attempt: running.attempt,
    runId: running.runId,
  });
  const leaseLost = new Promise<"leaseLost">((resolve) => {
    if (transportSignal.aborted) resolve("leaseLost");
    transportSignal.addEventListener("abort", () => resolve("leaseLost"), { once: true });
  });
  const outcome = await Promise.race([running.outcome, leaseLost]);
  if (outcome !== "ended") throw new HandedBackError(running.jobId);
}

/** The API only takes a later attempt's events: an older attempt still running here stops. */
export function stopOlderAttempts(runs: RunTable, job: { jobId: string; attempt: number }): void {
  for (const older of runs.all()) {
    if (older.jobId === job.jobId && older.attempt < job.attempt) {
      log.warn("a later attempt of a job running here arrived: stopping the older run", {
        jobId: job.jobId,
        attempt: older.attempt,
        runId: older.runId,
      });
      older.controller.abort(new Error(`superseded by attempt ${job.attempt}`));
    }
  }
}
