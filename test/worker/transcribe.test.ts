import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { createCapabilities } from "../../render-worker/capabilities.ts";
import { transcribe } from "../../render-worker/handlers/transcribe.ts";
import type { JobContext } from "../../render-worker/handlers/types.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { TranscribeJobMessage } from "../../src/protocol/transcribe-messages.ts";
import { writeWebVtt } from "../../src/shared/webvtt.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { jobDirsPerTest } from "../support/media-fixtures.ts";

// The handler runs the speech model of `npm run setup:asr` (.tools/asr) in the sandbox.

const run = promisify(execFile);
const JOB_ID = "5b1f0a3c-2d4e-4f60-8a7b-9c0d1e2f3a4b";
const VIDEO_ID = "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9";
const CAPTION_ID = "1a2b3c4d-5e6f-4a8b-9c0d-e1f2a3b4c5d6";
const SOURCE_KEY = `videos/${VIDEO_ID}/source/upload`;
const OUTPUT_KEY = `videos/${VIDEO_ID}/captions/${CAPTION_ID}/captions.vtt`;

const dirs = jobDirsPerTest("transcribe");

function context(events: JobEventBody[]): JobContext {
  return {
    storage: createLocalWorkerStorage(dirs.dataDir),
    emit: contractCheckedEmit(JOB_ID, events),
    signal: new AbortController().signal,
    workDir: dirs.workDir,
    progressIntervalMs: 50,
  };
}

const job: TranscribeJobMessage = {
  v: 2,
  type: "transcribe",
  jobId: JOB_ID,
  attempt: 1,
  videoId: VIDEO_ID,
  captionId: CAPTION_ID,
  language: "en",
  sourceKey: SOURCE_KEY,
  outputKey: OUTPUT_KEY,
  timestampMap: "X-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000",
  maxDurationSeconds: 600,
};

async function storeSource(bytes: Buffer | string): Promise<void> {
  const file = path.join(dirs.dataDir, SOURCE_KEY);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
}

describe("the transcribe handler (ffmpeg to 16 kHz WAV, faster-whisper in the sandbox)", () => {
  it("stores the speech as WebVTT with the job's timestamp map, with progress before its end", async () => {
    const wav = path.join(dirs.workDir, "..", "said.wav");
    await run("espeak-ng", ["-s", "150", "-w", wav, "Welcome to the video. Today we talk about rivers and mountains."]);
    const mp4 = path.join(dirs.workDir, "..", "said.mkv");
    await run("ffmpeg", ["-loglevel", "error", "-y", "-i", wav, "-c:a", "flac", mp4]);
    await storeSource(await readFile(mp4));
    const events: JobEventBody[] = [];
    await transcribe(job, context(events));

    expect(events[0]).toEqual({ type: "job.started" });
    const progress = events.filter((e) => e.type === "step.progress");
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ description: "Transcribing speech", percent: 100, count: null });
    const end = events.at(-1)!;
    expect(end).toMatchObject({ type: "captions.generated", key: OUTPUT_KEY });
    const vtt = await readFile(path.join(dirs.dataDir, OUTPUT_KEY), "utf8");
    expect(vtt.startsWith(`WEBVTT\n${job.timestampMap}\n\n00:00:00.000 --> `)).toBe(true);
    expect(vtt.toLowerCase()).toContain("rivers and mountains");
    expect(end.type === "captions.generated" && end.size).toBe(Buffer.byteLength(vtt));
  }, 60_000);

  it("refuses a playlist posing as the source before the model runs, and does not retry it", async () => {
    await storeSource("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n");
    const events: JobEventBody[] = [];
    await expect(transcribe(job, context(events))).rejects.toMatchObject({ retryable: false });
    expect(events.some((e) => e.type === "captions.generated")).toBe(false);
  });
});

describe("writeWebVtt", () => {
  it("escapes &, < and > in cue text and drops the blank lines that would end a cue", () => {
    expect(
      writeWebVtt(
        ["X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000"],
        [
          { start: 0, end: 1.5, text: "Tom & <b>Jerry</b>" },
          { start: 1.5, end: 1.5, text: "a\n\n00:00:09.000 --> 00:00:10.000\nforged" },
          { start: 2, end: 3, text: "   " },
        ],
      ),
    ).toBe(
      "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n" +
        "00:00:00.000 --> 00:00:01.500\nTom &amp; &lt;b&gt;Jerry&lt;/b&gt;\n\n" +
        "00:00:01.500 --> 00:00:01.501\na\n00:00:09.000 --&gt; 00:00:10.000\nforged\n",
    );
  });
});

describe("the asr capability", () => {
  const hooks = { consume: async () => {}, stopConsuming: async () => {}, announce: async () => {} };
  const serving = async (options: Omit<Parameters<typeof createCapabilities>[0], "tmpDir">) => {
    const capabilities = createCapabilities({ tmpDir: dirs.workDir, ...options }, hooks);
    await capabilities.probeBeforeConnecting();
    return capabilities.serving();
  };

  it("is served where speech recognition is installed: asked for, or detected; dropped where it is not", async () => {
    expect(await serving({ capabilities: ["cpu", "asr"], asrInstalled: () => true })).toEqual(["cpu", "asr"]);
    expect(await serving({ capabilities: ["cpu"], detectAsr: true, asrInstalled: () => true })).toEqual(["cpu", "asr"]);
    expect(await serving({ capabilities: ["cpu"], asrInstalled: () => true })).toEqual(["cpu"]);
    expect(await serving({ capabilities: ["cpu"], detectAsr: true, asrInstalled: () => false })).toEqual(["cpu"]);
    expect(await serving({ capabilities: ["cpu", "asr"], asrInstalled: () => false })).toEqual(["cpu"]);
    await expect(serving({ capabilities: ["asr"], asrInstalled: () => false })).rejects.toThrow(
      "WORKER_CAPABILITIES asks only for asr, but speech recognition is not installed (npm run setup:asr)",
    );
  });

  it("npm run setup:asr does nothing, fast, when .tools/asr is up to date", async () => {
    const started = performance.now();
    const { stdout } = await run("bash", ["scripts/setup-asr.sh"]);
    expect(stdout).toBe("[setup:asr] up to date in .tools/asr\n");
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
