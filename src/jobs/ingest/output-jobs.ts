import type { DbTransaction as Tx } from "../../db/client.ts";
import { recordActualCostIn } from "../../costs/job-cost.ts";
import type { RunEndEvent } from "../../protocol/job-events.ts";
import { lockVideo } from "../video-lock.ts";
import { publishVideoStatus, type IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedAttemptIn } from "./run-records.ts";

/**
 * The end of a job that adds outputs to a video (static renditions, an audio track, a generated
 * caption): its run is finished, then in one transaction under the video's lock its attempt
 * succeeds, `recordOutputs` writes what it made and its cost is stored with them; then its progress
 * is forgotten and the video's subscribers told. Resolves with what `recordOutputs` returned, or
 * undefined when the attempt no longer counts (superseded, or its end applied already).
 */
export async function succeedOutputJob<T>(
  deps: IngestDeps,
  runs: JobRunIngestor,
  e: RunEndEvent,
  videoId: string,
  recordOutputs: (tx: Tx, at: Date) => Promise<T>,
): Promise<{ outputs: T } | undefined> {
  await runs.finishRun(e);
  const at = new Date(e.at);
  const done = await deps.db.$transaction(async (tx) => {
    await lockVideo(tx, videoId);
    if (!(await succeedAttemptIn(tx, e, at))) return undefined;
    const outputs = await recordOutputs(tx, at);
    // Its cost counts the outputs it made: committed with them.
    await recordActualCostIn(tx, deps.costs, e.jobId);
    return { outputs };
  });
  if (!done) return undefined;
  deps.progressWrites.forget(e.jobId);
  await publishVideoStatus(deps, videoId);
  return done;
}
