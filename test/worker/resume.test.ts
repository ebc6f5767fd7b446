import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { Rung, SegmentFormat } from "../../src/protocol/media-facts.ts";
import { transcode } from "../../render-worker/handlers/transcode.ts";
import { encodeLadder, type EncodeLadderArgs } from "../../render-worker/media/encode-ladder.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { mediaPlaylist } from "../../src/shared/hls-playlists.ts";
import { probeSource } from "../../render-worker/media/probe.ts";
import {
  encodeManifestText,
  planResume,
  readEarlierEncode,
  type EncodeManifest,
} from "../../render-worker/media/resume.ts";
import { timelineZeroSeconds } from "../../src/protocol/media-timeline.ts";
import { ENCODE_MANIFEST, hlsLayout } from "../../src/protocol/storage-layout.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { WorkerStorage } from "../../render-worker/storage/types.ts";
import { frameIndices } from "../support/frames.ts";
import {
  expectReferenceSegments,
  expectReferenceTimeline,
  frameProblems,
  type JoinedRung,
  joinRung,
  packetsOf,
  type RunPart,
  NTSC_STEP_SECONDS,
} from "../support/joined-rungs.ts";
import { expectMeasuredMaster, largestGap, packetTimes } from "../support/media-checks.ts";
import { fixturesDir, makeClip, makeFrameCounterClip, stageTranscodeJob } from "../support/media-fixtures.ts";

const run = promisify(execFile);
const JOB_ID = "7d7a3c52-58a4-4c1e-9a43-0f8f5f1b2c02";
const VIDEO_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4e";

const rung = (name: string, kind: "VIDEO" | "AUDIO" = "VIDEO"): Rung => ({
  name,
  kind,
  width: kind === "VIDEO" ? 640 : null,
  height: kind === "VIDEO" ? 360 : null,
  bandwidth: 1_000_000,
  codecs: kind === "VIDEO" ? "avc1.64001e" : "mp4a.40.2",
});
const LADDER = [rung("360p"), rung("240p"), rung("audio", "AUDIO")];
const MANIFEST: EncodeManifest = {
  jobId: JOB_ID,
  ladder: LADDER,
  segmentSeconds: 2,
  firstSegmentSeconds: 1,
  encoder: "libx264",
};

function playlist(
  durations: number[],
  opts: { endList?: boolean; mediaSequence?: number; map?: string; ext?: string } = {},
): string {
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:6",
    "#EXT-X-TARGETDURATION:2",
    `#EXT-X-MEDIA-SEQUENCE:${opts.mediaSequence ?? 0}`,
    "#EXT-X-PLAYLIST-TYPE:EVENT",
    ...(opts.map ? [`#EXT-X-MAP:URI="${opts.map}"`] : []),
  ];
  durations.forEach((d, i) => {
    const name = `seg_${String(i + (opts.mediaSequence ?? 0)).padStart(5, "0")}.${opts.ext ?? "ts"}`;
    lines.push(`#EXTINF:${d.toFixed(6)},`, name);
  });
  if (opts.endList) lines.push("#EXT-X-ENDLIST");
  return `${lines.join("\n")}\n`;
}

/** Storage holding only these texts; nothing is written. */
function textStorage(objects: Record<string, string>): WorkerStorage {
  return {
    inputFor: async (key) => key,
    list: async () => [],
    download: async () => {
      throw new Error("read-only");
    },
    uploadOnce: async () => {
      throw new Error("read-only");
    },
    upload: async () => {
      throw new Error("read-only");
    },
    readText: async (key) => objects[key] ?? null,
  };
}

/** The HLS layout of a video whose prefix is `v`. */
const HLS = hlsLayout("v");

async function planFor(objects: Record<string, string>, manifest = MANIFEST, duration = 12) {
  const storage = textStorage(objects);
  const earlier = await readEarlierEncode(storage, HLS);
  return planResume({ storage, hls: HLS, earlier, manifest, rungs: LADDER, duration, fps: 25 });
}

