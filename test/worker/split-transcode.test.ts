import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { PublishedSegments, SegmentFormat } from "../../src/protocol/media-facts.ts";
import type { TranscodeChunkJobMessage, TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { RUNG_INIT_SEGMENT } from "../../src/protocol/storage-layout.ts";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { transcodeChunk } from "../../render-worker/handlers/transcode-chunk.ts";
import type { JobContext } from "../../render-worker/handlers/types.ts";
import { planChunks } from "../../render-worker/media/chunks.ts";
import type { X264Preset } from "../../render-worker/media/encode-ladder.ts";
import { splitFragmentedMp4 } from "../../render-worker/media/fragmented-mp4.ts";
import { mediaPlaylist, parsePlaylist } from "../../src/shared/hls-playlists.ts";
import { segmentCount, segmentPlan, segmentStart } from "../../render-worker/media/segments.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { frameIndices } from "../support/frames.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { frameProblems, type JoinedRung, packetsOf, segmentStarts } from "../support/joined-rungs.ts";
import {
  fixturesDir,
  makeAudioOnly,
  makeClip,
  makeFrameCounterClip,
  makeVfrClip,
  runFfmpeg,
  stageTranscodeJob,
} from "../support/media-fixtures.ts";
import { processesWithCwd } from "../support/process-scan.ts";
import { recordingFfmpeg } from "../support/recording-ffmpeg.ts";

const run = promisify(execFile);

// A 12 s frame-counter clip at 10 fps in 2 s segments after a 1 s first one (7 segments, starting
// at 0, 1, 3, 5, 7, 9 and 11 s), split into chunks 0–3 s (the split run's), 3–7 s and 7–12 s: the
// joins fall on none of the source's keyframes (its first only: x264's interval is 250 frames).
// 10 fps: every cut still falls on a frame and each 2 s pre-roll outlasts x264's lookahead, for
// under half the frames of 25 fps (chunks.test.ts measures the joins' quality at 25 fps).
const SECONDS = 12;
const FPS = 10;
const SEGMENT_SECONDS = 2;
const PLAN = segmentPlan(SEGMENT_SECONDS);
const CHUNKING = { chunkSeconds: 6, firstChunkSeconds: 2 };
const VIDEO_RUNGS = ["360p", "240p", "144p"];
const FORMATS = ["TS", "FMP4"] as const;

const PARENT_JOB_ID = "5b0c3a52-58a4-4c1e-9a43-0f8f5f1b2c01";
const chunkJobId = (index: number) => `5b0c3a52-58a4-4c1e-9a43-0f8f5f1b2c${String(10 + index)}`;
const VIDEO_ID = "c0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d";

type Event<T extends JobEventBody["type"]> = Extract<JobEventBody, { type: T }>;

let root: string;
let clip: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(fixturesDir(), "split-"));
  clip = await makeFrameCounterClip(SECONDS, FPS);
}, 120_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/**
 * Runs `work` with a recording ffprobe first on PATH (the worker's modules read FFPROBE_PATH when
 * loaded, PATH when they start a tool) and returns its reads of the source's container: its format
 * and streams (`probeSource`), or its start time alone (`firstVideoFrames`). A chunk's read of the
 * keyframes around its range is not among them.
 */
async function probingOn(work: () => Promise<unknown>): Promise<string[]> {
  const probes = await recordingFfmpeg(await mkdtemp(path.join(root, "probes-")), "ffprobe");
  const path0 = process.env.PATH;
  process.env.PATH = `${probes.bin}${path.delimiter}${path0}`;
  try {
    await work();
  } finally {
    process.env.PATH = path0;
  }
  return (await probes.calls()).filter((args) => args.includes("-show_format") || args.includes("format=start_time"));
}

/** A handler's context over local storage, a fresh work dir and a contract-checked emit. */
async function contextFor(
  dataDir: string,
  jobId: string,
  events: JobEventBody[],
  options: { signal?: AbortSignal; onEvent?: (e: JobEventBody) => void; x264Preset?: X264Preset } = {},
): Promise<JobContext> {
  const workDir = await mkdtemp(path.join(root, "work-"));
  return {
    storage: createLocalWorkerStorage(dataDir),
    emit: contractCheckedEmit(jobId, events, options.onEvent),
    signal: options.signal ?? new AbortController().signal,
    workDir,
    progressIntervalMs: 100,
    ...(options.x264Preset ? { x264Preset: options.x264Preset } : {}),
  };
}

