import { markAudioTrackReady } from "../../audio-tracks/audio-track-jobs.ts";
import type { EventOf, IngestDeps } from "./ingest-deps.ts";
import type { JobRunIngestor } from "./job-runs.ts";
import { succeedOutputJob } from "./output-jobs.ts";

/** An audio track's job ended: it succeeds, and its track is READY, in one transaction under the video's lock. */
export async function onAudioTrackDone(
  deps: IngestDeps,
  runs: JobRunIngestor,
  e: EventOf<"audio_track.done">,
  videoId: string,
): Promise<void> {
  await succeedOutputJob(deps, runs, e, videoId, (tx, at) =>
    markAudioTrackReady(tx, e.jobId, { sourceDuration: e.sourceDuration, at }),
  );
}