describe("planResume", () => {
  const published: Record<string, string> = {
    [`v/hls/${ENCODE_MANIFEST}`]: encodeManifestText(MANIFEST),
    // A 1 s first segment, then 2 s ones.
    "v/hls/360p/index.m3u8": playlist([1, 2, 2, 2]),
    "v/hls/240p/index.m3u8": playlist([1, 2, 2]),
    "v/hls/audio/index.m3u8": playlist([1.002667, 2.005333, 1.984, 2.005333, 2.005333]),
  };

  it("keeps the segments every rung has published and starts where the next one starts", async () => {
    const { resume } = await planFor(published);
    expect(resume).toMatchObject({ segments: 3, fromSeconds: 5 });
    expect([...resume!.kept.keys()]).toEqual(["360p", "240p", "audio"]);
    expect(resume!.kept.get("audio")!.map((s) => s.uri)).toEqual(["seg_00000.ts", "seg_00001.ts", "seg_00002.ts"]);
    expect(resume!.kept.get("360p")!.map((s) => s.duration)).toEqual([1, 2, 2]);
  });

  it("leaves at least the last segment to encode, even when every segment was published", async () => {
    const all = playlist([1, 2, 2, 2, 2, 2, 1], { endList: true });
    const { resume } = await planFor({
      ...published,
      "v/hls/360p/index.m3u8": all,
      "v/hls/240p/index.m3u8": all,
      "v/hls/audio/index.m3u8": all,
    });
    expect(resume).toMatchObject({ segments: 6, fromSeconds: 11 });
  });

  it("starts from zero when there is nothing to keep or it cannot be trusted", async () => {
    const cases: Array<[string, Record<string, string>, EncodeManifest?]> = [
      ["no earlier run", {}],
      ["another job wrote it", published, { ...MANIFEST, jobId: "0d7a3c52-58a4-4c1e-9a43-0f8f5f1b2c02" }],
      ["other options", published, { ...MANIFEST, segmentSeconds: 4 }],
      ["another first segment", published, { ...MANIFEST, firstSegmentSeconds: 2 }],
      ["another ladder", published, { ...MANIFEST, ladder: LADDER.slice(1) }],
      ["a rung never published", { ...published, "v/hls/240p/index.m3u8": undefined as never }],
      ["a rung has no segment yet", { ...published, "v/hls/240p/index.m3u8": playlist([]) }],
      ["segments not cut at the boundaries", { ...published, "v/hls/240p/index.m3u8": playlist([1, 3.2, 2]) }],
      // Every segment full length, the first included: not the cuts the manifest says.
      ["no short first segment", { ...published, "v/hls/240p/index.m3u8": playlist([2, 2, 2]) }],
      [
        "a playlist this worker did not write",
        { ...published, "v/hls/240p/index.m3u8": playlist([2, 2, 2], { mediaSequence: 4 }) },
      ],
    ];
    for (const [what, objects, manifest] of cases) {
      const plan = await planFor(objects, manifest);
      expect(plan.resume, what).toBeNull();
    }
    const unreadable: WorkerStorage = {
      ...textStorage(published),
      readText: async (key) => {
        if (key.endsWith("240p/index.m3u8")) throw new Error("503 Service Unavailable");
        return published[key] ?? null;
      },
    };
    const plan = await planResume({
      storage: unreadable,
      hls: HLS,
      earlier: await readEarlierEncode(unreadable, HLS),
      manifest: MANIFEST,
      rungs: LADDER,
      duration: 12,
      fps: 25,
    });
    expect(plan).toEqual({
      resume: null,
      reason: "the earlier run's playlists could not be read: 503 Service Unavailable",
    });
  });
});

describe("planResume of an fMP4 encode", () => {
  const FMP4: EncodeManifest = { ...MANIFEST, segmentFormat: "FMP4" };
  const fmp4 = (durations: number[]) => playlist(durations, { map: "init.mp4", ext: "m4s" });
  const published: Record<string, string> = {
    [`v/hls/${ENCODE_MANIFEST}`]: encodeManifestText(FMP4),
    "v/hls/360p/index.m3u8": fmp4([1, 2, 2, 2]),
    "v/hls/240p/index.m3u8": fmp4([1, 2, 2]),
    "v/hls/audio/index.m3u8": fmp4([1.002667, 2.005333, 1.984, 2.005333]),
  };

  it("keeps the .m4s segments every rung published after its init", async () => {
    const { resume } = await planFor(published, FMP4);
    expect(resume).toMatchObject({ segments: 3, fromSeconds: 5 });
    expect(resume!.kept.get("240p")!.map((s) => s.uri)).toEqual(["seg_00000.m4s", "seg_00001.m4s", "seg_00002.m4s"]);
  });

  it("starts from zero over a TS encode's output, and a TS encode over an fMP4 one's", async () => {
    // The manifest says the format: a TS manifest is not an fMP4 one, nor the other way round.
    expect(encodeManifestText(FMP4)).toContain('"segmentFormat":"FMP4"');
    expect(encodeManifestText(MANIFEST)).not.toContain("segmentFormat");
    expect((await planFor(published, MANIFEST)).resume).toBeNull();
    const cases: Array<[string, string]> = [
      ["TS segments", playlist([1, 2, 2])],
      ["no EXT-X-MAP", playlist([1, 2, 2], { ext: "m4s" })],
      ["another init", playlist([1, 2, 2], { ext: "m4s", map: "other.mp4" })],
    ];
    for (const [what, text] of cases) {
      const plan = await planFor({ ...published, "v/hls/240p/index.m3u8": text }, FMP4);
      expect(plan.resume, what).toBeNull();
    }
  });
});

