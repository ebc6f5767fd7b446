import { AudioTrackJobMessage } from "../../protocol/audio-track-messages.ts";
import { audioTrackPrefix } from "../../protocol/storage-layout.ts";
import { inputColumn, type JobKindModule, noEstimate } from "./job-kind-module.ts";

const input = AudioTrackJobMessage.pick({ trackId: true, source: true });

/** An alternate audio track of a READY video, encoded as one AAC rung on the video's timeline. */
export const audioTrack = {
  input,
  row: inputColumn,
  capability: "cpu",
  // AAC only: nothing for a GPU to do.
  gpuEncodable: false,
  messageType: "audio_track",
  buildMessage: ({ job, video, input, settings, envelope }) => {
    // Tracks are queued for READY videos only (src/audio-tracks/audio-tracks.ts), which have a duration.
    if (!video.duration) throw new Error(`Video ${video.id} has no duration for its audio track`);
    return {
      ...envelope,
      type: "audio_track",
      trackId: input.trackId,
      source: input.source,
      maxBytes: settings.urlImport.maxBytes,
      allowPrivateAddresses: settings.urlImport.allowPrivateAddresses,
      outputPrefix: audioTrackPrefix(job.videoId, input.trackId),
      durationSeconds: video.duration,
      segmentSeconds: settings.segmentSeconds,
      segmentFormat: video.segmentFormat,
    };
  },
  ratePoints: 3,
  // Its failure is the track's: the video and its ladder stand.
  onLastFailure: "fail its audio track",
  estimateAtEnqueue: noEstimate,
} satisfies JobKindModule<typeof input, "audio_track">;