/** Every file under `dir`, relative to it, with its bytes and modification time. */
async function filesUnder(dir: string): Promise<Map<string, { bytes: Buffer; mtimeMs: number }>> {
  const files = new Map<string, { bytes: Buffer; mtimeMs: number }>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, file), { bytes: await readFile(file), mtimeMs: (await stat(file)).mtimeMs });
  }
  return files;
}

describe.each(FORMATS)("a split transcode, its chunks and their joins (%s, real ffmpeg)", (format: SegmentFormat) => {
  let dataDir: string;
  let hlsDir: string;
  let job: TranscodeJobMessage;
  const parentEvents: JobEventBody[] = [];
  const chunkEvents = new Map<number, JobEventBody[]>();
  const chunkWorkDirs = new Map<number, string>();
  /** The video rungs' published playlists right after the split run. */
  const afterParent = new Map<string, string>();
  let split: Event<"job.split">;
  let succeeded: Event<"job.succeeded">;
  /** The ffprobe runs of the split run, and of the chunks' first runs. */
  let splitRunProbes: string[];
  let chunkProbes: string[];

  const chunkJob = (chunk: Event<"job.split">["chunks"][number]): TranscodeChunkJobMessage => ({
    v: 2,
    type: "transcode_chunk",
    jobId: chunkJobId(chunk.index),
    attempt: 1,
    videoId: VIDEO_ID,
    parentJobId: PARENT_JOB_ID,
    sourceKey: job.sourceKey,
    outputPrefix: job.outputPrefix,
    chunk,
    ladder: split.ladder,
    // As the API hands it on (split-transcode-events.ts).
    ...(split.source ? { source: split.source } : {}),
    options: { segmentSeconds: SEGMENT_SECONDS, segmentFormat: format },
  });

  /** A video rung's segments in order: the split run's, then each chunk's. */
  const rungSegments = (rung: string): PublishedSegments["segments"] => [
    ...succeeded.firstChunk!.variants.find((v) => v.name === rung)!.segments,
    ...[...chunkEvents.keys()]
      .sort((a, b) => a - b)
      .flatMap((index) => {
        const done = chunkEvents.get(index)!.find((e) => e.type === "chunk.succeeded") as Event<"chunk.succeeded">;
        return done.variants.find((v) => v.name === rung)!.segments;
      }),
  ];

  /** A rung's published segments back to back in one file (fMP4: its init first), as a player reads the playlist. */
  async function joinPublished(rung: string, segments: { uri: string; duration: number }[]): Promise<JoinedRung> {
    const parts: Buffer[] = [];
    const joined: JoinedRung["segments"] = [];
    let offset = 0;
    if (format === "FMP4") {
      const init = await readFile(path.join(hlsDir, rung, RUNG_INIT_SEGMENT));
      parts.push(init);
      offset = init.length;
    }
    for (const s of segments) {
      const bytes = await readFile(path.join(hlsDir, rung, s.uri));
      parts.push(bytes);
      joined.push({ uri: s.uri, duration: s.duration, from: offset, to: offset + bytes.length, init: null });
      offset += bytes.length;
    }
    const file = path.join(root, `${format}-${rung}-joined.${format === "FMP4" ? "mp4" : "ts"}`);
    await writeFile(file, Buffer.concat(parts));
    return { file, segments: joined, joins: [] };
  }

  beforeAll(async () => {
    dataDir = path.join(root, `${format}-data`);
    const staged = await stageTranscodeJob(dataDir, clip, { jobId: PARENT_JOB_ID, videoId: VIDEO_ID }, SEGMENT_SECONDS);
    job = { ...staged, options: { segmentSeconds: SEGMENT_SECONDS, segmentFormat: format, chunking: CHUNKING } };
    hlsDir = path.join(dataDir, job.outputPrefix, "hls");
    splitRunProbes = await probingOn(async () =>
      transcode(job, await contextFor(dataDir, PARENT_JOB_ID, parentEvents)),
    );
    split = parentEvents.find((e) => e.type === "job.split") as Event<"job.split">;
    succeeded = parentEvents.at(-1) as Event<"job.succeeded">;
    for (const rung of VIDEO_RUNGS)
      afterParent.set(rung, await readFile(path.join(hlsDir, rung, "index.m3u8"), "utf8"));
    // Each later chunk as a chunk job would run it: on any worker, in a work dir of its own.
    chunkProbes = await probingOn(async () => {
      for (const chunk of split.chunks.slice(1)) {
        const events: JobEventBody[] = [];
        const ctx = await contextFor(dataDir, chunkJobId(chunk.index), events);
        await transcodeChunk(chunkJob(chunk), ctx);
        chunkEvents.set(chunk.index, events);
        chunkWorkDirs.set(chunk.index, ctx.workDir);
      }
    });
  }, 240_000);

  it("hands its chunks the source as it probed it, and a chunk opens it so without a probe of its own", () => {
    const probed = parentEvents.find((e) => e.type === "job.probed") as Event<"job.probed">;
    expect(split.source).toEqual({ probe: probed.probe, format: "mov", startTime: 0 });
    expect(splitRunProbes).toHaveLength(1);
    expect(chunkProbes).toEqual([]);
  });

  it("splits into the planned chunks and reports the first chunk's video and the whole audio", async () => {
    expect(split.chunks).toEqual(planChunks(PLAN, SECONDS, CHUNKING));
    expect(split.chunks.map((c) => [c.fromSegment, c.toSegment])).toEqual([
      [0, 2],
      [2, 4],
      [4, 7],
    ]);
    expect(split.ladder.map((r) => r.name)).toEqual(VIDEO_RUNGS);
    expect(split.ladder.every((r) => r.h264Level !== undefined)).toBe(true);
    expect(parentEvents.map((e) => e.type).filter((t) => t !== "job.progress")).toEqual([
      "job.started",
      "job.probed",
      // Once the video is playable: no chunk competes with the first segments.
      "video.playable",
      "job.split",
      "variant.ready",
      "job.succeeded",
    ]);
    const ready = parentEvents.find((e) => e.type === "variant.ready") as Event<"variant.ready">;
    expect(ready).toMatchObject({ name: "audio", segmentCount: segmentCount(PLAN, SECONDS) });
    expect(succeeded).toMatchObject({
      masterKey: `videos/${VIDEO_ID}/hls/master.m3u8`,
      posterKey: `videos/${VIDEO_ID}/thumbnails/poster.jpg`,
      storyboard: expect.objectContaining({ tileCount: SECONDS }),
    });
    expect(succeeded.firstChunk!.variants.map((v) => v.name)).toEqual(VIDEO_RUNGS);
    for (const v of succeeded.firstChunk!.variants) {
      expect(
        v.segments.map(({ uri, duration }) => ({ uri, duration })),
        v.name,
      ).toEqual([
        { uri: `seg_00000.${format === "FMP4" ? "m4s" : "ts"}`, duration: 1 },
        { uri: `seg_00001.${format === "FMP4" ? "m4s" : "ts"}`, duration: 2 },
      ]);
      // Each with the bytes storage holds (the master's measured rates count them).
      for (const s of v.segments) expect(s.bytes, s.uri).toBe((await stat(path.join(hlsDir, v.name, s.uri))).size);
    }
    // The audio it published whole, measured: the API adds it to each variant's video.
    expect(succeeded.firstChunk!.audioBitRates?.map((a) => a.name)).toEqual(["audio"]);
    // The split's chunk count: the API waits for the split should the end arrive first.
    expect(succeeded.firstChunk!.chunkCount).toBe(split.chunks.length);
  });

  it("leaves the video rungs' playlists open after the split run, and publishes the audio rung whole", async () => {
    for (const [rung, text] of afterParent) {
      const playlist = parsePlaylist(text);
      expect(playlist.endList, rung).toBeUndefined();
      expect(
        playlist.segments.map((s) => s.uri),
        rung,
      ).toEqual(succeeded.firstChunk!.variants.find((v) => v.name === rung)!.segments.map((s) => s.uri));
    }
    const audio = parsePlaylist(await readFile(path.join(hlsDir, "audio", "index.m3u8"), "utf8"));
    expect(audio.endList).toBe(true);
    expect(audio.segments).toHaveLength(segmentCount(PLAN, SECONDS));
    expect(Math.abs(audio.segments.reduce((sum, s) => sum + s.duration, 0) - SECONDS)).toBeLessThan(0.05);
    const master = parsePlaylist(await readFile(path.join(hlsDir, "master.m3u8"), "utf8"));
    expect(master.playlists?.map((p) => p.uri)).toEqual(VIDEO_RUNGS.map((r) => `${r}/index.m3u8`));
    // The chunks wrote no playlist: what the split run published is what storage still lists.
    for (const [rung, text] of afterParent)
      expect(await readFile(path.join(hlsDir, rung, "index.m3u8"), "utf8"), rung).toBe(text);
  });

  it("has each chunk report every rung's segments of its range, in order, and its progress within the chunk", () => {
    for (const chunk of split.chunks.slice(1)) {
      const events = chunkEvents.get(chunk.index)!;
      expect(events.map((e) => e.type).filter((t) => t !== "job.progress")).toEqual(["job.started", "chunk.succeeded"]);
      const done = events.at(-1) as Event<"chunk.succeeded">;
      expect(done.chunk).toBe(chunk.index);
      expect(done.variants.map((v) => v.name)).toEqual(VIDEO_RUNGS);
      for (const v of done.variants)
        expect(
          v.segments.map((s) => s.uri),
          v.name,
        ).toEqual(
          Array.from(
            { length: chunk.toSegment - chunk.fromSegment },
            (_, i) => `seg_${String(chunk.fromSegment + i).padStart(5, "0")}.${format === "FMP4" ? "m4s" : "ts"}`,
          ),
        );
      // Counted within the chunk: a rung's progress is its published media time over the chunk's length,
      // not the source's, whenever the progress timer sampled it (a fast encode may end between samples).
      const progress = events.filter((e) => e.type === "job.progress");
      expect(progress.length, `chunk ${chunk.index}`).toBeGreaterThan(0);
      for (const p of progress) expect(p.progress).toBeLessThanOrEqual(1);
      for (const p of progress)
        for (const v of p.variants) {
          const segments = done.variants.find((d) => d.name === v.name)!.segments.map((s) => s.duration);
          const published = segments.slice(0, v.segmentCount).reduce((sum, d) => sum + d, 0);
          const length = segments.reduce((sum, d) => sum + d, 0);
          expect(v.progress, `chunk ${chunk.index} ${v.name} at ${v.segmentCount} segments`).toBeCloseTo(
            published / length,
            2,
          );
        }
      expect(progress.some((p) => p.variants.some((v) => v.segmentCount > 0))).toBe(true);
    }
  });

  it("joins into every source frame once and in order, each segment starting where the plan cuts it", async () => {
    for (const rung of VIDEO_RUNGS) {
      const segments = rungSegments(rung);
      expect(segments).toHaveLength(segmentCount(PLAN, SECONDS));
      // The playlist the API writes once every chunk is in, with the worker's own writer.
      const playlist = mediaPlaylist(segments, {
        targetDuration: SEGMENT_SECONDS,
        endList: true,
        ...(format === "FMP4" ? { map: RUNG_INIT_SEGMENT } : {}),
      });
      expect(parsePlaylist(playlist).segments.map((s) => s.uri)).toEqual(segments.map((s) => s.uri));
      const joined = await joinPublished(rung, segments);
      expect(frameProblems(await frameIndices(joined.file), SECONDS * FPS), rung).toEqual([]);
      const starts = await segmentStarts(joined);
      expect(
        starts.map((s) => s.keyframe),
        rung,
      ).not.toContain(false);
      // Cuts at whole seconds fall on frames: each segment's first frame is the frame at the plan's cut.
      const { timeBase } = await packetsOf(joined.file);
      expect(
        starts.map((s) => Math.round((s.start - starts[0]!.start) * timeBase * FPS)),
        rung,
      ).toEqual(segments.map((_, i) => segmentStart(PLAN, i) * FPS));
      const ends = segments.map((_, i) => Math.min(segmentStart(PLAN, i + 1), SECONDS));
      expect(
        segments.map((s) => s.duration),
        rung,
      ).toEqual(ends.map((end, i) => end - segmentStart(PLAN, i)));
      expect(
        starts.map((s) => s.packets),
        rung,
      ).toEqual(ends.map((end, i) => (end - segmentStart(PLAN, i)) * FPS));
    }
  });

  it.runIf(format === "FMP4")("has every chunk write the split run's init segment, byte for byte", async () => {
    for (const rung of VIDEO_RUNGS) {
      const init = await readFile(path.join(hlsDir, rung, RUNG_INIT_SEGMENT));
      for (const [index, workDir] of chunkWorkDirs) {
        const written = (await readdir(path.join(workDir, rung))).filter((f) => f.endsWith(".m4s"));
        expect(written.length, `${rung} chunk ${index}`).toBeGreaterThan(0);
        for (const file of written)
          expect(splitFragmentedMp4(await readFile(path.join(workDir, rung, file))).init.equals(init)).toBe(true);
      }
    }
  });

  it("leaves every published file as it was when a chunk runs again", async () => {
    const before = await filesUnder(hlsDir);
    const chunk = split.chunks[1]!;
    const events: JobEventBody[] = [];
    await transcodeChunk(chunkJob(chunk), await contextFor(dataDir, chunkJobId(chunk.index), events));
    const again = events.at(-1) as Event<"chunk.succeeded">;
    const first = chunkEvents.get(chunk.index)!.at(-1) as Event<"chunk.succeeded">;
    expect(again.variants.map((v) => v.segments.map((s) => s.uri))).toEqual(
      first.variants.map((v) => v.segments.map((s) => s.uri)),
    );
    const after = await filesUnder(hlsDir);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [file, { bytes, mtimeMs }] of before) {
      expect(after.get(file)!.bytes.equals(bytes), file).toBe(true);
      expect(after.get(file)!.mtimeMs, file).toBe(mtimeMs);
    }
  });

  it.runIf(format === "TS")(
    `probes the source itself when its message has no probe (split before the handing on) or names a container \
it does not open, and writes the same segments`,
    async () => {
      const chunk = split.chunks[1]!;
      const first = chunkEvents.get(chunk.index)!.at(-1) as Event<"chunk.succeeded">;
      const { source: _handedOn, ...older } = chunkJob(chunk);
      const unknownContainer = { ...chunkJob(chunk), source: { ...split.source!, format: "hls" } };
      for (const message of [older, unknownContainer]) {
        const events: JobEventBody[] = [];
        const probes = await probingOn(async () =>
          transcodeChunk(message, await contextFor(dataDir, chunkJobId(chunk.index), events)),
        );
        expect(probes).toHaveLength(1);
        expect((events.at(-1) as Event<"chunk.succeeded">).variants).toEqual(first.variants);
      }
    },
  );

  it.runIf(format === "TS")("stops ffmpeg and rejects soon after a chunk is canceled", async () => {
    const controller = new AbortController();
    let abortedAt = 0;
    const events: JobEventBody[] = [];
    const chunk = split.chunks[2]!;
    const ctx = await contextFor(dataDir, chunkJobId(chunk.index), events, {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type !== "job.progress" || controller.signal.aborted) return;
        abortedAt = Date.now();
        controller.abort(new Error("canceled by the user"));
      },
    });
    const outcome = await transcodeChunk(chunkJob(chunk), ctx).catch((err: unknown) => err);
    expect(abortedAt).toBeGreaterThan(0);
    expect(outcome).toMatchObject({ name: "AbortError" });
    expect(Date.now() - abortedAt).toBeLessThan(3000);
    expect(processesWithCwd(ctx.workDir)).toEqual([]);
    expect(events.map((e) => e.type)).not.toContain("chunk.succeeded");
  });

  it.runIf(format === "TS")(
    "keeps the assembled playlists and every segment when the split run is delivered again",
    async () => {
      // What the API writes once every chunk is listed: each video rung's playlist, ended.
      for (const rung of VIDEO_RUNGS) {
        const playlist = mediaPlaylist(rungSegments(rung), {
          targetDuration: SEGMENT_SECONDS,
          endList: true,
          ...(format === "FMP4" ? { map: RUNG_INIT_SEGMENT } : {}),
        });
        await writeFile(path.join(hlsDir, rung, "index.m3u8"), playlist);
      }
      const before = await filesUnder(hlsDir);
      const events: JobEventBody[] = [];
      await transcode(job, await contextFor(dataDir, PARENT_JOB_ID, events));
      const again = events.at(-1) as Event<"job.succeeded">;
      expect(again.type).toBe("job.succeeded");
      expect(again.alreadyDone).toBeUndefined();
      // The same segments listed; their bytes and the audio's rates only where this run stored them,
      // and it stored none: every segment was listed already (the API ignores the report of a
      // transcode that SUCCEEDED).
      const listed = (report: Event<"job.succeeded">) => ({
        targetDuration: report.firstChunk!.targetDuration,
        variants: report.firstChunk!.variants.map((v) => ({
          name: v.name,
          segments: v.segments.map(({ uri, duration }) => ({ uri, duration })),
        })),
      });
      expect(listed(again)).toEqual(listed(succeeded));
      expect(again.firstChunk!.variants.flatMap((v) => v.segments.filter((s) => s.bytes !== undefined))).toEqual([]);
      const after = await filesUnder(hlsDir);
      for (const [file, { bytes, mtimeMs }] of before) {
        // The master, the audio playlist and the encode manifest are written again, the same.
        if (/^(master\.m3u8|audio\/index\.m3u8|encode\.json)$/.test(file)) continue;
        expect(after.get(file)!.bytes.equals(bytes), file).toBe(true);
        expect(after.get(file)!.mtimeMs, file).toBe(mtimeMs);
      }
      for (const rung of VIDEO_RUNGS)
        expect(parsePlaylist(after.get(`${rung}/index.m3u8`)!.bytes.toString()).endList, rung).toBe(true);
    },
  );
});