describe("mediaPlaylist", () => {
  it("lists the kept segments, then the run's own, from segment 0 with one target duration", () => {
    const kept = [
      { uri: "seg_00000.ts", duration: 1 },
      { uri: "seg_00001.ts", duration: 2.005333 },
    ];
    const own = [
      { uri: "seg_00002.ts", duration: 2 },
      { uri: "seg_00003.ts", duration: 1.5 },
    ];
    const text = mediaPlaylist([...kept, ...own], { targetDuration: 2, endList: true });
    const parser = new Parser();
    parser.push(text);
    parser.end();
    expect(parser.manifest.mediaSequence).toBe(0);
    expect(parser.manifest.targetDuration).toBe(2);
    expect(parser.manifest.endList).toBe(true);
    expect(parser.manifest.segments.map((s: { uri: string; duration: number }) => [s.uri, s.duration])).toEqual([
      ["seg_00000.ts", 1],
      ["seg_00001.ts", 2.005333],
      ["seg_00002.ts", 2],
      ["seg_00003.ts", 1.5],
    ]);
    expect(mediaPlaylist(kept, { targetDuration: 2, endList: false })).not.toContain("ENDLIST");
    expect(mediaPlaylist(kept, { targetDuration: 2, endList: false })).not.toContain("#EXT-X-MAP");
    // fMP4: version 7, the init named before the first segment.
    const fmp4 = mediaPlaylist(kept, { targetDuration: 2, endList: false, map: "init.mp4" });
    expect(fmp4).toContain("#EXT-X-VERSION:7\n");
    expect(fmp4.indexOf('#EXT-X-MAP:URI="init.mp4"\n')).toBeLessThan(fmp4.indexOf("#EXTINF"));
    // A segment that rounds to more than the target (a long frame gap) raises it: the spec's rule.
    expect(mediaPlaylist([{ uri: "seg_00000.ts", duration: 3.6 }], { targetDuration: 2, endList: false })).toContain(
      "#EXT-X-TARGETDURATION:4",
    );
  });
});

