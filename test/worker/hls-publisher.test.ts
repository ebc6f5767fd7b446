import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Parser } from "m3u8-parser";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Rung } from "../../src/protocol/media-facts.ts";
import { hlsLayout } from "../../src/protocol/storage-layout.ts";
import { createHlsPublisher } from "../../render-worker/media/hls-publisher.ts";
import { masterPlaylist } from "../../src/shared/hls-playlists.ts";
import { planLadder } from "../../render-worker/media/ladder.ts";
import { assertValidKey, createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import type { UploadOptions, WorkerStorage } from "../../render-worker/storage/types.ts";
import { StorageUnavailableError } from "../../src/shared/storage-errors.ts";
import { canMountTmpfs, fillDisk, onSmallDisk } from "../support/tmpfs.ts";
import { fixturesDir } from "../support/media-fixtures.ts";
import { PROBE_640X360 } from "../support/job-events.ts";

const probe = PROBE_640X360;
const ladder: Rung[] = planLadder(probe, { maxHeight: 240 }); // 240p, 144p, audio

let root: string;
let workDir: string;
let dataDir: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(fixturesDir(), "publisher-"));
  workDir = path.join(root, "work");
  dataDir = path.join(root, "data");
  await mkdir(workDir);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes what ffmpeg would: segments first, then the playlist that lists them. */
/** One whole 188-byte TS packet that names its rung and number: the publisher refuses a segment cut short. */
function segmentBytes(name: string, i: number): Buffer {
  return Buffer.concat([Buffer.from(`${name} segment ${i}`), Buffer.alloc(188)]).subarray(0, 188);
}

/** An ISO BMFF box: size, type, payload. */
function box(type: string, payload: string | Buffer): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length);
  header.write(type, 4, "latin1");
  return Buffer.concat([header, body]);
}

/** A segment file as the segment muxer writes fMP4: the rung's init (ftyp + moov), its fragment, an mfra. */
function fragmentedSegmentBytes(name: string, i: number, init = `${name} init`): Buffer {
  return Buffer.concat([
    box("ftyp", "isom"),
    box("moov", init),
    box("moof", `${name} fragment ${i}`),
    box("mdat", `${name} samples ${i}`),
    box("mfra", "index"),
  ]);
}

/** As the segment muxer does: the list says the longest segment so far, and is renamed into place. */
async function writeRung(
  name: string,
  segmentCount: number,
  ended: boolean,
  durations?: number[],
  format: "TS" | "FMP4" = "TS",
): Promise<void> {
  const dir = path.join(workDir, name);
  await mkdir(dir, { recursive: true });
  const lengths = Array.from({ length: segmentCount }, (_, i) => durations?.[i] ?? 2);
  const lines = [
    "#EXTM3U",
    "#EXT-X-VERSION:3",
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-ALLOW-CACHE:YES",
    `#EXT-X-TARGETDURATION:${Math.ceil(Math.max(0, ...lengths))}`,
  ];
  for (let i = 0; i < segmentCount; i++) {
    const segment = `seg_${String(i).padStart(5, "0")}.${format === "FMP4" ? "m4s" : "ts"}`;
    await writeFile(
      path.join(dir, segment),
      format === "FMP4" ? fragmentedSegmentBytes(name, i) : segmentBytes(name, i),
    );
    lines.push(`#EXTINF:${lengths[i]!.toFixed(6)},`, segment);
  }
  if (ended) lines.push("#EXT-X-ENDLIST");
  await writeFile(path.join(dir, "index.m3u8.tmp"), `${lines.join("\n")}\n`);
  await rename(path.join(dir, "index.m3u8.tmp"), path.join(dir, "index.m3u8"));
}

interface Upload {
  key: string;
  opts: UploadOptions;
  /** For playlists: the segments the uploaded text lists, and its target duration. */
  lists?: string[];
  targetDuration?: number;
}

