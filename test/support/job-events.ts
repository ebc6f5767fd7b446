import { randomUUID } from "node:crypto";
import { JobEvent, type JobEventBody } from "../../src/protocol/job-events.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/version.ts";
import type { ProbeResult, Rung } from "../../src/protocol/media-facts.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";

/**
 * An `emit` for a handler under test: parses each body with the contract's schema inside the
 * envelope the worker adds (as the worker's emitter does), then records it.
 */
export function contractCheckedEmit(jobId: string, events: JobEventBody[], onEvent?: (e: JobEventBody) => void) {
  return async (body: JobEventBody): Promise<void> => {
    JobEvent.parse({
      ...body,
      v: PROTOCOL_VERSION,
      jobId,
      attempt: 1,
      seq: events.length + 1,
      workerId: "test",
      at: new Date().toISOString(),
    });
    events.push(body);
    onEvent?.(body);
  };
}

/** What the worker's probe reports for a 6 s 640x360 H.264 + AAC source. */
export const PROBE_640X360: ProbeResult = {
  duration: 6,
  width: 640,
  height: 360,
  fps: 25,
  rotation: 0,
  hasAudio: true,
  videoCodec: "h264",
  audioCodec: "aac",
};

/** A ladder for that source as a job's events carry it: 360p, 144p and audio. */
export const LADDER_360P: Rung[] = [
  { name: "360p", kind: "VIDEO", width: 640, height: 360, bandwidth: 1_200_000, codecs: "avc1.64001e" },
  { name: "144p", kind: "VIDEO", width: 256, height: 144, bandwidth: 400_000, codecs: "avc1.64000c" },
  { name: "audio", kind: "AUDIO", width: null, height: null, bandwidth: 140_800, codecs: "mp4a.40.2" },
];

/** A transcode job for a new video, as the API queues it (its source need not exist: for transports). */
export function transcodeJobMessage(): TranscodeJobMessage {
  const videoId = randomUUID();
  return {
    v: PROTOCOL_VERSION,
    type: "transcode",
    jobId: randomUUID(),
    attempt: 1,
    videoId,
    sourceKey: `videos/${videoId}/source/upload`,
    outputPrefix: `videos/${videoId}`,
    options: { segmentSeconds: 4 },
  };
}

/** A seeded shuffle of events (or anything), so a failure can be replayed. */
export function shuffle<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
