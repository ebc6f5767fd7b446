import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import { describe, expect, it } from "vitest";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { processesWithCwd } from "../support/process-scan.ts";
import { jobDirsPerTest, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";
import { contractCheckedEmit } from "../support/job-events.ts";

const run = promisify(execFile);
const JOB_ID = "7d7a3c52-58a4-4c1e-9a43-0f8f5f1b2c01";
const VIDEO_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d";

const dirs = jobDirsPerTest("transcode");

function jobFor(clip: string, segmentSeconds: number): Promise<TranscodeJobMessage> {
  return stageTranscodeJob(dirs.dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, segmentSeconds);
}

const recordingEmit = (events: JobEventBody[], onEvent?: (e: JobEventBody) => void) =>
  contractCheckedEmit(JOB_ID, events, onEvent);

function parsePlaylist(text: string) {
  const parser = new Parser();
  parser.push(text);
  parser.end();
  return parser.manifest;
}

/** Every playlist published so far lists only segments that are published too. */
function unpublishedSegments(hlsDir: string, rungs: string[]): string[] {
  const missing: string[] = [];
  for (const rung of rungs) {
    const playlist = path.join(hlsDir, rung, "index.m3u8");
    if (!existsSync(playlist)) continue;
    for (const segment of parsePlaylist(readFileSync(playlist, "utf8")).segments) {
      if (!existsSync(path.join(hlsDir, rung, segment.uri))) missing.push(`${rung}/${segment.uri}`);
    }
  }
  return missing;
}

describe("transcode", () => {
  it("encodes the ladder in one ffmpeg process and publishes it progressively", async () => {
    const clip = await makeClip({ width: 640, height: 360, seconds: 10, audio: true });
    const job = await jobFor(clip, 2);
    const hlsDir = path.join(dirs.dataDir, job.outputPrefix, "hls");
    const rungs = ["360p", "240p", "144p", "audio"];
    const events: JobEventBody[] = [];
    const atPlayable = { master: false, segmentsPerRung: [] as number[], ended: [] as boolean[] };
    const emit = recordingEmit(events, (e) => {
      if (e.type !== "video.playable") return;
      atPlayable.master = existsSync(path.join(hlsDir, "master.m3u8"));
      const playlists = rungs.map((r) => {
        const playlist = path.join(hlsDir, r, "index.m3u8");
        return existsSync(playlist) ? parsePlaylist(readFileSync(playlist, "utf8")) : null;
      });
      atPlayable.segmentsPerRung = playlists.map((p) => p?.segments.length ?? 0);
      atPlayable.ended = playlists.map((p) => p?.endList === true);
    });

    // Watch the processes working in the job's dir, and what storage shows, while the job runs.
    const encoders = new Map<number, string[]>();
    const inconsistencies: string[] = [];
    const targetDurations = new Set<number | undefined>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const pid of processesWithCwd(dirs.workDir)) {
          try {
            const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
            if (argv.includes("segment")) encoders.set(pid, argv);
          } catch {
            // Exited between the two reads.
          }
        }
        inconsistencies.push(...unpublishedSegments(hlsDir, rungs));
        for (const rung of rungs) {
          const playlist = path.join(hlsDir, rung, "index.m3u8");
          if (existsSync(playlist)) targetDurations.add(parsePlaylist(readFileSync(playlist, "utf8")).targetDuration);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await transcode(job, {
        storage: createLocalWorkerStorage(dirs.dataDir),
        emit,
        signal: new AbortController().signal,
        workDir: dirs.workDir,
        progressIntervalMs: 200,
      });
    } finally {
      watching = false;
      await watcher;
    }

    expect(encoders.size, "ffmpeg processes writing HLS").toBe(1);
    const [argv = []] = [...encoders.values()];
    for (const rung of rungs) expect(argv).toContain(`${rung}/index.m3u8`);
    expect(argv.filter((a) => a === "-i")).toHaveLength(1);
    // No X264_PRESET: the tuned ladder, veryfast on every rung.
    const presets = argv.flatMap((a, i) => (a === "-preset" ? [argv[i + 1]] : []));
    expect(presets).toEqual(rungs.filter((r) => r !== "audio").map(() => "veryfast"));
    expect(inconsistencies).toEqual([]);

    const types = events.map((e) => e.type);
    expect(types.filter((t) => t !== "job.progress")).toEqual([
      "job.started",
      "job.probed",
      "video.playable",
      "variant.ready",
      "variant.ready",
      "variant.ready",
      "variant.ready",
      "job.succeeded",
    ]);
    // Progress only while encoding: after probing, before the first variant is ready.
    expect(types.lastIndexOf("job.progress")).toBeLessThan(types.indexOf("variant.ready"));
    expect(types.indexOf("job.progress")).toBeGreaterThan(types.indexOf("job.probed"));
    expect(atPlayable.master).toBe(true);
    expect(atPlayable.segmentsPerRung.every((n) => n > 0)).toBe(true);
    // Playable while ffmpeg was still encoding: no rung had its end yet.
    expect(atPlayable.ended).toEqual(rungs.map(() => false));
    // Every version of every playlist said the same target duration, the first one included.
    expect([...targetDurations]).toEqual([2]);

    const probed = events[1] as Extract<JobEventBody, { type: "job.probed" }>;
    expect(probed.ladder.map((r) => r.name)).toEqual(rungs);
    const progress = events.filter((e) => e.type === "job.progress");
    expect(progress.some((e) => e.progress > 0 && e.progress < 1)).toBe(true);
    for (let i = 1; i < progress.length; i++) expect(progress[i]).not.toEqual(progress[i - 1]);

    const ready = events.filter((e) => e.type === "variant.ready");
    const succeeded = events.at(-1) as Extract<JobEventBody, { type: "job.succeeded" }>;
    expect(succeeded).toEqual({
      type: "job.succeeded",
      masterKey: `videos/${VIDEO_ID}/hls/master.m3u8`,
      posterKey: `videos/${VIDEO_ID}/thumbnails/poster.jpg`,
      storyboard: {
        vttKey: `videos/${VIDEO_ID}/storyboard/storyboard.vtt`,
        sheetKeys: [`videos/${VIDEO_ID}/storyboard/sheet-0.jpg`],
        intervalSeconds: 1,
        tileCount: 10,
        tileWidth: 160,
        tileHeight: 90,
        columns: 10,
        rows: 1,
      },
    });
    expect((await stat(path.join(dirs.dataDir, succeeded.posterKey!))).size).toBeGreaterThan(1000);

    const master = parsePlaylist(await readFile(path.join(hlsDir, "master.m3u8"), "utf8"));
    expect(master.playlists?.map((p) => p.uri)).toEqual(["360p/index.m3u8", "240p/index.m3u8", "144p/index.m3u8"]);
    expect(master.playlists?.map((p) => p.attributes.RESOLUTION)).toEqual([
      { width: 640, height: 360 },
      { width: 426, height: 240 },
      { width: 256, height: 144 },
    ]);
    for (const p of master.playlists ?? []) {
      expect(p.attributes.AUDIO).toBe("audio");
      expect(p.attributes.CODECS).toMatch(/^avc1\.6400[0-9a-f]{2},mp4a\.40\.2$/);
    }
    expect(master.mediaGroups?.AUDIO?.audio?.default?.uri).toBe("audio/index.m3u8");

    for (const rung of rungs) {
      const text = await readFile(path.join(hlsDir, rung, "index.m3u8"), "utf8");
      expect(text.trimEnd().endsWith("#EXT-X-ENDLIST"), `${rung} ends`).toBe(true);
      const playlist = parsePlaylist(text);
      const total = playlist.segments.reduce((sum, s) => sum + s.duration, 0);
      expect(Math.abs(total - 10), `${rung} duration`).toBeLessThan(0.3);
      expect(ready.find((e) => e.type === "variant.ready" && e.name === rung)).toEqual({
        type: "variant.ready",
        name: rung,
        rung: expect.objectContaining({ name: rung }),
        playlistKey: `videos/${VIDEO_ID}/hls/${rung}/index.m3u8`,
        segmentCount: playlist.segments.length,
        // What the rung carries (the figures themselves: test/worker/bandwidth.test.ts).
        bitRates: { peak: expect.any(Number), average: expect.any(Number) },
      });
      for (const segment of playlist.segments) expect(existsSync(path.join(hlsDir, rung, segment.uri))).toBe(true);
      if (rung !== "audio") {
        // Keyframes at segment boundaries: a 1 s first segment, then 2 s ones (the last is what is left).
        expect(playlist.segments.map((s) => s.duration)).toEqual([1, 2, 2, 2, 2, 1]);
      }
      const { stderr } = await run("ffmpeg", [
        "-v",
        "error",
        "-i",
        path.join(hlsDir, rung, playlist.segments[1]!.uri),
        "-f",
        "null",
        "-",
      ]);
      expect(stderr).toBe("");
    }
    const { stdout } = await run("ffprobe", [
      "-v",
      "error",
      "-show_streams",
      "-of",
      "json",
      path.join(hlsDir, "240p", "seg_00000.ts"),
    ]);
    expect(JSON.parse(stdout).streams).toMatchObject([
      { codec_name: "h264", profile: "High", width: 426, height: 240 },
    ]);
  });

  it("stops ffmpeg and rejects soon after the job is canceled", async () => {
    const clip = await makeClip({ width: 1280, height: 720, seconds: 8, audio: true });
    const job = await jobFor(clip, 2);
    const controller = new AbortController();
    const events: JobEventBody[] = [];
    let abortedAt = 0;
    const emit = recordingEmit(events, (e) => {
      if (e.type === "job.progress" && e.progress > 0 && !controller.signal.aborted) {
        abortedAt = Date.now();
        controller.abort(new Error("canceled by the user"));
      }
    });
    const outcome = await transcode(job, {
      storage: createLocalWorkerStorage(dirs.dataDir),
      emit,
      signal: controller.signal,
      workDir: dirs.workDir,
      progressIntervalMs: 100,
    }).then(
      () => null,
      (err: unknown) => err,
    );
    const rejectedAfterMs = Date.now() - abortedAt;

    expect(abortedAt).toBeGreaterThan(0);
    expect(outcome).toMatchObject({ name: "AbortError" });
    expect(rejectedAfterMs).toBeLessThan(3000);
    expect(processesWithCwd(dirs.workDir)).toEqual([]);
    expect(events.map((e) => e.type)).not.toContain("job.succeeded");
    expect(events.map((e) => e.type)).not.toContain("variant.ready");
  });
});