describe.each([
  { format: "TS", ext: "ts" },
  { format: "FMP4", ext: "m4s" },
] as const)("transcode resumes what an earlier run of the job published (real ffmpeg, $format)", ({ format, ext }) => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(fixturesDir(), "resume-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it(`a run stopped after some segments, then a new run: only the rest is encoded and the playlists \
play through`, async () => {
    const seconds = 16;
    const clip = await makeClip({ width: 640, height: 360, seconds, audio: true });
    const dataDir = path.join(root, "data");
    const staged = await stageTranscodeJob(dataDir, clip, { jobId: JOB_ID, videoId: VIDEO_ID }, 2);
    const job = { ...staged, options: { ...staged.options, segmentFormat: format } };
    const storage = createLocalWorkerStorage(dataDir);
    const hlsDir = path.join(dataDir, job.outputPrefix, "hls");

    // The first run dies (aborted, as a killed worker's would stop) once every rung published 3 segments.
    const first = new AbortController();
    const firstEvents: JobEventBody[] = [];
    const stopped = await transcode(job, {
      storage,
      signal: first.signal,
      workDir: await mkdtemp(path.join(root, "work-")),
      progressIntervalMs: 100,
      // What a resume keeps and encodes, not how the ladder compresses: the API-level tests' preset,
      // about half the CPU of the tuned ladder (the 30000/1001 fps resume below keeps the tuning).
      x264Preset: "ultrafast",
      emit: async (e) => {
        firstEvents.push(e);
        if (e.type === "job.progress" && e.variants.length > 0 && e.variants.every((v) => v.segmentCount >= 3))
          first.abort(new Error("worker killed"));
      },
    }).catch((err: unknown) => err);
    expect(stopped).toMatchObject({ name: "AbortError" });
    const keptFiles = new Map<string, number>();
    for (const name of ["360p", "240p", "144p", "audio"]) {
      const kept = ["seg_00000", "seg_00001", "seg_00002"].map((s) => `${s}.${ext}`);
      // An fMP4 rung's init segment was published with its first segment: the next run keeps it too.
      for (const uri of format === "FMP4" ? [...kept, "init.mp4"] : kept)
        keptFiles.set(`${name}/${uri}`, (await stat(path.join(hlsDir, name, uri))).mtimeMs);
    }

    const events: JobEventBody[] = [];
    await transcode(
      { ...job, attempt: 2 },
      {
        storage,
        signal: new AbortController().signal,
        workDir: await mkdtemp(path.join(root, "work-")),
        progressIntervalMs: 100,
        x264Preset: "ultrafast",
        emit: async (e) => {
          events.push(e);
        },
      },
    );

    const probed = events.find((e) => e.type === "job.probed") as Extract<JobEventBody, { type: "job.probed" }>;
    expect(probed.resumed!.segments).toBeGreaterThanOrEqual(3);
    // A 1 s first segment, then 2 s ones.
    expect(probed.resumed!.fromSeconds).toBe(1 + (probed.resumed!.segments - 1) * 2);
    // The kept segments were not written again.
    for (const [file, mtime] of keptFiles) expect((await stat(path.join(hlsDir, file))).mtimeMs, file).toBe(mtime);
    // Progress counts what was kept: the first sample is already past it.
    const progress = events.filter((e) => e.type === "job.progress");
    expect(Math.min(...progress[0]!.variants.map((v) => v.progress))).toBeGreaterThanOrEqual(
      (probed.resumed!.fromSeconds - 0.1) / seconds,
    );

    // The master states what every variant carries, the kept segments counted from storage.
    await expectMeasuredMaster(pathToFileURL(path.join(hlsDir, "master.m3u8")));
    for (const name of ["360p", "240p", "144p", "audio"]) {
      const text = await readFile(path.join(hlsDir, name, "index.m3u8"), "utf8");
      const parser = new Parser();
      parser.push(text);
      parser.end();
      const segments = parser.manifest.segments as { uri: string; duration: number }[];
      expect(parser.manifest.endList, name).toBe(true);
      expect(segments.map((s) => s.uri)).toEqual(segments.map((_, i) => `seg_${String(i).padStart(5, "0")}.${ext}`));
      if (format === "FMP4") {
        expect(text).toContain("#EXT-X-VERSION:7\n");
        expect(text).toContain('#EXT-X-MAP:URI="init.mp4"\n');
      } else {
        expect(text).not.toContain("#EXT-X-MAP");
      }
      if (name !== "audio") {
        expect(segments).toHaveLength(seconds / 2 + 1);
        expect(segments.map((s) => s.duration)).toEqual([1, ...Array(seconds / 2 - 1).fill(2), 1]);
      }
      // One target duration in every version, the first included.
      expect(parser.manifest.targetDuration, name).toBe(2);
      const ready = events.find((e) => e.type === "variant.ready" && e.name === name);
      expect(ready).toMatchObject({ segmentCount: segments.length });
      // The playlist plays through: one timeline without gaps as long as the source, every segment decodes.
      const times = await packetTimes(path.join(hlsDir, name, "index.m3u8"));
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      expect(Math.max(...gaps), `${name} largest gap`).toBeLessThan(0.05);
      expect(Math.abs(times.at(-1)! - times[0]! - seconds), `${name} timeline length`).toBeLessThan(0.2);
      const { stderr } = await run("ffmpeg", [
        "-v",
        "error",
        "-i",
        path.join(hlsDir, name, "index.m3u8"),
        "-f",
        "null",
        "-",
      ]);
      expect(stderr, name).toBe("");
    }
  });
});

// At 30000/1001 fps no frame starts on a whole second after 0: the first frame at or after second s
// comes 0.03·s frame intervals later. A run resumed at 17 s (segment 9 of 2 s segments after a 1 s
// first one) starts 0.51 of a frame before frame 510 (17.017 s), the first whole second where that
// passes half a frame: hence a 24 s clip. The earlier run is the one-process encode, whose first 9
// segments the resumed run's follow, as a transcode publishes them.
const NTSC_SECONDS = 24;
const NTSC_RESUME_SEGMENT = 9;

