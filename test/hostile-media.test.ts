import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { childProcessPids } from "./support/process-scan.ts";
import { graphql, type ResultOf } from "./support/graphql.ts";
import { createUpload, uploadAndWait, type FinalVideo } from "./support/uploads.ts";
import {
  makeAudioOnly,
  makeClip,
  makeDataOnly,
  makeDurationBomb,
  makeFrameSizeBomb,
  makeManyChannelAudio,
  makeUndecodableAudio,
  makeVfrClip,
  makeY4mHeaderBomb,
  makeZeroLengthAudio,
} from "./support/media-fixtures.ts";

const run = promisify(execFile);

/** Frames of the first video stream, decoded and counted by ffprobe. */
async function countFrames(file: string): Promise<number> {
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-count_frames",
    "-select_streams",
    "v:0",
    "-show_entries",
    "stream=nb_read_frames",
    "-of",
    "csv=p=0",
    file,
  ]);
  // MPEG-TS lists the stream once per program too: the first line is the stream's own count.
  return Number(stdout.trim().split("\n")[0]);
}
const WORKER_ENTRY = "render-worker/main.ts";
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;

const VIDEO = graphql(`
  query($id: ID!) {
    video(id: $id) {
      id status error playable duration width height
      variants { name width height status playlistUrl }
      jobs(first: 5) { edges { node { status attempt error } } }
    } }`);

type VideoDetails = NonNullable<ResultOf<typeof VIDEO>["video"]>;

async function fileBytes(file: Promise<string>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await readFile(await file));
}

/** Each is refused at the probe, before the encoder runs, for a reason a user can act on. */
const REFUSED: Array<[string, () => Promise<Uint8Array<ArrayBuffer>>, RegExp]> = [
  [
    "a text file (not video at all)",
    async () => new TextEncoder().encode("Quarterly figures, not a video.\n".repeat(40)),
    /^The file is not a video ffmpeg can read: /,
  ],
  [
    "a truncated mp4",
    async () => (await fileBytes(makeClip({ width: 320, height: 180, seconds: 2, audio: true }))).slice(0, 4096),
    /^The file is not a video ffmpeg can read: .*moov atom not found/,
  ],
  [
    "data only: a subtitle track, no audio or video",
    () => fileBytes(makeDataOnly()),
    /^The file has no audio or video stream: there is nothing to play in it$/,
  ],
  [
    "an audio stream that does not decode",
    () => fileBytes(makeUndecodableAudio(3)),
    /^The file's audio stream \(aac\) does not decode: /,
  ],
  [
    "zero-length audio: a WAV header and no samples",
    () => fileBytes(makeZeroLengthAudio()),
    /^The audio has no duration: the file may be truncated or hold no samples$/,
  ],
  [
    "audio with 12 channels",
    () => fileBytes(makeManyChannelAudio(12)),
    /^The audio has 12 channels; the limit is 8 \(7\.1 surround\)$/,
  ],
  [
    "a frame-size bomb: a y4m header declaring 16000x16000 over 64 KiB",
    () => fileBytes(makeY4mHeaderBomb(16000, 16000)),
    /^The video's frame size 16000x16000 exceeds the 8192 px limit per side$/,
  ],
  [
    "a frame-area bomb: one 64x64 H.264 frame declaring 6400x6400",
    () => fileBytes(makeFrameSizeBomb(6400, 6400)),
    /^The video's frame size 6400x6400 \(41 megapixels\) exceeds the 36 megapixel limit$/,
  ],
  [
    "a duration bomb: a 1 s mp4 declaring ten years",
    () => fileBytes(makeDurationBomb("mp4", 10 * 365 * 24 * 3600)),
    /^The video is 87600 h long; the limit is 30 s$/,
  ],
  [
    "extreme length: 40 s with MAX_DURATION_SECONDS=30",
    () => fileBytes(makeClip({ width: 64, height: 64, seconds: 40, audio: false, fps: 5 })),
    /^The video is 40 s long; the limit is 30 s$/,
  ],
  [
    "1000 fps",
    () => fileBytes(makeClip({ width: 64, height: 64, seconds: 0.3, audio: false, fps: 1000 })),
    /^The video's frame rate of 1000 fps is above the 240 fps limit$/,
  ],
  [
    "frames of 8x8",
    () => fileBytes(makeClip({ width: 8, height: 8, seconds: 1, audio: false })),
    /^The video's frame size 8x8 is too small: each side must be at least 16 px$/,
  ],
];