function recordingStorage(uploads: Upload[]): WorkerStorage {
  const local = createLocalWorkerStorage(dataDir);
  return {
    inputFor: (key) => local.inputFor(key),
    list: (prefix) => local.list(prefix),
    download: (key, file) => local.download(key, file),
    readText: (key) => local.readText(key),
    async upload(key, file, opts) {
      let lists: string[] | undefined;
      let targetDuration: number | undefined;
      if (key.endsWith("index.m3u8")) {
        const parser = new Parser();
        parser.push(await readFile(file, "utf8"));
        parser.end();
        lists = parser.manifest.segments.map((s) => s.uri);
        targetDuration = parser.manifest.targetDuration;
      }
      await local.upload(key, file, opts);
      uploads.push({ key, opts, lists, ...(targetDuration !== undefined ? { targetDuration } : {}) });
    },
    async uploadOnce(key, file, opts) {
      await local.uploadOnce(key, file, opts);
      uploads.push({ key, opts });
    },
  };
}

/** A publisher on `storage` polling every 10 ms, whose errors while ffmpeg runs go to `errors`. */
function publisherReporting(storage: WorkerStorage, errors: unknown[]) {
  return createHlsPublisher({
    storage,
    workDir,
    hls: hlsLayout("videos/v1"),
    ladder,
    probe,
    targetDuration: 2,
    intervalMs: 10,
    onError: (e) => errors.push(e),
  });
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(10);
  if (!condition()) throw new Error(`Timed out waiting for ${what}`);
}