describe("a resumed run of a 30000/1001 fps source continues the kept segments frame for frame (real ffmpeg)", () => {
  const formats = ["TS", "FMP4"] as const;
  let root: string;
  let sourceFrames: number;
  const joined = new Map<SegmentFormat, Map<"one" | "resumed", { video: JoinedRung; audio: JoinedRung }>>();

  beforeAll(async () => {
    root = await mkdtemp(path.join(fixturesDir(), "resume-ntsc-"));
    // 320x180: the frames' timing is checked here, not the rungs (a quarter of the decoding).
    const clip = await makeFrameCounterClip(NTSC_SECONDS, "30000/1001", { width: 320, height: 180 });
    sourceFrames = (await frameIndices(clip)).length;
    const { input, probe } = await probeSource(clip);
    const planned = planLadder(probe);
    // The lowest video rung and the audio, in one process as a transcode encodes them.
    const ladder = [planned.filter((r) => r.kind === "VIDEO").at(-1)!, planned.find((r) => r.kind === "AUDIO")!];
    const signal = new AbortController().signal;
    for (const segmentFormat of formats) {
      const encode = async (name: string, args: Partial<EncodeLadderArgs>) => {
        const workDir = path.join(root, `${segmentFormat}-${name}`);
        await encodeLadder({ input, probe, ladder, workDir, segmentSeconds: 2, signal, segmentFormat, ...args }).done;
        return workDir;
      };
      const oneDir = await encode("one", {});
      const resumedDir = await encode("resumed", { resumeFrom: { segments: NTSC_RESUME_SEGMENT } });
      const ext = segmentFormat === "FMP4" ? "mp4" : "ts";
      const join = async (name: string, runs: RunPart[]) => ({
        video: await joinRung(
          path.join(root, `${segmentFormat}-${name}-video.${ext}`),
          runs,
          ladder[0]!.name,
          segmentFormat,
        ),
        audio: await joinRung(
          path.join(root, `${segmentFormat}-${name}-audio.${ext}`),
          runs,
          ladder[1]!.name,
          segmentFormat,
        ),
      });
      joined.set(
        segmentFormat,
        new Map([
          ["one", await join("one", [{ workDir: oneDir }])],
          [
            "resumed",
            await join("resumed", [{ workDir: oneDir, count: NTSC_RESUME_SEGMENT }, { workDir: resumedDir }]),
          ],
        ]),
      );
    }
  }, 300_000);

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it.each(formats)("shows every source frame once and in order across the join (%s)", async (format) => {
    const { video } = joined.get(format)!.get("resumed")!;
    expect(sourceFrames).toBe(Math.ceil((NTSC_SECONDS * 30_000) / 1001));
    expect(frameProblems(await frameIndices(video.file), sourceFrames)).toEqual([]);
  });

  it.each(formats)(
    "keeps the earlier run's timeline: the one-process encode's timestamps, one frame interval apart (%s)",
    async (format) => {
      const runs = joined.get(format)!;
      await expectReferenceTimeline(runs.get("one")!.video, runs.get("resumed")!.video, NTSC_STEP_SECONDS);
    },
  );

  it.each(formats)(
    "lists and cuts the segments as the one-process encode: the frames whose source times fall in each (%s)",
    async (format) => {
      const runs = joined.get(format)!;
      const [one, resumed] = [runs.get("one")!.video, runs.get("resumed")!.video];
      const starts = await expectReferenceSegments(one, resumed);
      // The resumed run's first segment holds frames 510 (17.017 s) to 569 (18.985 s).
      expect(starts[NTSC_RESUME_SEGMENT]!.packets).toBe(60);
    },
  );

  it.each(formats)("continues the audio from the kept segments' end, without a gap (%s)", async (format) => {
    const runs = joined.get(format)!;
    const [one, resumed] = [runs.get("one")!.audio, runs.get("resumed")!.audio];
    expect(resumed.segments.map((s) => s.uri)).toEqual(one.segments.map((s) => s.uri));
    const { timeBase, packets } = await packetsOf(resumed.file);
    const times = packets.map((p) => p.pts * timeBase);
    // The resumed run's first AAC packet (its encoder's priming) starts 1024 samples before 17 s.
    const first = packets.findIndex((p) => p.pos >= resumed.joins[0]!);
    const zero = timelineZeroSeconds(format);
    expect(times[first]! - zero).toBeCloseTo(17 - 1024 / 48_000, 4);
    expect(largestGap([...times].sort((a, b) => a - b))).toBeLessThan(1024 / 48_000 + 0.001);
  });
});
