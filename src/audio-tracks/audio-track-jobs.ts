import type { Db } from "../db/client.ts";

/** An AUDIO_TRACK job's last failure (in the ingest's transaction, under the video's lock): its track fails, the video stands. */
export async function failAudioTrackOfJob(tx: Pick<Db, "audioTrack">, jobId: string, error: string): Promise<void> {
  await tx.audioTrack.updateMany({ where: { jobId, status: "PROCESSING" }, data: { status: "FAILED", error } });
}

/** An AUDIO_TRACK job's rung is published whole: its track is READY (a removed track stays removed). */
export async function markAudioTrackReady(
  tx: Pick<Db, "audioTrack">,
  jobId: string,
  done: { sourceDuration: number; at: Date },
): Promise<void> {
  await tx.audioTrack.updateMany({
    where: { jobId, status: "PROCESSING" },
    data: { status: "READY", sourceDuration: done.sourceDuration, readyAt: done.at, error: null },
  });
}
