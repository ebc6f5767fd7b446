import { markAudioTrackReady } from "../../audio-tracks/audio-track-jobs.ts";
import { recordActualCostIn } from "../../costs/job-cost.ts";
import { lockVideo } from "../video-lock.ts";
import { publishVideoStatus, type EventOf, type IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedAttemptIn } from "./run-records.ts";

/** An audio track's job ended: it succeeds, and its track is READY, in one transaction under the video's lock. */
export async function onAudioTrackDone(
  deps: IngestDeps,
  runs: JobRunIngestor,
  e: EventOf<"audio_track.done">,
  videoId: string,
): Promise<void> {
  await runs.finishRun(e);
  const at = new Date(e.at);
  const count = await deps.db.$transaction(async (tx) => {
    await lockVideo(tx, videoId);
    const count = await succeedAttemptIn(tx, e, at);
    if (!count) return 0;
    await markAudioTrackReady(tx, e.jobId, { sourceDuration: e.sourceDuration, at });
    await recordActualCostIn(tx, deps.costs, e.jobId);
    return count;
  });
  if (!count) return;
  deps.progressWrites.forget(e.jobId);
  await publishVideoStatus(deps, videoId);
}
