import { createWorker, type Worker, type WorkerOptions } from "../../render-worker/worker.ts";

/**
 * A started worker with the worker tests' usual settings (one cpu job at a time, one live slot,
 * progress every 200 ms, heartbeats every 60 s), `options` over them; the caller shuts it down.
 */
export async function startTestWorker(
  options: Pick<WorkerOptions, "transport" | "storage" | "tmpDir"> & Partial<WorkerOptions>,
): Promise<Worker> {
  const worker = createWorker({
    workerId: "w1",
    capabilities: ["cpu"],
    concurrency: 1,
    liveSlots: 1,
    progressIntervalMs: 200,
    heartbeatIntervalSeconds: 60,
    ...options,
  });
  await worker.start();
  return worker;
}
