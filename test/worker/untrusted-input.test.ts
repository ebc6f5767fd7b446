import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { chmod, copyFile, mkdir, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobEventBody } from "../../src/protocol/job-events.ts";
import type { RenderCompositionJobMessage } from "../../src/protocol/source-messages.ts";
import type { TranscodeJobMessage } from "../../src/protocol/transcode-messages.ts";
import { storeSource } from "../../render-worker/handlers/rendered-source.ts";
import type { JobContext } from "../../render-worker/handlers/types.ts";
import { MediaError } from "../../render-worker/media/errors.ts";
import { createLocalWorkerStorage } from "../../render-worker/storage/local.ts";
import { contractCheckedEmit } from "../support/job-events.ts";
import { fixturesDir, jobDirsPerTest, makeClip, runFfmpeg } from "../support/media-fixtures.ts";

const JOB_ID = "3f6c2a1e-8d4b-4c7a-9e5f-1a2b3c4d5e6f";
const VICTIM = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const ATTACKER = "9f8e7d6c-5b4a-4392-8a1b-0c9d8e7f6a5b";
const VICTIM_SEGMENT = `videos/${VICTIM}/hls/240p/seg_00000.ts`;

const dirs = jobDirsPerTest("untrusted");

function context(events: JobEventBody[]): JobContext {
  return {
    storage: createLocalWorkerStorage(dirs.dataDir),
    emit: contractCheckedEmit(JOB_ID, events),
    signal: new AbortController().signal,
    workDir: dirs.workDir,
    progressIntervalMs: 200,
  };
}

/**
 * The victim's published segment, with its access time set before its modification time: the
 * first read of the file afterwards moves its access time to now (relatime), so a read shows.
 */
async function publishVictimSegment(): Promise<{ file: string; sha256: string }> {
  const file = path.join(dirs.dataDir, VICTIM_SEGMENT);
  await mkdir(path.dirname(file), { recursive: true });
  const clip = await makeClip({ width: 320, height: 240, seconds: 2, audio: false });
  await runFfmpeg(["-i", clip, "-c", "copy", "-f", "mpegts", file]);
  const sha256 = createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
  await utimes(file, new Date(1_000_000), new Date(2_000_000));
  return { file, sha256 };
}

/** Whether this file system records reads in atime at all: the test's proof of "unread" depends on it. */
async function expectReadsShowInAtime(): Promise<void> {
  const control = path.join(dirs.root, "control");
  await writeFile(control, "x");
  await utimes(control, new Date(1_000_000), new Date(2_000_000));
  await readFile(control);
  expect((await stat(control)).atimeMs, "reads update atime here (not mounted noatime)").toBeGreaterThan(2_000_000);
}