/**
 * The describes below check filters and decisions, not the joins (above, with the tuned ladder): the
 * API-level tests' preset, about half the CPU.
 */
const FAST = { x264Preset: "ultrafast" } as const;

describe("a split transcode with a watermark and loudness normalization (real ffmpeg)", () => {
  const VIDEO = "d0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d";
  let dataDir: string;
  let hlsDir: string;
  const parentEvents: JobEventBody[] = [];
  const chunkEvents: JobEventBody[] = [];

  /** The mean luma of a 48x48 square near the bottom-left corner of a 360p segment's first frame. */
  const bottomLeftLuma = async (file: string) => {
    const { stdout } = await run(
      "ffmpeg",
      ["-v", "error", "-i", file, "-frames:v", "1", "-vf", "crop=48:48:12:300,scale=1:1:flags=area,format=gray"].concat(
        ["-f", "rawvideo", "-"],
      ),
      { encoding: "buffer" },
    );
    return stdout[0]!;
  };

  beforeAll(async () => {
    dataDir = path.join(root, "filters-data");
    const staged = await stageTranscodeJob(dataDir, clip, { jobId: PARENT_JOB_ID, videoId: VIDEO }, SEGMENT_SECONDS);
    const imageKey = "tenants/t/assets/logo.png";
    await mkdir(path.join(dataDir, "tenants/t/assets"), { recursive: true });
    await runFfmpeg(["-f", "lavfi", "-i", "color=white:size=32x32", "-frames:v", "1", path.join(dataDir, imageKey)]);
    const watermark = {
      key: imageKey,
      format: "png" as const,
      position: "BOTTOM_LEFT" as const,
      widthFraction: 0.1,
      margin: { value: 2, unit: "PERCENT" as const },
      opacity: 0.9,
    };
    const job: TranscodeJobMessage = {
      ...staged,
      options: {
        segmentSeconds: SEGMENT_SECONDS,
        chunking: CHUNKING,
        loudness: { integratedLufs: -20, truePeakDb: -1.5, lra: 11 },
        watermark,
      },
    };
    hlsDir = path.join(dataDir, job.outputPrefix, "hls");
    await transcode(job, await contextFor(dataDir, PARENT_JOB_ID, parentEvents, FAST));
    const split = parentEvents.find((e) => e.type === "job.split") as Event<"job.split">;
    const chunk = split.chunks[1]!;
    const chunkJob: TranscodeChunkJobMessage = {
      v: 2,
      type: "transcode_chunk",
      jobId: chunkJobId(chunk.index),
      attempt: 1,
      videoId: VIDEO,
      parentJobId: PARENT_JOB_ID,
      sourceKey: job.sourceKey,
      outputPrefix: job.outputPrefix,
      chunk,
      ladder: split.ladder,
      options: { segmentSeconds: SEGMENT_SECONDS, watermark },
    };
    await transcodeChunk(chunkJob, await contextFor(dataDir, chunkJob.jobId, chunkEvents, FAST));
  }, 240_000);

  it("draws the watermark in the split run's segments and in a chunk's", async () => {
    expect(await bottomLeftLuma(clip)).toBeLessThan(120);
    for (const segment of ["seg_00000.ts", "seg_00002.ts"])
      expect(await bottomLeftLuma(path.join(hlsDir, "360p", segment)), segment).toBeGreaterThan(200);
    expect(chunkEvents.at(-1)?.type).toBe("chunk.succeeded");
  });

  it("measures the loudness once, in the split run, and brings the whole audio rung to the target", async () => {
    const measuring = (events: JobEventBody[]) =>
      events.filter((e) => e.type === "step.progress" && e.description === "Measuring loudness");
    expect(measuring(parentEvents).length).toBeGreaterThan(0);
    expect(measuring(chunkEvents)).toEqual([]);
    const { stderr } = await run("ffmpeg", [
      ...["-hide_banner", "-nostats", "-i", path.join(hlsDir, "audio", "index.m3u8")],
      ...["-af", "ebur128", "-f", "null", "-"],
    ]);
    const integrated = Number(/I:\s+(-?[\d.]+) LUFS/.exec(stderr.slice(stderr.lastIndexOf("Summary:")))![1]);
    expect(Math.abs(integrated - -20)).toBeLessThanOrEqual(1);
  });
});

