import { failStaticRenditions, queueStaticRenditions } from "../queue-static-renditions.ts";
import { userFacingError } from "../user-facing-error.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedOutputJob } from "./output-jobs.ts";

/** A static renditions job ended: it succeeds, and each rendition is READY or FAILED as the worker says. */
export async function onStaticRenditionsDone(
  deps: IngestDeps,
  runs: JobRunIngestor,
  e: EventOf<"static_renditions.done">,
  videoId: string,
): Promise<void> {
  await succeedOutputJob(deps, runs, e, videoId, async (tx, at) => {
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
  });
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
