import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { execFile } from "node:child_process";
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import { afterEach, describe, expect, it } from "vitest";
import type { ImportUrlJobMessage } from "../../src/protocol/source-messages.ts";
import type { JobEvent } from "../../src/protocol/job-events.ts";
import type { WorkerEvent } from "../../src/protocol/worker-messages.ts";
import { ENCODE_MANIFEST } from "../../src/protocol/storage-layout.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { WorkerStorage } from "../../render-worker/storage/types.ts";
import { sameSegmentCut } from "../../render-worker/media/segment-match.ts";
import { decryptFragments, encryptFragments } from "../../render-worker/media/cenc.ts";
import { segmentEncryption } from "../../render-worker/media/encryption.ts";
import { cencKey } from "../../src/shared/segment-keys.ts";
import type { Worker } from "../../render-worker/worker.ts";
import { inMemoryTransport } from "./in-memory-transport.ts";
import { jobDirsPerTest, makeClip, stageTranscodeJob } from "../support/media-fixtures.ts";
import { startTestWorker } from "./test-worker.ts";

const run = promisify(execFile);
const dirs = jobDirsPerTest("one-run");
const workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.shutdown(0);
});

/** Every playlist upload, in order: its key, how many segments it lists, whether it ends. */
interface PlaylistWrite {
  key: string;
  segments: number;
  endList: boolean;
}

function recordingPlaylists(storage: WorkerStorage, writes: PlaylistWrite[]): WorkerStorage {
  return {
    ...storage,
    async upload(key, file, opts) {
      await storage.upload(key, file, opts);
      if (!key.endsWith("index.m3u8")) return;
      const parser = new Parser();
      parser.push(await readFile(file, "utf8"));
      parser.end();
      writes.push({ key, segments: parser.manifest.segments.length, endList: parser.manifest.endList === true });
    },
  };
}

async function setUp(opts: { concurrency?: number } = {}) {
  // 10 fps: what a delivery does and keeps turns on the segments (2 s, cut on whole seconds, where
  // every frame rate here has a frame), not on how many frames they hold; 25 fps cost 2.5 times the
  // encoding.
  const clip = await makeClip({ width: 640, height: 360, seconds: 8, audio: true, fps: 10 });
  const job = await stageTranscodeJob(dirs.dataDir, clip, { jobId: randomUUID(), videoId: randomUUID() }, 2);
  const playlistWrites: PlaylistWrite[] = [];
  const memory = inMemoryTransport();
  const worker = await startTestWorker({
    concurrency: opts.concurrency ?? 2,
    transport: memory.transport,
    storage: recordingPlaylists(createLocalWorkerStorage(dirs.dataDir), playlistWrites),
    tmpDir: dirs.workDir,
    progressIntervalMs: 100,
    // What a delivery does and keeps, not how the ladder compresses: the API-level tests' preset
    // (vitest.config.ts), about half the CPU of the tuned ladder, which test/worker/ladder and
    // bandwidth exercise.
    x264Preset: "ultrafast",
  });
  workers.push(worker);
  const hlsDir = path.join(dirs.dataDir, job.outputPrefix, "hls");
  const jobEvents = () =>
    memory.events.filter((e): e is JobEvent => e.type !== "worker.heartbeat" && e.jobId === job.jobId);
  return { job, memory, playlistWrites, hlsDir, jobEvents };
}

/** sha256 of every file under `dir`, by path relative to it. */
async function hashes(dir: string): Promise<Map<string, string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const out = new Map<string, string>();
  for (const e of entries.filter((e) => e.isFile())) {
    const file = path.join(e.parentPath, e.name);
    out.set(
      path.relative(dir, file),
      createHash("sha256")
        .update(await readFile(file))
        .digest("hex"),
    );
  }
  return out;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const typesOf = (events: WorkerEvent[]) => events.map((e) => e.type);

