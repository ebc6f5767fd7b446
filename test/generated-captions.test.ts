import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { createUpload, finalState } from "./support/uploads.ts";

// The worker transcribes with the speech model of `npm run setup:asr` (.tools/asr), in the sandbox.

const run = promisify(execFile);

const SENTENCE = "Welcome to the video. Today we talk about rivers and mountains.";

const GENERATE = graphql(`
  mutation($input: GenerateCaptionsInput!) {
    generateCaptions(input: $input) {
      __typename
      ... on GenerateCaptionsSuccess { caption { id source status progress language name } }
      ... on ValidationError { field message }
      ... on NotFoundError { message }
      ... on NoWorkerError { capability message }
    } }`);
const CREATE_WITH_CAPTIONS = graphql(`
  mutation($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl video { id captions { source status language name job { id } } } }
      ... on ValidationError { field message }
    } }`);
const REMOVE = graphql(`mutation($id: ID!) { removeCaption(id: $id) { __typename } }`);
const CAPTIONS = graphql(`
  query($id: ID!) { video(id: $id) { playbackUrl
    captions { id source status progress error cueCount url language
      job { kind status cost { cpuSeconds actualUsd } } } } }`);

/** A few seconds of espeak-ng speaking `SENTENCE`, muxed with a tiny lavfi picture. */
async function speechClip(dir: string): Promise<string> {
  const wav = path.join(dir, "speech.wav");
  const clip = path.join(dir, "speech.mp4");
  await run("espeak-ng", ["-s", "150", "-w", wav, SENTENCE]);
  await run("ffmpeg", [
    ...["-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=160x120:r=10", "-i", wav],
    ...["-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "64k", clip],
  ]);
  return clip;
}

/** Words of `text`, lower case, without punctuation. */
const words = (text: string) => text.toLowerCase().match(/[a-z']+/g) ?? [];

async function uploadReady(t: TestApp, clip: string): Promise<string> {
  const { id, uploadUrl } = await createUpload(t, "speech");
  const final = finalState(t, id);
  expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
  expect((await final).status).toBe("READY");
  return id;
}

async function captionsOf(t: TestApp, id: string) {
  return (await t.gql(CAPTIONS, { id })).data.video!;
}

describe("generated captions (speech recognition on a worker with asr, public API)", () => {
  let t: TestApp;
  let dir: string;
  let clip: string;
  let videoId: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "vg-asr-"));
    [t, clip] = await Promise.all([startTestApp({ workerEnv: { WORKER_CAPABILITIES: "cpu,asr" } }), speechClip(dir)]);
    videoId = await uploadReady(t, clip);
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it(`transcribes a READY video's speech into a GENERATED track: PROCESSING with its progress, then READY, \
close to what was said, listed in the master playlist, with the job's cost`, async () => {
    const res = expectTypename(
      (await t.gql(GENERATE, { input: { videoId, language: "en" } })).data.generateCaptions,
      "GenerateCaptionsSuccess",
    );
    expect(res.caption).toMatchObject({
      source: "GENERATED",
      status: "PROCESSING",
      progress: 0,
      language: "en",
      name: "English (generated)",
    });
    // Not listed while it is made.
    const during = await captionsOf(t, videoId);
    const masterDuring = await (await fetch(`${t.url}${during.playbackUrl}`)).text();
    expect(masterDuring).not.toContain(res.caption.id);

    const progressSeen: number[] = [];
    await expect
      .poll(
        async () => {
          const caption = (await captionsOf(t, videoId)).captions.find((c) => c.id === res.caption.id)!;
          progressSeen.push(caption.progress);
          return caption.status;
        },
        { timeout: 90_000, interval: 100 },
      )
      .toBe("READY");
    const video = await captionsOf(t, videoId);
    const caption = video.captions.find((c) => c.id === res.caption.id)!;
    expect(caption).toMatchObject({ source: "GENERATED", status: "READY", progress: 1, error: null });
    expect(caption.cueCount).toBeGreaterThan(0);
    expect(progressSeen.every((p, i) => i === 0 || p >= progressSeen[i - 1]!)).toBe(true);
    expect(caption.job).toMatchObject({ kind: "TRANSCRIBE", status: "SUCCEEDED" });
    expect(caption.job!.cost!.cpuSeconds).toBeGreaterThan(0);
    expect(caption.job!.cost!.actualUsd).toBeGreaterThan(0);

    // Asked again: the same track, no second job.
    const again = (await t.gql(GENERATE, { input: { videoId, language: "en" } })).data.generateCaptions;
    expect(again).toMatchObject({ caption: { id: caption.id, status: "READY" } });
    expect(await t.app.services.db.job.count({ where: { videoId, kind: "TRANSCRIBE" } })).toBe(1);

    const vtt = await (await fetch(`${t.url}${caption.url}`)).text();
    expect(vtt).toMatch(/^WEBVTT\nX-TIMESTAMP-MAP=/);
    const said = new Set(words(SENTENCE));
    const heard = words(
      vtt
        .split("\n\n")
        .slice(1)
        .join(" ")
        .replace(/\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}/g, ""),
    );
    const right = heard.filter((w) => said.has(w)).length;
    expect(right / said.size).toBeGreaterThan(0.7);

    const master = await (await fetch(`${t.url}${video.playbackUrl}`)).text();
    expect(master).toMatch(
      new RegExp(
        `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English \\(generated\\)",LANGUAGE="en".*${caption.id}`,
      ),
    );
  }, 120_000);

  it("refuses another language than English, naming the field, and queues nothing", async () => {
    const res = (await t.gql(GENERATE, { input: { videoId, language: "de" } })).data.generateCaptions;
    expect(res).toEqual({
      __typename: "ValidationError",
      field: "language",
      message: 'Generated captions are made in English only (the speech model is Whisper tiny.en), not "de"',
    });
    expect(
      await t.app.services.db.job.count({
        where: { videoId, kind: "TRANSCRIBE", input: { path: ["language"], equals: "de" } },
      }),
    ).toBe(0);
  });

  it(`asked for at creation: the track waits, PROCESSING, while the video encodes and is transcribed once it is \
READY; another language is refused before anything is created`, async () => {
    const refused = await t.gql(CREATE_WITH_CAPTIONS, { input: { title: "fr", generatedCaptions: ["fr"] } });
    expect(refused.data.createUpload).toEqual({
      __typename: "ValidationError",
      field: "generatedCaptions",
      message: 'Generated captions are made in English only (the speech model is Whisper tiny.en), not "fr"',
    });
    const created = expectTypename(
      (await t.gql(CREATE_WITH_CAPTIONS, { input: { title: "asked", generatedCaptions: ["en-US", "en-us"] } })).data
        .createUpload,
      "CreateUploadSuccess",
    );
    const { id } = created.video;
    expect(created.video.captions).toEqual([
      { source: "GENERATED", status: "PROCESSING", language: "en-US", name: "English (generated)", job: null },
    ]);
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await final).status).toBe("READY");
    await expect
      .poll(async () => (await captionsOf(t, id)).captions.map((c) => c.status), { timeout: 90_000, interval: 200 })
      .toEqual(["READY"]);
    const [caption] = (await captionsOf(t, id)).captions;
    expect(caption!.cueCount).toBeGreaterThan(0);
    expect(caption!.job).toMatchObject({ kind: "TRANSCRIBE", status: "SUCCEEDED" });
  }, 120_000);

  it("a failed transcription fails its track, not the video: a video with no audio", async () => {
    const silent = await uploadReady(t, await makeClip({ width: 160, height: 120, seconds: 1, audio: false }));
    const res = expectTypename(
      (await t.gql(GENERATE, { input: { videoId: silent, language: "en" } })).data.generateCaptions,
      "GenerateCaptionsSuccess",
    );
    await expect
      .poll(async () => (await captionsOf(t, silent)).captions.map((c) => c.status), { timeout: 60_000, interval: 200 })
      .toEqual(["FAILED"]);
    const [caption] = (await captionsOf(t, silent)).captions;
    expect(caption).toMatchObject({ id: res.caption.id, error: "The video has no audio to transcribe" });
    expect(caption!.job).toMatchObject({ kind: "TRANSCRIBE", status: "FAILED" });
    expect((await t.app.services.db.video.findUniqueOrThrow({ where: { id: silent } })).status).toBe("READY");
    const master = await (await fetch(`${t.url}${(await captionsOf(t, silent)).playbackUrl}`)).text();
    expect(master).not.toContain("SUBTITLES");
    // Asked again, a FAILED track is made again in place (and fails again: still no audio).
    const again = (await t.gql(GENERATE, { input: { videoId: silent, language: "en" } })).data.generateCaptions;
    expect(again).toMatchObject({ caption: { id: res.caption.id, status: "PROCESSING", progress: 0 } });
    await expect
      .poll(async () => await t.app.services.db.job.count({ where: { videoId: silent, status: "FAILED" } }), {
        timeout: 60_000,
        interval: 200,
      })
      .toBe(2);
    expect((await captionsOf(t, silent)).captions).toMatchObject([{ id: res.caption.id, status: "FAILED" }]);
  }, 60_000);

  it("a track removed while it is transcribed stays removed, and its file is deleted when the job ends", async () => {
    const res = expectTypename(
      (await t.gql(GENERATE, { input: { videoId, language: "en", name: "Removed early" } })).data.generateCaptions,
      "GenerateCaptionsSuccess",
    );
    const removed = (await t.gql(REMOVE, { id: res.caption.id })).data.removeCaption;
    expect(removed).toEqual({ __typename: "RemoveCaptionSuccess" });
    const job = await t.app.services.db.job.findFirstOrThrow({
      where: { kind: "TRANSCRIBE", input: { path: ["captionId"], equals: res.caption.id } },
    });
    await expect
      .poll(async () => (await t.app.services.db.job.findUniqueOrThrow({ where: { id: job.id } })).status, {
        timeout: 60_000,
        interval: 200,
      })
      .toBe("SUCCEEDED");
    expect(await t.app.services.db.caption.count({ where: { id: res.caption.id } })).toBe(0);
    // Deleted once the job's end has committed: just after the job reads SUCCEEDED.
    const file = path.join(t.dataDir, "videos", videoId, "captions", res.caption.id, "track.vtt");
    await expect
      .poll(
        async () =>
          await stat(file).then(
            () => "present",
            (err: NodeJS.ErrnoException) => err.code,
          ),
        {
          timeout: 10_000,
          interval: 100,
        },
      )
      .toBe("ENOENT");
  }, 60_000);

  it("answers another tenant's video as not found", async () => {
    const keyB = await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b");
    const res = (await t.gql(GENERATE, { input: { videoId, language: "en", name: "B's" } }, `Bearer ${keyB}`)).data
      .generateCaptions;
    expect(res).toMatchObject({ __typename: "NotFoundError" });
    expect(await t.app.services.db.caption.count({ where: { videoId, name: "B's" } })).toBe(0);
  });
});

describe("generated captions with no worker that has asr", () => {
  it("answers at once that no worker can generate captions when LOCAL_FALLBACK is off, and creates nothing", async () => {
    const t = await startTestApp({ workerEnv: { WORKER_CAPABILITIES: "cpu,local" } });
    try {
      const { id } = await createUpload(t, "no speech worker");
      const res = (await t.gql(GENERATE, { input: { videoId: id, language: "en" } })).data.generateCaptions;
      expect(res).toEqual({
        __typename: "NoWorkerError",
        capability: "asr",
        message:
          "No worker can generate captions now: no worker with the asr capability has reported in the last 90 s, " +
          "and LOCAL_FALLBACK is off",
      });
      expect(await t.app.services.db.caption.count()).toBe(0);
    } finally {
      await t.stop();
    }
  });
});