describe("a transcode that may be split but is not (real ffmpeg)", () => {
  it.each([
    ["a source no longer than one chunk", () => makeClip({ width: 320, height: 180, seconds: 3, audio: true })],
    ["a source without video", () => makeAudioOnly(SECONDS)],
    // Its joins would drop or repeat frames (chunks.ts): the probe's base and average rates differ.
    ["a source whose frame rate varies", () => makeVfrClip({ width: 320, height: 180, seconds: SECONDS })],
  ])("encodes %s in one run, its playlists ended", async (_, make) => {
    const dataDir = await mkdtemp(path.join(root, "unsplit-"));
    const staged = await stageTranscodeJob(dataDir, await make(), { jobId: PARENT_JOB_ID, videoId: VIDEO_ID }, 2);
    const job = { ...staged, options: { ...staged.options, chunking: CHUNKING } };
    const events: JobEventBody[] = [];
    await transcode(job, await contextFor(dataDir, PARENT_JOB_ID, events, FAST));
    const types = events.map((e) => e.type);
    expect(types).not.toContain("job.split");
    const succeeded = events.at(-1) as Event<"job.succeeded">;
    expect(succeeded.type).toBe("job.succeeded");
    expect(succeeded.firstChunk).toBeUndefined();
    const ready = events.filter((e) => e.type === "variant.ready");
    expect(ready.length).toBeGreaterThan(0);
    for (const { playlistKey } of ready)
      expect(parsePlaylist(await readFile(path.join(dataDir, playlistKey), "utf8")).endList, playlistKey).toBe(true);
  });
});
