import type { Heartbeats } from "./heartbeats.ts";
import { log } from "./log.ts";
import type { RunTable } from "./runs/run-table.ts";
import type { WorkerTransport } from "./transport/types.ts";
import type { WorkDirs } from "./work-dirs.ts";

/**
 * Stops the worker in a fixed, logged order: no new jobs; the runs in flight get `graceSeconds`
 * to finish (or until `handBackNow` resolves: a second signal), then are aborted and handed back;
 * a last heartbeat; the transport closed; the worker's temp root removed.
 */
export async function shutDownInOrder(
  parts: { transport: WorkerTransport; runs: RunTable; heartbeats: Heartbeats; workDirs: WorkDirs | undefined },
  graceSeconds: number,
  handBackNow: Promise<void> = new Promise(() => {}),
): Promise<void> {
  const { transport, runs, heartbeats, workDirs } = parts;
  log.info("shutdown: no new jobs", { inFlight: runs.size });
  await transport.stopConsuming();
  const allDone = Promise.all(runs.all().map((r) => r.done));
  const cutShort = await Promise.race([
    allDone.then(() => null),
    new Promise<string>((r) => setTimeout(() => r("grace period over"), graceSeconds * 1000).unref()),
    handBackNow.then(() => "asked to stop now"),
  ]);
  if (cutShort !== null) {
    log.warn(`shutdown: ${cutShort}, handing jobs back`, { jobs: runs.all().map((r) => r.jobId) });
    for (const run of runs.all()) run.controller.abort(new Error("worker shutting down"));
    await allDone;
  }
  heartbeats.stop();
  // Tells the API this worker runs nothing any more, so a job handed back is not taken for
  // a duplicate when another worker picks it up.
  await heartbeats.send().catch((err) => log.warn("last heartbeat failed", { err }));
  log.info("shutdown: closing transport");
  await transport.stop();
  await workDirs?.release();
  log.info("shutdown: done");
}