async function expectUnread(victim: { file: string; sha256: string }): Promise<void> {
  const after = await stat(victim.file);
  expect(after.atimeMs, "the victim's segment was never read").toBe(1_000_000);
  expect(
    createHash("sha256")
      .update(await readFile(victim.file))
      .digest("hex"),
  ).toBe(victim.sha256);
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

async function rejection(promise: Promise<unknown>): Promise<MediaError> {
  const error = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  expect(error, "refused").toBeInstanceOf(MediaError);
  expect((error as MediaError).retryable).toBe(false);
  return error as MediaError;
}

const playlist = (uris: string[]) =>
  `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n` +
  `${uris.map((u) => `#EXTINF:2.0,\n${u}\n`).join("")}#EXT-X-ENDLIST\n`;
const HLS_REFUSED = /^The file is an HLS playlist, not a video: .*playlists? .*other files/;
const CONCAT_REFUSED = /^The file is an ffmpeg concat list, not a video: .*other files/;

/** Each hostile source, as the attacker's upload: its name in storage and its bytes. */
const ATTACKS: Array<[string, string, (victimFile: string) => string, RegExp]> = [
  [
    "an HLS playlist pointing into another video's directory by relative path",
    "upload",
    () => playlist([`../../${VICTIM}/hls/240p/seg_00000.ts`]),
    HLS_REFUSED,
  ],
  [
    "an HLS playlist pointing at another video's segment by absolute path",
    "upload",
    (victim) => playlist([victim]),
    HLS_REFUSED,
  ],
  ["an HLS playlist with a file: URL", "upload", (victim) => playlist([`file:${victim}`]), HLS_REFUSED],
  ["an HLS playlist with a concat: URL", "upload", (victim) => playlist([`concat:${victim}|${victim}`]), HLS_REFUSED],
  ["an .m3u8 renamed .mp4", "clip.mp4", () => playlist([`../../${VICTIM}/hls/240p/seg_00000.ts`]), HLS_REFUSED],
  [
    "an ffconcat list",
    "upload",
    () => `ffconcat version 1.0\nfile ../../${VICTIM}/hls/240p/seg_00000.ts\n`,
    CONCAT_REFUSED,
  ],
  [
    "an ffconcat list with an absolute path",
    "upload",
    (victim) => `ffconcat version 1.0\nfile '${victim}'\n`,
    CONCAT_REFUSED,
  ],
];

describe("a source that references other files is refused before anything reads them", () => {
  it.each(ATTACKS)("transcode: %s", async (_title, name, contents, reason) => {
    await expectReadsShowInAtime();
    const victim = await publishVictimSegment();
    const sourceKey = `videos/${ATTACKER}/source/${name}`;
    await mkdir(path.dirname(path.join(dirs.dataDir, sourceKey)), { recursive: true });
    await writeFile(path.join(dirs.dataDir, sourceKey), contents(victim.file));
    const job: TranscodeJobMessage = {
      v: 2,
      type: "transcode",
      jobId: JOB_ID,
      attempt: 1,
      videoId: ATTACKER,
      sourceKey,
      outputPrefix: `videos/${ATTACKER}`,
      options: { segmentSeconds: 2 },
    };
    const events: JobEventBody[] = [];
    const { transcode } = await import("../../render-worker/handlers/transcode.ts");

    const error = await rejection(transcode(job, context(events)));
    expect(error.message).toMatch(reason);
    expect(events).toEqual([]);
    expect(await filesUnder(path.join(dirs.dataDir, `videos/${ATTACKER}`))).toEqual([
      path.join(dirs.dataDir, sourceKey),
    ]);
    expect(await filesUnder(dirs.workDir)).toEqual([]);
    await expectUnread(victim);
  });

  it("a scene's or an import's output (storeSource) that is a playlist never reaches storage", async () => {
    await expectReadsShowInAtime();
    const victim = await publishVictimSegment();
    const output = path.join(dirs.workDir, "movie.mp4");
    await writeFile(output, playlist([victim.file]));
    const error = await rejection(storeSource(context([]), output, `videos/${ATTACKER}/source/render.mp4`));
    expect(error.message).toMatch(HLS_REFUSED);
    expect(await filesUnder(path.join(dirs.dataDir, `videos/${ATTACKER}`))).toEqual([]);
    await expectUnread(victim);
  });

  it.each(["backgroundKey", "timerKey", "correctSoundKey"] as const)(
    "a composition whose %s asset is a playlist is refused, naming the asset",
    async (field) => {
      await expectReadsShowInAtime();
      const victim = await publishVictimSegment();
      const assetKey = "tenants/t1/assets/clip.mp4";
      await mkdir(path.join(dirs.dataDir, "tenants/t1/assets"), { recursive: true });
      await writeFile(path.join(dirs.dataDir, assetKey), playlist([victim.file]));
      const { renderComposition } = await import("../../render-worker/handlers/render-composition.ts");
      const job = {
        v: 2,
        type: "render_composition",
        jobId: JOB_ID,
        attempt: 1,
        videoId: ATTACKER,
        template: "QUIZ",
        questions: [{ question: "Whose video?", choices: ["mine", "yours"], answerIndex: 1 }],
        secondsPerQuestion: 2,
        narration: null,
        width: 320,
        height: 180,
        outputKey: `videos/${ATTACKER}/source/composition.mp4`,
        assets: { [field]: assetKey },
      } as RenderCompositionJobMessage;
      const error = await rejection(renderComposition(job, context([])));
      expect(error.message).toMatch(
        new RegExp(
          `^The composition's ${field} asset clip\\.mp4 cannot be used: The file is an HLS playlist, not a video`,
        ),
      );
      expect(await filesUnder(path.join(dirs.dataDir, `videos/${ATTACKER}`))).toEqual([]);
      await expectUnread(victim);
    },
  );

  it("a playlist read from a signed URL (GCS) cannot make ffmpeg request another address", async () => {
    const internalRequests: string[] = [];
    const internal = createServer((req, res) => {
      internalRequests.push(req.url ?? "");
      res.end("secret");
    });
    await new Promise<void>((resolve) => internal.listen(0, "127.0.0.1", resolve));
    const internalUrl = `http://127.0.0.1:${(internal.address() as AddressInfo).port}/computeMetadata/v1/seg.ts`;
    const bucket = createServer((_req, res) => res.end(playlist([internalUrl])));
    await new Promise<void>((resolve) => bucket.listen(0, "127.0.0.1", resolve));
    try {
      const { probeSource } = await import("../../render-worker/media/probe.ts");
      const bucketPort = (bucket.address() as AddressInfo).port;
      const signedUrl = `http://127.0.0.1:${bucketPort}/bucket/videos/${ATTACKER}/source/upload?X-Goog-Signature=abc`;
      const error = await rejection(probeSource(signedUrl));
      expect(internalRequests).toEqual([]);
      expect(error.message).toMatch(HLS_REFUSED);
    } finally {
      internal.close();
      bucket.close();
    }
  });

  it("a source location that is not a plain path or an http(s) URL is refused before ffprobe runs", async () => {
    const { probeSource } = await import("../../render-worker/media/probe.ts");
    const clip = await makeClip({ width: 64, height: 64, seconds: 1, audio: false });
    for (const location of [
      `concat:${clip}|${clip}`,
      `subfile,,start,0,end,0,,:${clip}`,
      `data:video/mp4;base64,AAAA`,
    ]) {
      await expect(probeSource(location)).rejects.toThrow(
        /^The worker reads sources only from a file path or an http\(s\) URL/,
      );
    }
  });

  it("sound sources still pass: mp4, mkv, webm, mpegts, and a path containing a colon", async () => {
    const { probeSource } = await import("../../render-worker/media/probe.ts");
    const clip = await makeClip({ width: 64, height: 64, seconds: 1, audio: true });
    const formats: Array<[string, string[], string]> = [
      ["a.mkv", ["-c", "copy"], "matroska"],
      ["a.webm", ["-c:v", "libvpx", "-c:a", "libopus", "-deadline", "realtime"], "matroska"],
      ["a.ts", ["-c", "copy", "-f", "mpegts"], "mpegts"],
      ["weird:name.mp4", ["-c", "copy"], "mov"],
    ];
    for (const [name, args, container] of formats) {
      const file = path.join(dirs.root, name);
      await runFfmpeg(["-i", clip, ...args, file]);
      const probed = await probeSource(file);
      expect(probed.input.format, name).toBe(container);
      expect(probed.probe).toMatchObject({ width: 64, height: 64, hasAudio: true });
    }
  });
});

describe("the processes that parse tenant input carry no secrets", () => {
  const SECRETS = {
    JWT_SECRET: "jwt-secret-value-7f3a",
    BOOTSTRAP_API_KEY: "vg_bootstrap_key_9c1e",
    DATABASE_URL: "postgres://user:pw-5d2b@127.0.0.1/db",
    AWS_SECRET_ACCESS_KEY: "aws-secret-4e8f",
  };

  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  /** A wrapper that writes its environment to `dumpFile` and then runs the real program. */
  async function revealingWrapper(program: string): Promise<{ wrapper: string; dumps: () => Promise<string[]> }> {
    const dumpDir = path.join(fixturesDir(), `env-${program}-${process.hrtime.bigint()}`);
    await mkdir(dumpDir, { recursive: true });
    const wrapper = path.join(dumpDir, program);
    await writeFile(wrapper, `#!/bin/sh\nenv > "${dumpDir}/env-$$"\nexec ${program} "$@"\n`);
    await chmod(wrapper, 0o755);
    return {
      wrapper,
      dumps: async () =>
        Promise.all(
          (await readdir(dumpDir))
            .filter((f) => f.startsWith("env-"))
            .map((f) => readFile(path.join(dumpDir, f), "utf8")),
        ),
    };
  }

  it("ffprobe and ffmpeg see only the media tools' variables during a transcode", async () => {
    const ffprobe = await revealingWrapper("ffprobe");
    const ffmpeg = await revealingWrapper("ffmpeg");
    for (const [name, value] of Object.entries(SECRETS)) vi.stubEnv(name, value);
    vi.stubEnv("FFPROBE_PATH", ffprobe.wrapper);
    vi.stubEnv("FFMPEG_PATH", ffmpeg.wrapper);
    vi.resetModules();
    const { transcode } = await import("../../render-worker/handlers/transcode.ts");
    const { MEDIA_TOOL_ENV_NAMES } = await import("../../render-worker/media/tool-environment.ts");

    const clip = await makeClip({ width: 160, height: 90, seconds: 2, audio: true });
    const sourceKey = `videos/${ATTACKER}/source/upload`;
    await mkdir(path.dirname(path.join(dirs.dataDir, sourceKey)), { recursive: true });
    await copyFile(clip, path.join(dirs.dataDir, sourceKey));
    const events: JobEventBody[] = [];
    await transcode(
      {
        v: 2,
        type: "transcode",
        jobId: JOB_ID,
        attempt: 1,
        videoId: ATTACKER,
        sourceKey,
        outputPrefix: `videos/${ATTACKER}`,
        options: { segmentSeconds: 2 },
      },
      context(events),
    );
    expect(events.at(-1)?.type).toBe("job.succeeded");

    // One ffprobe, the worker's own within the whitelists: fluent-ffmpeg's (for its progress event) never runs.
    expect(await ffprobe.dumps()).toHaveLength(1);
    const dumps = [...(await ffprobe.dumps()), ...(await ffmpeg.dumps())];
    // The probe and the ladder, which makes the poster and the storyboard in its own decode.
    expect(dumps).toHaveLength(2);
    expectNoSecrets(dumps, MEDIA_TOOL_ENV_NAMES);
  });

  it("espeak-ng and ffmpeg see only the media tools' variables during a narrated composition", async () => {
    const espeak = await revealingWrapper("espeak-ng");
    const ffmpeg = await revealingWrapper("ffmpeg");
    for (const [name, value] of Object.entries(SECRETS)) vi.stubEnv(name, value);
    vi.stubEnv("ESPEAK_PATH", espeak.wrapper);
    vi.stubEnv("FFMPEG_PATH", ffmpeg.wrapper);
    vi.resetModules();
    const { renderComposition } = await import("../../render-worker/handlers/render-composition.ts");
    const { MEDIA_TOOL_ENV_NAMES } = await import("../../render-worker/media/tool-environment.ts");
    const job = {
      v: 2,
      type: "render_composition",
      jobId: JOB_ID,
      attempt: 1,
      videoId: ATTACKER,
      template: "QUIZ",
      questions: [{ question: "Who reads this?", choices: ["espeak", "nobody"], answerIndex: 0 }],
      secondsPerQuestion: 1,
      narration: { voice: "en" },
      width: 320,
      height: 180,
      outputKey: `videos/${ATTACKER}/source/composition.mp4`,
      assets: {},
    } as RenderCompositionJobMessage;
    await renderComposition(job, context([]));
    const dumps = [...(await espeak.dumps()), ...(await ffmpeg.dumps())];
    expect(dumps.length).toBeGreaterThanOrEqual(2);
    expectNoSecrets(dumps, MEDIA_TOOL_ENV_NAMES);
  });

  function expectNoSecrets(dumps: string[], allowed: string[]): void {
    for (const dump of dumps) {
      const names = dump
        .split("\n")
        .filter(Boolean)
        .map((line) => line.slice(0, line.indexOf("=")));
      // The shell adds PWD (and on some systems SHLVL/_) itself.
      expect(names.filter((n) => !["PWD", "SHLVL", "_", "OLDPWD"].includes(n) && !allowed.includes(n))).toEqual([]);
      for (const [name, value] of Object.entries(SECRETS)) {
        expect(dump).not.toContain(name);
        expect(dump).not.toContain(value);
      }
    }
  }
});