describe("hostile and unusual media each end in a correct state with a readable reason", () => {
  let t: TestApp;
  let workerPid: number;
  const finals = new Map<string, FinalVideo>();

  beforeAll(async () => {
    t = await startTestApp({ env: { MAX_DURATION_SECONDS: "30", MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) } });
    const pids = childProcessPids(WORKER_ENTRY);
    expect(pids).toHaveLength(1);
    workerPid = pids[0]!;
  });
  afterAll(() => t?.stop());

  async function details(id: string): Promise<VideoDetails> {
    return (await t.gql(VIDEO, { id })).data.video!;
  }

  /** Uploads, waits for the end, and checks READY with every variant READY. */
  async function expectReady(title: string, bytes: Uint8Array<ArrayBuffer>): Promise<VideoDetails> {
    const final = await uploadAndWait(t, bytes, title);
    finals.set(final.id, final);
    expect(final).toMatchObject({ status: "READY", error: null, playable: true });
    const video = await details(final.id);
    expect(video.variants.length).toBeGreaterThan(0);
    for (const v of video.variants) expect(v.status).toBe("READY");
    expect(video.jobs.edges.map((e) => e.node)).toEqual([{ status: "SUCCEEDED", attempt: 1, error: null }]);
    return video;
  }

  /** Width and height of the top rung's frames, as ffprobe reads its first segment. */
  async function firstSegmentOf(video: VideoDetails): Promise<{ width: number; height: number }> {
    const playlistUrl = `${t.url}${video.variants[0]!.playlistUrl}`;
    const playlist = await (await fetch(playlistUrl)).text();
    const segment = playlist.split("\n").find((line) => line.endsWith(".ts"))!;
    const file = path.join(t.dataDir, `segment-${video.id}.ts`);
    await writeFile(file, Buffer.from(await (await fetch(new URL(segment, playlistUrl))).arrayBuffer()));
    const { stdout } = await run("ffprobe", [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=width,height",
      "-of",
      "json",
      file,
    ]);
    return JSON.parse(stdout).streams[0];
  }

  it.each(REFUSED)("%s ends FAILED, not retried, nothing encoded", async (title, bytes, reason) => {
    const final = await uploadAndWait(t, await bytes(), title);
    finals.set(final.id, final);
    expect(final.status).toBe("FAILED");
    expect(final.error).toMatch(reason);
    expect(final.playable).toBe(false);
    const video = await details(final.id);
    // No variants: the probe refused it, so no ladder was planned and ffmpeg never decoded it.
    expect(video.variants).toEqual([]);
    expect(video.jobs.edges.map((e) => e.node)).toEqual([{ status: "FAILED", attempt: 1, error: final.error }]);
  });

  it("zero bytes are refused at the upload and the video keeps waiting", async () => {
    const { id, uploadUrl } = await createUpload(t, "zero bytes");
    const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(0) });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/The upload is empty/);
    expect((await details(id)).status).toBe("WAITING_FOR_UPLOAD");
  });

  it("an upload past MAX_UPLOAD_BYTES is refused and the video keeps waiting", async () => {
    const { id, uploadUrl } = await createUpload(t, "too big");
    const res = await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(MAX_UPLOAD_BYTES + 1) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/exceeds/);
    expect((await details(id)).status).toBe("WAITING_FOR_UPLOAD");
  });

  it("audio only becomes an audio-only ladder: AAC rungs, no width or height", async () => {
    const video = await expectReady("audio only", await fileBytes(makeAudioOnly(2)));
    expect(video).toMatchObject({ width: null, height: null });
    // lavfi's sine is mono: the mono ladder (64k, 32k), at most the source's rate.
    expect(video.variants.length).toBeGreaterThan(0);
    for (const v of video.variants)
      expect(v).toMatchObject({ name: expect.stringMatching(/^audio\d+k$/), width: null });
  });

  it("a single frame becomes a one-segment ladder", async () => {
    const video = await expectReady(
      "single frame",
      await fileBytes(makeClip({ width: 320, height: 180, seconds: 1, frames: 1, audio: false })),
    );
    expect(video).toMatchObject({ width: 320, height: 180 });
    expect(video.duration).toBeLessThan(0.1);
    expect(video.variants.map((v) => `${v.name} ${v.width}x${v.height}`)).toEqual(["180p 320x180", "144p 256x144"]);
    for (const v of video.variants) {
      const playlist = await (await fetch(`${t.url}${v.playlistUrl}`)).text();
      expect(playlist.match(/^#EXTINF:/gm)).toHaveLength(1);
      expect(playlist.trimEnd().endsWith("#EXT-X-ENDLIST")).toBe(true);
    }
  });

  it("odd dimensions (641x359) become even rungs", async () => {
    const video = await expectReady(
      "odd dimensions",
      await fileBytes(makeClip({ width: 641, height: 359, seconds: 2, audio: false })),
    );
    expect(video).toMatchObject({ width: 641, height: 359 });
    expect(video.variants.map((v) => `${v.name} ${v.width}x${v.height}`)).toEqual([
      "358p 640x358",
      "240p 428x240",
      "144p 258x144",
    ]);
  });

  it("a phone video stored 640x360 with rotation metadata plays upright at 360x640", async () => {
    const video = await expectReady(
      "rotated phone video",
      await fileBytes(makeClip({ width: 640, height: 360, seconds: 2, audio: true, rotate: 90 })),
    );
    expect(video).toMatchObject({ width: 360, height: 640 });
    expect(video.variants[0]).toMatchObject({ name: "360p", width: 360, height: 640 });
    expect(video.variants.at(-1)).toMatchObject({ name: "audio", width: null });
    // The pixels are turned, not just the metadata: the encoded frames are portrait.
    expect(await firstSegmentOf(video)).toEqual({ width: 360, height: 640 });
  });

  it("a variable frame rate keeps its duration, without frames padded to the nominal rate", async () => {
    const clip = makeVfrClip({ width: 320, height: 180, seconds: 4 });
    const video = await expectReady("variable frame rate", await fileBytes(clip));
    const source = await clip;
    expect(video.duration).toBeGreaterThan(3.8);
    expect(video.duration).toBeLessThan(4.1);
    const playlist = await (await fetch(`${t.url}${video.variants[0]!.playlistUrl}`)).text();
    const listed = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(listed).toBeCloseTo(video.duration!, 0);
    const sourceFrames = await countFrames(source);
    let encodedFrames = 0;
    for (const uri of playlist.split("\n").filter((l) => l && !l.startsWith("#"))) {
      const file = path.join(
        t.dataDir,
        new URL(uri, `${t.url}${video.variants[0]!.playlistUrl}`).pathname.replace(/^\/media\//, ""),
      );
      encodedFrames += await countFrames(file);
    }
    expect(encodedFrames).toBeLessThanOrEqual(Math.ceil(sourceFrames * 1.05));
  });

  it("a very low resolution (16x16) gets one rung at its own size", async () => {
    const video = await expectReady(
      "16x16",
      await fileBytes(makeClip({ width: 16, height: 16, seconds: 2, audio: false })),
    );
    expect(video.variants.map((v) => `${v.name} ${v.width}x${v.height}`)).toEqual(["16p 16x16"]);
  });

  it("afterwards a normal video reaches READY, no earlier video changed and the worker never restarted", async () => {
    await expectReady("normal", await fileBytes(makeClip({ width: 320, height: 180, seconds: 2, audio: true })));
    expect(finals.size).toBe(REFUSED.length + 7);
    for (const [id, final] of finals) {
      const now = await details(id);
      expect({ status: now.status, error: now.error, playable: now.playable }).toEqual({
        status: final.status,
        error: final.error,
        playable: final.playable,
      });
      expect(now.jobs.edges).toHaveLength(1);
    }
    expect(childProcessPids(WORKER_ENTRY)).toEqual([workerPid]);
  });
});