describe("one delivery, one run (real ffmpeg, local storage)", () => {
  it(`a second delivery of an attempt running on the same worker does no work and settles after \
the running one`, async () => {
    const { job, memory, playlistWrites, jobEvents } = await setUp();
    // In the same tick: the worker has not created the first run's work dir yet.
    const first = memory.deliver(job, "cpu");
    // The message of the second delivery is acknowledged only once the running run ended.
    const secondSettledAfterTheRun = memory
      .deliver(job, "cpu")
      .then(() => jobEvents().some((e) => e.type === "job.succeeded"));
    await first;
    expect(await secondSettledAfterTheRun).toBe(true);
    const events = jobEvents();
    expect(typesOf(events).filter((t) => t === "job.started")).toHaveLength(1);
    expect(typesOf(events).filter((t) => t === "job.succeeded")).toHaveLength(1);
    const runIds = new Set(events.map((e) => e.runId));
    expect(runIds.size).toBe(1);
    expect([...runIds][0]).toMatch(/^[0-9a-f-]{36}$/);
    // Every published playlist only grew, and kept its end once it had one.
    const byKey = Map.groupBy(playlistWrites, (w) => w.key);
    expect(byKey.size).toBe(4);
    for (const [key, writes] of byKey) {
      writes.forEach((w, i) => {
        if (i === 0) return;
        expect(w.segments, key).toBeGreaterThanOrEqual(writes[i - 1]!.segments);
        if (writes[i - 1]!.endList) expect(w.endList, key).toBe(true);
      });
    }
  });

  it("a delivery of a finished job is acknowledged without work and every published byte stays as it was", async () => {
    const { job, memory, hlsDir, jobEvents } = await setUp();
    await memory.deliver(job, "cpu");
    const finished = jobEvents().length;
    const before = await hashes(hlsDir);
    expect([...before.keys()].filter((k) => k.endsWith(".ts")).length).toBeGreaterThanOrEqual(16);

    await memory.deliver(job, "cpu");
    const again = jobEvents().slice(finished);
    expect(typesOf(again)).toEqual([
      "variant.ready",
      "variant.ready",
      "variant.ready",
      "variant.ready",
      "job.succeeded",
    ]);
    expect(again.at(-1)).toMatchObject({
      type: "job.succeeded",
      alreadyDone: true,
      masterKey: `${job.outputPrefix}/hls/master.m3u8`,
    });
    // Each rung's figures as the run that finished reported them (its encode.json keeps them), for
    // an API that never applied that run's events.
    const figures = (events: WorkerEvent[]) =>
      new Map(events.flatMap((e) => (e.type === "variant.ready" ? [[e.name, e.bitRates] as const] : [])));
    const reported = figures(jobEvents().slice(0, finished));
    expect([...reported.values()].every((rates) => rates !== undefined && rates.average > 0)).toBe(true);
    expect(figures(again)).toEqual(reported);
    expect(new Set(again.map((e) => e.runId)).size).toBe(1);
    expect(again[0]!.runId).not.toBe(jobEvents()[0]!.runId);
    expect(await hashes(hlsDir)).toEqual(before);
  });

  it(`a stale run that resumes a finished job (no completion record) rewrites no segment, even where it \
encodes other bytes`, async () => {
    const { job, memory, hlsDir, playlistWrites, jobEvents } = await setUp();
    await memory.deliver(job, "cpu");
    // As a worker from before completion records left it, with the last segment of each rung
    // standing for bytes an earlier encode made differently (a resumed encode is not bit-exact).
    const manifestFile = path.join(hlsDir, ENCODE_MANIFEST);
    const { complete: _complete, ...unfinished } = JSON.parse(await readFile(manifestFile, "utf8"));
    await writeFile(manifestFile, `${JSON.stringify(unfinished)}\n`);
    for (const rung of ["360p", "240p", "144p", "audio"]) {
      const last = path.join(hlsDir, rung, "seg_00004.ts");
      const bytes = await readFile(last);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
      await writeFile(last, bytes);
    }
    const before = await hashes(hlsDir);
    const writesBefore = playlistWrites.length;
    const finished = jobEvents().length;

    await memory.deliver(job, "cpu");
    const again = jobEvents().slice(finished);
    expect(again.find((e) => e.type === "job.probed")).toMatchObject({ resumed: { segments: 4, fromSeconds: 7 } });
    expect(again.at(-1)).toMatchObject({ type: "job.succeeded" });
    const after = await hashes(hlsDir);
    for (const [file, hash] of before) if (file.endsWith(".ts")) expect(after.get(file), file).toBe(hash);
    // The stale run published its playlists only as complete as the finished ones.
    const finalOf = new Map(playlistWrites.slice(0, writesBefore).map((w) => [w.key, w.segments]));
    const stale = playlistWrites.slice(writesBefore);
    expect(stale).toHaveLength(4);
    for (const w of stale) expect(w, w.key).toEqual({ key: w.key, segments: finalOf.get(w.key), endList: true });
  });

  it.each([
    ["TS", "ts"],
    ["FMP4", "m4s"],
  ] as const)(
    `a segment an earlier run uploaded and died before listing, encoded again with other bytes, is \
kept and listed: the run goes on (%s)`,
    async (format, ext) => {
      const { job, memory, hlsDir, jobEvents } = await setUp();
      job.options.segmentFormat = format;
      await memory.deliver(job, "cpu");
      // As a run killed between a segment's upload and its playlist's leaves it: 240p's second segment
      // and those after it stored but not listed, and no completion record, so the next run encodes
      // from the start.
      await rm(path.join(hlsDir, ENCODE_MANIFEST));
      const playlist = path.join(hlsDir, "240p", "index.m3u8");
      const lines = (await readFile(playlist, "utf8")).split("\n");
      const second = lines.indexOf(`seg_00001.${ext}`);
      await writeFile(playlist, `${lines.slice(0, second - 1).join("\n")}\n`);
      // The stored segment holds the packets the encode makes, in other bytes, as another encode of
      // the same frames would (x264's threads change the bytes, not the cut): TS remuxed, fMP4 with
      // another fragment sequence number.
      const stored = path.join(hlsDir, "240p", `seg_00001.${ext}`);
      if (format === "TS") {
        const remuxed = `${stored}.remuxed.ts`;
        const copy = ["-map", "0", "-c", "copy", "-copyts", "-muxdelay", "0", "-mpegts_transport_stream_id", "77"];
        await run("ffmpeg", ["-v", "error", "-i", stored, ...copy, remuxed]);
        await rename(remuxed, stored);
      } else {
        const bytes = await readFile(stored);
        const mfhd = bytes.indexOf("mfhd");
        bytes.writeUInt32BE(bytes.readUInt32BE(mfhd + 8) + 1000, mfhd + 8);
        await writeFile(stored, bytes);
      }
      const before = await readFile(stored);
      const finished = jobEvents().length;

      await memory.deliver(job, "cpu");
      expect(jobEvents().slice(finished).at(-1)).toMatchObject({ type: "job.succeeded" });
      expect(await readFile(stored)).toEqual(before);
      expect(await readFile(playlist, "utf8")).toContain(`seg_00001.${ext}\n`);
      expect(await readFile(playlist, "utf8")).toContain("#EXT-X-ENDLIST");
    },
  );

  it(`a protected video's segment an earlier run uploaded and died before listing is compared in the clear: \
kept and listed, the run goes on`, async () => {
    const { job, memory, hlsDir, jobEvents } = await setUp();
    const protection = { method: "AES_128" as const, key: "00112233445566778899aabbccddeeff", keyRotationSegments: 2 };
    job.options.contentProtection = protection;
    const encryption = segmentEncryption(protection)!;
    await memory.deliver(job, "cpu");
    await rm(path.join(hlsDir, ENCODE_MANIFEST));
    const playlist = path.join(hlsDir, "240p", "index.m3u8");
    const lines = (await readFile(playlist, "utf8")).split("\n");
    await writeFile(playlist, `${lines.slice(0, lines.indexOf("seg_00001.ts") - 1).join("\n")}\n`);
    // Another encode's bytes of the same cut, encrypted as the worker stores them.
    const stored = path.join(hlsDir, "240p", "seg_00001.ts");
    const clear = `${stored}.clear.ts`;
    await writeFile(clear, encryption.decrypt("seg_00001.ts", await readFile(stored)));
    const remuxed = `${stored}.remuxed.ts`;
    const copy = ["-map", "0", "-c", "copy", "-copyts", "-muxdelay", "0", "-mpegts_transport_stream_id", "77"];
    await run("ffmpeg", ["-v", "error", "-i", clear, ...copy, remuxed]);
    await writeFile(stored, encryption.encrypt("seg_00001.ts", await readFile(remuxed)));
    await rm(clear);
    await rm(remuxed);
    const before = await readFile(stored);
    const finished = jobEvents().length;

    await memory.deliver(job, "cpu");
    // Without decrypting the stored bytes first, ffprobe reads no media there and the run fails.
    expect(jobEvents().slice(finished).at(-1)).toMatchObject({ type: "job.succeeded" });
    expect(await readFile(stored)).toEqual(before);
    expect(await readFile(playlist, "utf8")).toContain("seg_00001.ts\n");
  });

  it(`a CENC video's fMP4 segment an earlier run uploaded (its samples under other IVs) and died before listing is \
the same cut: kept and listed, the run goes on`, async () => {
    const { job, memory, hlsDir, jobEvents } = await setUp();
    const contentKey = "00112233445566778899aabbccddeeff";
    job.options.segmentFormat = "FMP4";
    job.options.contentProtection = { method: "CENC", key: contentKey, keyRotationSegments: null };
    await memory.deliver(job, "cpu");
    await rm(path.join(hlsDir, ENCODE_MANIFEST));
    const playlist = path.join(hlsDir, "240p", "index.m3u8");
    const lines = (await readFile(playlist, "utf8")).split("\n");
    await writeFile(playlist, `${lines.slice(0, lines.indexOf("seg_00001.m4s") - 1).join("\n")}\n`);
    // The same samples encrypted with other IVs: other bytes, the same cut.
    const stored = path.join(hlsDir, "240p", "seg_00001.m4s");
    const { key } = cencKey(Buffer.from(contentKey, "hex"));
    const track = { kind: "video" as const, codec: "avc" as const, nalLengthSize: 4 };
    const reencrypted = encryptFragments(decryptFragments(await readFile(stored), key), track, key, 99);
    expect(reencrypted.equals(await readFile(stored))).toBe(false);
    await writeFile(stored, reencrypted);
    const finished = jobEvents().length;

    await memory.deliver(job, "cpu");
    expect(jobEvents().slice(finished).at(-1)).toMatchObject({ type: "job.succeeded" });
    expect(await readFile(stored)).toEqual(reencrypted);
    expect(await readFile(playlist, "utf8")).toContain("seg_00001.m4s\n");
  });

  it(`a resumed run whose earlier run uploaded segments and died before listing them keeps them, the \
audio's too (its frames fall on the resumed encoder's own grid, up to one frame off)`, async () => {
    const { job, memory, hlsDir, jobEvents } = await setUp();
    await memory.deliver(job, "cpu");
    // As a run killed after uploading segments it had not listed yet: every rung's playlist lists
    // the first two, open; the encode's record stays without its completion, so the next run
    // resumes from the third.
    const manifest = path.join(hlsDir, ENCODE_MANIFEST);
    const { complete, ...started } = JSON.parse(await readFile(manifest, "utf8"));
    expect(complete).toBeDefined();
    await writeFile(manifest, `${JSON.stringify(started)}\n`);
    const rungs = (await readdir(hlsDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(rungs).toContain("audio");
    const stored = new Map<string, Buffer>();
    for (const rung of rungs) {
      const playlist = path.join(hlsDir, rung, "index.m3u8");
      const lines = (await readFile(playlist, "utf8")).split("\n");
      const third = lines.indexOf("seg_00002.ts");
      await writeFile(playlist, `${lines.slice(0, third - 1).join("\n")}\n`);
      stored.set(rung, await readFile(path.join(hlsDir, rung, "seg_00002.ts")));
    }
    const finished = jobEvents().length;

    await memory.deliver(job, "cpu");
    expect(jobEvents().slice(finished).at(-1)).toMatchObject({ type: "job.succeeded" });
    for (const rung of rungs) {
      expect(await readFile(path.join(hlsDir, rung, "seg_00002.ts")), rung).toEqual(stored.get(rung));
      expect(await readFile(path.join(hlsDir, rung, "index.m3u8"), "utf8"), rung).toContain("#EXT-X-ENDLIST");
    }
    // One frame of slack is not a segment's worth: the next cut of the audio is not the same cut.
    const audio = (n: number) => path.join(hlsDir, "audio", `seg_0000${n}.ts`);
    expect(await sameSegmentCut(audio(2), audio(3), "mpegts")).toBe(false);
    expect(await sameSegmentCut(audio(2), audio(2), "mpegts")).toBe(true);
  });

  it("a segment key another run wrote with other bytes fails the run and keeps its bytes", async () => {
    const { job, memory, hlsDir, jobEvents } = await setUp();
    const foreign = path.join(hlsDir, "240p", "seg_00001.ts");
    await mkdir(path.dirname(foreign), { recursive: true });
    await writeFile(foreign, "another run's bytes");
    await memory.deliver(job, "cpu");
    expect(jobEvents().at(-1)).toMatchObject({
      type: "job.failed",
      error: expect.stringMatching(/240p\/seg_00001\.ts was already published with other bytes/),
    });
    expect(await readFile(foreign, "utf8")).toBe("another run's bytes");
  });

  it(`a run's start carries the delivery as the transport counted it, and no delivery where the transport \
counted none`, async () => {
    const { job, memory, jobEvents } = await setUp();
    const delivery = { messageId: randomUUID(), count: 3 };
    const starts = () => jobEvents().filter((e) => e.type === "job.started");
    for (const counted of [delivery, undefined]) {
      const ended = jobEvents().length;
      const running = memory.deliver(job, "cpu", undefined, counted);
      await waitFor(() => starts().length > (counted ? 0 : 1), "the run to start");
      const start = starts().at(-1)!;
      memory.control({ v: 1, type: "job.cancel", jobId: job.jobId, attempt: 1, runId: start.runId });
      await running;
      if (counted) expect(start).toMatchObject({ delivery });
      else expect(start).not.toHaveProperty("delivery");
      // Only a start says which delivery it is.
      for (const e of jobEvents().slice(ended)) if (e.type !== "job.started") expect(e).not.toHaveProperty("delivery");
    }
  });

  it("a cancel naming a run stops that run only; the job is not canceled for later deliveries", async () => {
    const { job, memory, jobEvents } = await setUp();
    const first = memory.deliver(job, "cpu");
    await waitFor(() => jobEvents().some((e) => e.type === "job.started"), "the run to start");
    const runId = jobEvents()[0]!.runId!;
    memory.control({ v: 1, type: "job.cancel", jobId: job.jobId, attempt: 1, runId: randomUUID() });
    memory.control({ v: 1, type: "job.cancel", jobId: job.jobId, attempt: 1, runId });
    await first;
    expect(jobEvents().at(-1)).toMatchObject({ type: "job.canceled", runId });
    const ended = jobEvents().length;

    await memory.deliver(job, "cpu");
    const next = jobEvents().slice(ended);
    expect(next[0]).toMatchObject({ type: "job.started" });
    expect(next.at(-1)).toMatchObject({ type: "job.succeeded" });
  });
});

describe("a render or import job delivered again after it finished", () => {
  it("does no work: the stored source stays as it is and the delivery reports it with alreadyDone", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: true });
    let downloads = 0;
    const server = http.createServer((_req, res) => {
      downloads++;
      res.writeHead(200, { "content-type": "video/mp4" });
      createReadStream(clip).pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const memory = inMemoryTransport();
      const worker = await startTestWorker({
        transport: memory.transport,
        storage: createLocalWorkerStorage(dirs.dataDir),
        tmpDir: dirs.workDir,
        progressIntervalMs: 100,
      });
      workers.push(worker);
      const videoId = randomUUID();
      const job: ImportUrlJobMessage = {
        v: 2,
        type: "import_url",
        jobId: randomUUID(),
        attempt: 1,
        videoId,
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/clip.mp4`,
        maxBytes: 10_000_000,
        outputKey: `videos/${videoId}/source/import`,
        allowPrivateAddresses: true,
      };
      const jobEvents = () =>
        memory.events.filter((e): e is JobEvent => e.type !== "worker.heartbeat" && e.jobId === job.jobId);
      await memory.deliver(job, "cpu");
      const first = jobEvents().at(-1)!;
      expect(first).toMatchObject({ type: "source.ready", outputKey: job.outputKey });
      const stored = path.join(dirs.dataDir, job.outputKey);
      const before = {
        hash: createHash("sha256")
          .update(await readFile(stored))
          .digest("hex"),
        mtimeMs: (await stat(stored)).mtimeMs,
      };
      const ended = jobEvents().length;

      await memory.deliver(job, "cpu");
      const again = jobEvents().slice(ended);
      // `usage` measures each run (CPU and wall seconds), so the second run's is its own.
      const { seq: _s, runId: _r, at: _a, usage: _u, ...firstBody } = first as typeof first & { usage?: unknown };
      expect(again).toHaveLength(1);
      expect(again[0]).toMatchObject({ ...firstBody, alreadyDone: true });
      expect(again[0]!.runId).not.toBe(first.runId);
      expect(downloads).toBe(1);
      expect({
        hash: createHash("sha256")
          .update(await readFile(stored))
          .digest("hex"),
        mtimeMs: (await stat(stored)).mtimeMs,
      }).toEqual(before);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
