import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { AudioTrackJobMessage } from "../../src/protocol/audio-track-messages.ts";
import type { ProbeResult } from "../../src/protocol/media-facts.ts";
import { AUDIO_TRACK_RUNG, hlsLayout } from "../../src/protocol/storage-layout.ts";
import { checkAudioDecodes } from "../media/audio-decode-check.ts";
import { AAC_PRIMING_SECONDS } from "../media/encode-ladder.ts";
import { MediaError } from "../media/errors.ts";
import { runFfmpeg } from "../media/ffmpeg-process.ts";
import { createHlsPublisher } from "../media/hls-publisher.ts";
import { AUDIO_ENCODER_OPTIONS, alternateAudioRung } from "../media/ladder.ts";
import { mediaInputOptions } from "../media/media-input.ts";
import { probeContainer, probeResultFrom } from "../media/probe.ts";
import { segmentCuts, segmentFiles, segmentOptions } from "../media/segment-muxer.ts";
import { segmentPlan, targetDuration } from "../media/segments.ts";
import { anyAddress, publicAddressesOnly } from "../net/address-policy.ts";
import { downloadUrl } from "../net/download.ts";
import type { JobContext } from "./types.ts";

/**
 * Encodes a tenant's audio file as an alternate audio track of a READY video: the file (stored by
 * the API, or downloaded through the guarded downloader) is opened within the upload whitelist, its
 * first audio stream decoded as a check, then encoded as AAC at the ladder's audio rate, padded with
 * silence or cut to the video's duration, cut into segments where the video's are (time 0 where the
 * video's first frame sits) and published as one rung without a master. A second delivery encodes
 * again: AAC is deterministic, so the write-once segments come out the same.
 */
export async function encodeAudioTrack(job: AudioTrackJobMessage, ctx: JobContext): Promise<void> {
  const { signal, workDir } = ctx;
  await ctx.emit({ type: "job.started" });
  const location = await sourceLocation(job, ctx);
  const { input, data } = await probeContainer(location, { signal });
  const probe = probeResultFrom(data);
  if (!probe.hasAudio) {
    throw new MediaError("The file has no audio stream: an audio track needs sound", { retryable: false });
  }
  await checkAudioDecodes(input, probe, signal);

  const format = job.segmentFormat;
  const rung = alternateAudioRung(AUDIO_TRACK_RUNG, { segmentSeconds: job.segmentSeconds, segmentFormat: format });
  const plan = segmentPlan(job.segmentSeconds);
  await mkdir(path.join(workDir, rung.name), { recursive: true });
  const trackProbe: ProbeResult = {
    duration: job.durationSeconds,
    width: null,
    height: null,
    fps: 0,
    rotation: 0,
    hasAudio: true,
    videoCodec: null,
    audioCodec: probe.audioCodec,
  };
  const publisher = createHlsPublisher({
    storage: ctx.storage,
    workDir,
    hls: hlsLayout(job.outputPrefix),
    ladder: [rung],
    probe: trackProbe,
    segmentFormat: format,
    targetDuration: targetDuration(plan),
    withoutMaster: true,
  });
  const cuts = segmentCuts(plan, 0, job.durationSeconds, null);
  publisher.start();
  try {
    await runFfmpeg({
      inputs: [{ source: input.url, options: mediaInputOptions(input) }],
      outputs: [
        {
          target: segmentFiles(rung, format),
          options: [
            "-map",
            "0:a:0",
            // The video's length exactly: silence after a shorter track, a longer one cut.
            "-af",
            "apad",
            "-t",
            job.durationSeconds.toFixed(6),
            ...AUDIO_ENCODER_OPTIONS,
            // Cut as the ladder's audio rung is (encode-ladder.ts): its priming before each cut.
            ...segmentOptions(
              rung,
              format,
              0,
              0,
              cuts.map((cut) => cut - AAC_PRIMING_SECONDS),
            ),
          ],
        },
      ],
      cwd: workDir,
      signal,
    });
  } catch (err) {
    await publisher.stop();
    throw err;
  }
  const [published] = await publisher.finish();
  if (published?.error) throw new Error(`The audio track could not be published: ${published.error}`);
  await ctx.emit({
    type: "audio_track.done",
    sourceDuration: probe.duration,
    publishedSeconds: published?.publishedSeconds ?? 0,
  });
}

/** Where ffmpeg reads the track's file: storage's location for an upload, the work dir for a URL. */
async function sourceLocation(job: AudioTrackJobMessage, ctx: JobContext): Promise<string> {
  if (job.source.kind === "stored") return ctx.storage.inputFor(job.source.key);
  const outFile = path.join(ctx.workDir, "audio-source");
  await downloadUrl({
    url: job.source.url,
    outFile,
    maxBytes: job.maxBytes,
    policy: job.allowPrivateAddresses ? anyAddress : publicAddressesOnly,
    signal: ctx.signal,
  });
  return outFile;
}
