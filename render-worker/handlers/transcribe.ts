import { stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TranscribeJobMessage } from "../../src/protocol/transcribe-messages.ts";
import { writeWebVtt } from "../../src/shared/webvtt.ts";
import { locateAsr, transcribeLimits, transcribeWav } from "../asr/transcriber.ts";
import { abortError, MediaError } from "../media/errors.ts";
import { runFfmpeg } from "../media/ffmpeg-process.ts";
import { inputSeekOptions, mediaInputOptions, type ProbedInput } from "../media/media-input.ts";
import { probeContainer } from "../media/probe.ts";
import { reportStepProgress } from "../progress/job-progress.ts";
import type { JobContext } from "./types.ts";

/** What the speech model hears: 16 kHz mono PCM, as Whisper is trained on. */
const WAV_FILE = "speech.wav";
const WAV_BYTES_PER_SECOND = 16_000 * 2;
/** CPUs one transcription uses (the model's threads and the sandbox's CPU quota). */
const TRANSCRIBE_CPUS = 2;

/**
 * Transcribes a video's speech into a WebVTT caption file at `outputKey`: the source's first audio
 * stream to 16 kHz mono WAV (ffmpeg, through the whitelisted media input), then faster-whisper in the
 * sandbox (no network), whose segments come as they are recognised: progress is the last segment's
 * end over the audio's length. Ends with `captions.generated`. A second delivery transcribes again.
 */
export async function transcribe(job: TranscribeJobMessage, ctx: JobContext): Promise<void> {
  const install = await locateAsr().catch((err: Error) => {
    // Another worker may have it installed: the job is retried.
    throw Object.assign(new Error(`Speech recognition is not installed on this worker (${err.message})`), {
      retryable: true,
    });
  });
  await ctx.emit({ type: "job.started" });
  const audioSeconds = await extractSpeech(job, ctx);
  const progress = reportStepProgress(ctx, "Transcribing speech");
  let segments: Awaited<ReturnType<typeof transcribeWav>>;
  try {
    segments = await transcribeWav({
      install,
      workDir: ctx.workDir,
      wav: WAV_FILE,
      language: job.language,
      limits: transcribeLimits(audioSeconds, TRANSCRIBE_CPUS),
      signal: ctx.signal,
      onSegment: (segment) => progress.update(audioSeconds > 0 ? segment.end / audioSeconds : 1),
    });
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    progress.update(1);
  } finally {
    await progress.stop();
  }
  const vtt = writeWebVtt([job.timestampMap], segments);
  const file = path.join(ctx.workDir, "captions.vtt");
  await writeFile(file, vtt);
  await ctx.storage.upload(job.outputKey, file, {
    contentType: "text/vtt; charset=utf-8",
    cacheControl: "public, max-age=300",
  });
  await ctx.emit({
    type: "captions.generated",
    key: job.outputKey,
    cueCount: segments.filter((s) => s.text.trim() !== "").length,
    lastCueEnd: segments.at(-1)?.end ?? 0,
    size: Buffer.byteLength(vtt),
    audioSeconds,
  });
}

/** The source's first audio stream (its trim only, for a clip) as 16 kHz mono WAV in the work dir; its length in seconds. */
async function extractSpeech(job: TranscribeJobMessage, ctx: JobContext): Promise<number> {
  const location = await ctx.storage.inputFor(job.sourceKey);
  const { input: probed, data } = await probeContainer(location, { signal: ctx.signal });
  if (!(data.streams ?? []).some((s) => s.codec_type === "audio")) {
    throw new MediaError("The video has no audio to transcribe", { retryable: false });
  }
  const input: ProbedInput = job.trim ? { ...probed, trim: job.trim } : probed;
  await runFfmpeg({
    inputs: [{ source: input.url, options: [...mediaInputOptions(input), ...inputSeekOptions(input, 0)] }],
    outputs: [
      {
        target: WAV_FILE,
        options: [
          ...["-map", "0:a:0", "-vn", "-sn", "-dn"],
          ...["-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"],
          ...["-t", String(job.maxDurationSeconds), "-f", "wav", "-y"],
        ],
      },
    ],
    cwd: ctx.workDir,
    signal: ctx.signal,
  });
  const { size } = await stat(path.join(ctx.workDir, WAV_FILE));
  return Math.max(0, size - 44) / WAV_BYTES_PER_SECOND;
}
