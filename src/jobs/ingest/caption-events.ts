import type { Db } from "../../db/client.ts";
import { captionKey, captionPrefix } from "../../protocol/storage-layout.ts";
import { parseJobInput } from "../create-job.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedOutputJob } from "./output-jobs.ts";

/** A transcription's progress (its `step.progress`): the track's `progress`, which only grows. */
export async function onTranscribeProgress(db: Db, e: EventOf<"step.progress">): Promise<void> {
  const progress = Math.min(1, e.percent / 100);
  await db.caption.updateMany({
    where: { jobId: e.jobId, status: "PROCESSING", progress: { lt: progress } },
    data: { progress },
  });
}

/** A TRANSCRIBE job stored its captions: it succeeds, and its track is READY (listed in the master from now). */
export async function onCaptionsGenerated(
  deps: IngestDeps,
  runs: JobRunIngestor,
  e: EventOf<"captions.generated">,
  videoId: string,
): Promise<void> {
  const done = await succeedOutputJob(deps, runs, e, videoId, async (tx) => {
    const job = await tx.job.findUniqueOrThrow({ where: { id: e.jobId }, select: { input: true } });
    const { captionId } = parseJobInput("TRANSCRIBE", job.input);
    const updated = await tx.caption.updateMany({
      where: { jobId: e.jobId, status: "PROCESSING" },
      data: {
        status: "READY",
        progress: 1,
        // The key the API chose for the job (its message's outputKey), not one the event names.
        key: captionKey(videoId, captionId),
        cueCount: e.cueCount,
        lastCueEnd: e.lastCueEnd,
        size: e.size,
        error: null,
      },
    });
    return updated.count === 0 ? captionId : null;
  });
  // The track was removed while it was transcribed: its file goes too (the job's own caption, never a key the event names).
  const orphan = done?.outputs;
  if (orphan) await deps.storage.deletePrefix(captionPrefix(videoId, orphan));
}
