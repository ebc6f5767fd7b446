import { recordActualCostIn } from "../../costs/job-cost.ts";
import { failStaticRenditions, queueStaticRenditions } from "../queue-static-renditions.ts";
import { userFacingError } from "../user-facing-error.ts";
import { lockVideo } from "../video-lock.ts";
import { publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedAttemptIn } from "./run-records.ts";

/** A static renditions job ended: it succeeds, and each rendition is READY or FAILED as the worker says. */
export async function onStaticRenditionsDone(
  deps: IngestDeps,
  runs: JobRunIngestor,
  e: EventOf<"static_renditions.done">,
  videoId: string,
): Promise<void> {
  await runs.finishRun(e);
  const at = new Date(e.at);
  const count = await deps.db.$transaction(async (tx) => {
    await lockVideo(tx, videoId);
    const count = await succeedAttemptIn(tx, e, at);
    if (!count) return 0;
    for (const r of e.renditions) {
      const data =
        r.status === "READY"
          ? {
              status: "READY" as const,
              key: r.key,
              width: r.width,
              height: r.height,
              bitrate: r.bitrate,
              sizeBytes: BigInt(r.sizeBytes),
              readyAt: at,
              error: null,
            }
          : { status: "FAILED" as const, error: userFacingError(r.error) };
      await tx.staticRendition.updateMany({
        where: { videoId, name: r.name, jobId: e.jobId, status: "PREPARING" },
        data,
      });
    }
    await failStaticRenditions(tx, e.jobId, "The worker did not make this rendition");
    // Its cost stores the files it made: committed with them.
    await recordActualCostIn(tx, deps.costs, e.jobId);
    return count;
  });
  if (!count) return;
  deps.progressWrites.forget(e.jobId);
  await publishVideoStatus(deps, videoId);
}

/**
 * After a transcode made the video READY (in its transaction, under the video's lock): queues the
 * job for the renditions asked for while it encoded. True when one was queued: kick the dispatcher.
 */
export async function queueRequestedStaticRenditions(
  tx: Parameters<typeof queueStaticRenditions>[0],
  transcodeJobId: string,
  videoId: string,
  deps: Pick<IngestDeps, "costs">,
): Promise<boolean> {
  const { maxAttempts } = await tx.job.findUniqueOrThrow({
    where: { id: transcodeJobId },
    select: { maxAttempts: true },
  });
  return (await queueStaticRenditions(tx, videoId, { maxAttempts, costs: deps.costs })) !== null;
}