describe("createHlsPublisher", () => {
  it("publishes segments before the playlists that list them, and the master once every rung can play", async () => {
    const uploads: Upload[] = [];
    const playable: string[] = [];
    const publisher = createHlsPublisher({
      storage: recordingStorage(uploads),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      intervalMs: 20,
      onPlayable: async (key) => {
        playable.push(key);
      },
    });
    await writeRung("240p", 1, false);
    await writeRung("144p", 2, false);
    publisher.start();
    await waitFor(() => uploads.some((u) => u.key === "videos/v1/hls/144p/index.m3u8"), "the 144p playlist");
    await sleep(60);
    // The audio rung has nothing yet: no master, not playable.
    expect(uploads.map((u) => u.key)).not.toContain("videos/v1/hls/master.m3u8");
    expect(playable).toEqual([]);
    expect(publisher.variants()).toEqual([
      {
        name: "240p",
        playlistKey: "videos/v1/hls/240p/index.m3u8",
        progress: 2 / 6,
        segmentCount: 1,
        publishedSeconds: 2,
      },
      {
        name: "144p",
        playlistKey: "videos/v1/hls/144p/index.m3u8",
        progress: 4 / 6,
        segmentCount: 2,
        publishedSeconds: 4,
      },
      {
        name: "audio",
        playlistKey: "videos/v1/hls/audio/index.m3u8",
        progress: 0,
        segmentCount: 0,
        publishedSeconds: 0,
      },
    ]);

    await writeRung("audio", 1, false);
    await waitFor(() => playable.length > 0, "playable");
    expect(playable).toEqual(["videos/v1/hls/master.m3u8"]);

    await writeRung("240p", 3, true);
    await writeRung("144p", 3, true);
    await writeRung("audio", 3, true);
    const variants = await publisher.finish();
    expect(variants.map((v) => [v.name, v.segmentCount, v.progress])).toEqual([
      ["240p", 3, 1],
      ["144p", 3, 1],
      ["audio", 3, 1],
    ]);
    expect(playable).toHaveLength(1);

    for (const [i, upload] of uploads.entries()) {
      if (!upload.lists) continue;
      const dir = upload.key.slice(0, -"index.m3u8".length);
      const before = new Set(uploads.slice(0, i).map((u) => u.key));
      for (const segment of upload.lists)
        expect(before, `${upload.key} lists ${segment}`).toContain(`${dir}${segment}`);
    }
    const master = uploads.findIndex((u) => u.key.endsWith("master.m3u8"));
    for (const rung of ladder) {
      expect(
        uploads.slice(0, master).some((u) => u.key === `videos/v1/hls/${rung.name}/index.m3u8` && u.lists!.length > 0),
      ).toBe(true);
    }

    const playlistUploads = uploads.filter((u) => u.lists);
    const finals = playlistUploads.slice(-3);
    expect(finals.map((u) => u.opts.cacheControl)).toEqual(Array(3).fill("public, max-age=3600"));
    // Growing: a browser keeps none of it, a shared cache half a target duration (growingPlaylistCacheControl).
    expect(playlistUploads[0]!.opts).toEqual({
      contentType: "application/vnd.apple.mpegurl",
      cacheControl: "public, max-age=0, s-maxage=1",
    });
    expect(uploads.find((u) => u.key.endsWith(".ts"))?.opts).toEqual({
      contentType: "video/mp2t",
      cacheControl: "public, max-age=31536000, immutable",
    });
    // Every segment exactly once.
    const segmentKeys = uploads.filter((u) => u.key.endsWith(".ts")).map((u) => u.key);
    expect(segmentKeys).toHaveLength(9);
    expect(new Set(segmentKeys).size).toBe(9);
  });

  it("a rung whose files storage refuses fails alone: the others finish and the master leaves it out", async () => {
    const uploads: Upload[] = [];
    const recording = recordingStorage(uploads);
    const refusing144p: WorkerStorage = {
      ...recording,
      upload: async (key, file, opts) => {
        if (key.includes("/144p/")) throw new Error("403 Forbidden");
        await recording.upload(key, file, opts);
      },
      uploadOnce: async (key, file, opts) => {
        if (key.includes("/144p/")) throw new Error("403 Forbidden");
        await recording.uploadOnce(key, file, opts);
      },
    };
    const playable: string[] = [];
    const errors: unknown[] = [];
    const publisher = createHlsPublisher({
      storage: refusing144p,
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      intervalMs: 20,
      onPlayable: async (key) => void playable.push(key),
      onError: (e) => errors.push(e),
    });
    for (const rung of ladder) await writeRung(rung.name, 1, false);
    publisher.start();
    await waitFor(() => playable.length > 0, "playable without the failed rung");
    for (const rung of ladder) await writeRung(rung.name, 3, true);
    const variants = await publisher.finish();

    expect(errors).toEqual([]);
    expect(variants.map((v) => [v.name, v.segmentCount, v.error])).toEqual([
      ["240p", 3, undefined],
      ["144p", 0, "Publishing the 144p rung failed: 403 Forbidden"],
      ["audio", 3, undefined],
    ]);
    const master = await readFile(path.join(dataDir, "videos/v1/hls/master.m3u8"), "utf8");
    expect(master).toContain("240p/index.m3u8");
    expect(master).toContain("audio/index.m3u8");
    expect(master).not.toContain("144p");
  });

  it.skipIf(!canMountTmpfs)(
    "a full storage disk (a real ENOSPC on a 256 KiB tmpfs; needs root) fails the publication, retryable, " +
      "and no rung fails alone",
    () =>
      onSmallDisk(dataDir, 256 * 1024, async () => {
        const errors: unknown[] = [];
        const publisher = createHlsPublisher({
          storage: createLocalWorkerStorage(dataDir),
          workDir,
          hls: hlsLayout("videos/v1"),
          ladder,
          probe,
          targetDuration: 2,
          intervalMs: 20,
          onError: (e) => errors.push(e),
        });
        for (const rung of ladder) await writeRung(rung.name, 2, false);
        // One rung's segments alone overflow the disk.
        for (const segment of ["seg_00000.ts", "seg_00001.ts"])
          await writeFile(path.join(workDir, "144p", segment), Buffer.alloc(188 * 1100, 1));
        publisher.start();
        await waitFor(() => errors.length > 0, "the storage error");
        expect(errors[0]).toBeInstanceOf(StorageUnavailableError);
        expect((errors[0] as StorageUnavailableError).full).toBe(true);
        expect((errors[0] as StorageUnavailableError).retryable).toBe(true);
        expect((errors[0] as Error).message).toMatch(/^Storage is full: ENOSPC/);
        expect(publisher.variants().filter((v) => v.error !== undefined)).toEqual([]);
        await expect(publisher.finish()).rejects.toThrow(/Storage is full/);
      }),
  );

  it(`a storage quota or outage from a cloud store fails the publication, not the rung (S3 and GCS \
error shapes)`, async () => {
    const quotaErrors: unknown[] = [
      Object.assign(new Error("The bucket's quota is exceeded"), {
        name: "QuotaExceeded",
        $metadata: { httpStatusCode: 403 },
      }),
      Object.assign(new Error("Storage backend has reached its minimum free drive threshold"), {
        name: "XMinioStorageFull",
        $metadata: { httpStatusCode: 507 },
      }),
      Object.assign(new Error("The project exceeded its quota"), { code: 403, errors: [{ reason: "quotaExceeded" }] }),
      Object.assign(new Error("Backend Error"), { code: 503 }),
    ];
    for (const refusal of quotaErrors) {
      const storage: WorkerStorage = { ...recordingStorage([]), upload: async () => Promise.reject(refusal) };
      const options = { storage, workDir, hls: hlsLayout("videos/v1"), ladder, probe, targetDuration: 2 };
      const publisher = createHlsPublisher(options);
      for (const rung of ladder) await writeRung(rung.name, 1, true);
      const failure = await publisher.finish().then(
        () => null,
        (err: unknown) => err,
      );
      expect(failure, (refusal as Error).name).toBeInstanceOf(StorageUnavailableError);
      expect(publisher.variants().filter((v) => v.error !== undefined)).toEqual([]);
    }
  });

  it(`a segment that is not whole TS packets (ffmpeg's write failed) fails the publication as a storage failure, \
not the rung`, async () => {
    const publisher = createHlsPublisher({
      storage: recordingStorage([]),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
    });
    for (const rung of ladder) await writeRung(rung.name, 2, true);
    await writeFile(path.join(workDir, "240p", "seg_00001.ts"), Buffer.alloc(32768, 1));
    const failure = await publisher.finish().then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(StorageUnavailableError);
    expect((failure as Error).message).toBe(
      "Storage is unavailable: The segment 240p/seg_00001.ts was cut short at 32768 bytes in the work dir",
    );
    expect(publisher.variants().filter((v) => v.error !== undefined)).toEqual([]);
  });

  it.skipIf(!canMountTmpfs)(
    "a segment cut short by a real ENOSPC is a full disk although 2 MiB were freed before the publisher looked " +
      "(an 8 MiB tmpfs as the work dir; needs root)",
    () =>
      onSmallDisk(workDir, 8 * 1024 * 1024, async () => {
        const publisher = createHlsPublisher({
          storage: recordingStorage([]),
          workDir,
          hls: hlsLayout("videos/v1"),
          ladder,
          probe,
          targetDuration: 2,
        });
        for (const rung of ladder) await writeRung(rung.name, 2, true);
        // Another job's files, gone between ffmpeg's failed write and the publisher's look.
        const otherJob = path.join(workDir, "other-job");
        await writeFile(otherJob, Buffer.alloc(2 * 1024 * 1024, 1));
        await fillDisk(workDir);
        // ffmpeg writing its next segment on the full disk: the write fails part way.
        const cut = await writeFile(path.join(workDir, "240p", "seg_00001.ts"), Buffer.alloc(188 * 2000, 1)).then(
          () => null,
          (err: NodeJS.ErrnoException) => err.code,
        );
        expect(cut).toBe("ENOSPC");
        await rm(otherJob);
        const failure = await publisher.finish().then(
          () => null,
          (err: unknown) => err,
        );
        expect(failure).toBeInstanceOf(StorageUnavailableError);
        expect((failure as StorageUnavailableError).full).toBe(true);
        expect((failure as Error).message).toMatch(
          /^Storage is full: ENOSPC: no space left on device in the worker's work dir \(The segment 240p\/seg_00001\.ts was cut short at \d+ bytes in the work dir\)$/,
        );
      }),
  );

  it("fMP4: publishes each rung's init once, before its playlist, and every segment without it", async () => {
    const uploads: Upload[] = [];
    const publisher = createHlsPublisher({
      storage: recordingStorage(uploads),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      segmentFormat: "FMP4",
      targetDuration: 2,
    });
    for (const rung of ladder) await writeRung(rung.name, 3, true, undefined, "FMP4");
    await publisher.finish();
    for (const rung of ladder) {
      const prefix = `videos/v1/hls/${rung.name}/`;
      const keys = uploads.map((u) => u.key).filter((k) => k.startsWith(prefix));
      expect(keys.filter((k) => k.endsWith("init.mp4"))).toEqual([`${prefix}init.mp4`]);
      expect(keys.indexOf(`${prefix}init.mp4`)).toBeLessThan(keys.indexOf(`${prefix}index.m3u8`));
      const init = uploads.find((u) => u.key === `${prefix}init.mp4`)!;
      expect(init.opts.contentType).toBe("video/mp4");
      expect(await readFile(path.join(dataDir, prefix, "init.mp4"))).toEqual(
        Buffer.concat([box("ftyp", "isom"), box("moov", `${rung.name} init`)]),
      );
      for (let i = 0; i < 3; i++) {
        const uri = `seg_0000${i}.m4s`;
        expect(uploads.find((u) => u.key === `${prefix}${uri}`)!.opts.contentType).toBe("video/iso.segment");
        expect(await readFile(path.join(dataDir, prefix, uri))).toEqual(
          Buffer.concat([box("moof", `${rung.name} fragment ${i}`), box("mdat", `${rung.name} samples ${i}`)]),
        );
      }
      const playlist = await readFile(path.join(dataDir, prefix, "index.m3u8"), "utf8");
      expect(playlist).toContain("#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n");
      expect(playlist).toContain('#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:');
    }
    // The split copies are not left in the work dir.
    expect((await readdir(path.join(workDir, ".publish"))).filter((f) => f.endsWith(".m4s"))).toEqual([]);
  });

  it("fMP4: a segment cut short, or with another init than its rung's first, fails the publication", async () => {
    const failureOf = async (write: () => Promise<void>) => {
      await rm(workDir, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
      await mkdir(workDir);
      const publisher = createHlsPublisher({
        storage: recordingStorage([]),
        workDir,
        hls: hlsLayout("videos/v1"),
        ladder,
        probe,
        segmentFormat: "FMP4",
        targetDuration: 2,
      });
      for (const rung of ladder) await writeRung(rung.name, 2, true, undefined, "FMP4");
      await write();
      return publisher.finish().then(
        () => null,
        (err: unknown) => err as Error,
      );
    };
    const segment = path.join(workDir, "240p", "seg_00001.m4s");
    const cut = await failureOf(async () => {
      const whole = await readFile(segment);
      await writeFile(segment, whole.subarray(0, whole.length - 3));
    });
    expect(cut).toBeInstanceOf(StorageUnavailableError);
    expect(cut!.message).toMatch(/^Storage is unavailable: The segment 240p\/seg_00001\.m4s was cut short \(/);
    const other = await failureOf(() => writeFile(segment, fragmentedSegmentBytes("240p", 1, "another codec")));
    expect(other!.message).toBe(
      "The segment 240p/seg_00001.m4s has another init (codec configuration) than the rung's first",
    );
  });

  it(`a run behind a published playlist never shrinks it nor drops its end, and keeps the \
segments it lists`, async () => {
    const finished = createHlsPublisher({
      storage: recordingStorage([]),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      intervalMs: 20,
    });
    for (const rung of ladder) await writeRung(rung.name, 3, true);
    await finished.finish();
    const published = async (name: string) => {
      const parser = new Parser();
      parser.push(await readFile(path.join(dataDir, "videos/v1/hls", name, "index.m3u8"), "utf8"));
      parser.end();
      return { segments: parser.manifest.segments.length, endList: parser.manifest.endList === true };
    };

    // A stale run of the job starts over: its first segment has other bytes than the published one.
    await rm(workDir, { recursive: true });
    await mkdir(workDir);
    for (const rung of ladder) await writeRung(rung.name, 1, false);
    await writeFile(path.join(workDir, "240p", "seg_00000.ts"), "other bytes");
    const uploads: Upload[] = [];
    const errors: unknown[] = [];
    const stale = createHlsPublisher({
      storage: recordingStorage(uploads),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      intervalMs: 20,
      onError: (e) => errors.push(e),
    });
    stale.start();
    await waitFor(() => stale.variants().every((v) => v.segmentCount === 1), "a pass of the stale run");
    await sleep(60);
    expect(errors).toEqual([]);
    expect(uploads.filter((u) => u.key.endsWith(".m3u8"))).toEqual([]);
    for (const rung of ladder) expect(await published(rung.name)).toEqual({ segments: 3, endList: true });
    expect(await readFile(path.join(dataDir, "videos/v1/hls/240p/seg_00000.ts"))).toEqual(segmentBytes("240p", 0));

    // Finishing with fewer segments than are published fails the run and publishes nothing.
    for (const rung of ladder) await writeRung(rung.name, 2, true);
    await writeFile(path.join(workDir, "240p", "seg_00000.ts"), "other bytes");
    await expect(stale.finish()).rejects.toThrow(/lists fewer segments than the published one/);
    for (const rung of ladder) expect(await published(rung.name)).toEqual({ segments: 3, endList: true });
    expect(await readFile(path.join(dataDir, "videos/v1/hls/240p/seg_00000.ts"))).toEqual(segmentBytes("240p", 0));
  });

  it("refuses to finish while a playlist lacks #EXT-X-ENDLIST", async () => {
    const publisher = createHlsPublisher({
      storage: recordingStorage([]),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      intervalMs: 20,
    });
    for (const rung of ladder) await writeRung(rung.name, 1, rung.name !== "144p");
    await expect(publisher.finish()).rejects.toThrow(/144p playlist has no #EXT-X-ENDLIST/);
  });

  it("reports as published only what storage's playlists list: segments uploaded before a playlist write failed are not", async () => {
    const uploads: Upload[] = [];
    let playlistsFail = false;
    const recording = recordingStorage(uploads);
    const storage: WorkerStorage = {
      ...recording,
      upload: async (key, file, opts) => {
        if (playlistsFail) throw new StorageUnavailableError(new Error("EROFS: read-only file system"), false);
        await recording.upload(key, file, opts);
      },
    };
    const errors: unknown[] = [];
    const publisher = publisherReporting(storage, errors);
    const listed = (name: string) => publisher.segments().find((r) => r.name === name)!.segments.length;
    publisher.start();
    for (const rung of ladder) await writeRung(rung.name, 1, false);
    await expect.poll(() => ladder.map((r) => listed(r.name)), { timeout: 10_000 }).toEqual(ladder.map(() => 1));
    // Storage turns read-only between a segment's upload and its playlist's (as `uploadOnce` goes on here).
    playlistsFail = true;
    for (const rung of ladder) await writeRung(rung.name, 3, false);
    await expect.poll(() => errors.length, { timeout: 10_000 }).toBeGreaterThan(0);
    // The rungs whose later segments went up before their playlist was refused (the first refusal stops the rest).
    const uploadedLater = ladder.filter((r) => uploads.some((u) => u.key.endsWith(`${r.name}/seg_00002.ts`)));
    expect(uploadedLater.length).toBeGreaterThan(0);
    // A run taking over continues after storage's playlist (2 s): the feed must keep what follows it.
    for (const rung of uploadedLater) expect(listed(rung.name), rung.name).toBe(1);
    await expect(publisher.finish()).rejects.toThrow();
  });

  it("stops and reports an upload failure while ffmpeg runs once no video rung can be published", async () => {
    const errors: unknown[] = [];
    const failing: WorkerStorage = {
      inputFor: async (key) => key,
      readText: async () => null,
      upload: async () => {
        throw new Error("bucket unavailable");
      },
      uploadOnce: async () => {
        throw new Error("bucket unavailable");
      },
      list: async () => [],
      download: async () => {},
    };
    const publisher = publisherReporting(failing, errors);
    await writeRung("240p", 1, false);
    await writeRung("144p", 1, false);
    publisher.start();
    await waitFor(() => errors.length > 0, "the error");
    await sleep(50);
    expect(errors).toHaveLength(1);
    await expect(publisher.finish()).rejects.toThrow(/Publishing the (240p|144p) rung failed: bucket unavailable/);
  });
});

describe("createHlsPublisher reacts to ffmpeg's writes", () => {
  it("publishes a rung as soon as its list is renamed into place, not at the next timer tick", async () => {
    const uploads: Upload[] = [];
    const playable: number[] = [];
    const publisher = createHlsPublisher({
      storage: recordingStorage(uploads),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      // Longer than the test: only a file event can publish in time.
      intervalMs: 60_000,
      onPlayable: async () => {
        playable.push(Date.now());
      },
    });
    publisher.start();
    await sleep(100);
    const written = Date.now();
    for (const rung of ladder) await writeRung(rung.name, 1, false, [1]);
    await waitFor(() => playable.length > 0, "playable from the file events");
    expect(playable[0]! - written).toBeLessThan(1500);
    await publisher.stop();
  });

  it("publishes one target duration in every version, whatever ffmpeg's list says", async () => {
    const uploads: Upload[] = [];
    const publisher = createHlsPublisher({
      storage: recordingStorage(uploads),
      workDir,
      hls: hlsLayout("videos/v1"),
      ladder,
      probe,
      targetDuration: 2,
      intervalMs: 20,
    });
    publisher.start();
    // The first list has only the 1 s first segment: ffmpeg's says TARGETDURATION:1.
    for (const rung of ladder) await writeRung(rung.name, 1, false, [1]);
    await waitFor(() => uploads.some((u) => u.key === "videos/v1/hls/master.m3u8"), "the master");
    for (const rung of ladder) await writeRung(rung.name, 2, false, [1, 2]);
    await waitFor(
      () => uploads.filter((u) => u.key.endsWith("/index.m3u8") && u.lists?.length === 2).length === ladder.length,
      "the second versions",
    );
    for (const rung of ladder) await writeRung(rung.name, 4, true, [1, 2, 2.02, 1]);
    await publisher.finish();
    const versions = uploads.filter((u) => u.key.endsWith("/index.m3u8"));
    expect(versions.length).toBeGreaterThanOrEqual(3 * ladder.length);
    expect(new Set(versions.map((u) => u.targetDuration))).toEqual(new Set([2]));
    const published = await readFile(path.join(dataDir, "videos/v1/hls/audio/index.m3u8"), "utf8");
    expect(published).toMatch(/#EXTINF:1\.000000,\nseg_00000\.ts\n#EXTINF:2\.000000,\nseg_00001\.ts/);
    expect(published).toContain("#EXT-X-PLAYLIST-TYPE:EVENT");
    expect(published.trim().endsWith("#EXT-X-ENDLIST")).toBe(true);
  });
});

describe("masterPlaylist", () => {
  it("lists video rungs with the audio group when there is audio", () => {
    expect(masterPlaylist(ladder, probe)).toBe(
      [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,' +
          'CHANNELS="2",URI="audio/index.m3u8"',
        `#EXT-X-STREAM-INF:BANDWIDTH=${ladder[0]!.bandwidth},RESOLUTION=426x240,FRAME-RATE=25.000,` +
          `CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"`,
        "240p/index.m3u8",
        `#EXT-X-STREAM-INF:BANDWIDTH=${ladder[1]!.bandwidth},RESOLUTION=256x144,FRAME-RATE=25.000,` +
          `CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"`,
        "144p/index.m3u8",
        "",
      ].join("\n"),
    );
  });

  it("has no audio group for a silent source", () => {
    const silent = { ...probe, hasAudio: false, audioCodec: null };
    const text = masterPlaylist(planLadder(silent, { maxHeight: 240 }), silent);
    expect(text).not.toMatch(/EXT-X-MEDIA|AUDIO=|mp4a/);
    expect(text).toMatch(/CODECS="avc1\.64001e"\n240p\/index\.m3u8/);
  });
});

describe("createLocalWorkerStorage", () => {
  it("uploads by copy and rename, leaving no temp file", async () => {
    const storage = createLocalWorkerStorage(dataDir);
    const file = path.join(root, "upload.bin");
    await writeFile(file, "payload");
    await storage.upload("videos/v1/hls/720p/seg_00000.ts", file, { contentType: "video/mp2t", cacheControl: "x" });
    await storage.upload("videos/v1/hls/720p/seg_00000.ts", file, { contentType: "video/mp2t", cacheControl: "x" });
    expect(await readdir(path.join(dataDir, "videos/v1/hls/720p"))).toEqual(["seg_00000.ts"]);
    expect(await storage.inputFor("videos/v1/hls/720p/seg_00000.ts")).toBe(
      path.join(dataDir, "videos/v1/hls/720p/seg_00000.ts"),
    );
    await expect(storage.inputFor("videos/v1/missing")).rejects.toThrow(/does not exist/);
  });

  it("rejects keys that escape the root", () => {
    for (const key of [
      "../etc/passwd",
      "videos/../../x",
      "/etc/passwd",
      "videos//x",
      "videos/./x",
      "",
      "a\\b",
      "C:/x",
    ]) {
      expect(() => assertValidKey(key), key).toThrow(/Invalid storage key/);
    }
    expect(() => assertValidKey("videos/v1/hls/master.m3u8")).not.toThrow();
  });
});
