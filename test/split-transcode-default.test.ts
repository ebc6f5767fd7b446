import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { waitForWorkers } from "./support/split-transcode.ts";
import { uploadAndWait } from "./support/uploads.ts";

/**
 * Chunked transcoding at its defaults (no CHUNK_SECONDS or FIRST_CHUNK_SECONDS in the env: 60 s
 * chunks, a 10 s first one; docs/chunked-transcoding.md, "The default"), through the public API:
 * a source no longer than one chunk is one run; one longer is split while two workers have free
 * slots, and not on one worker (the embedded default's one local worker). The sources are the
 * cheapest that cross the threshold: 160x90 at 5 fps, no audio (split-transcode.test.ts has it).
 */
const VIDEO = graphql(`
  query ($id: ID!) {
    video(id: $id) {
      status duration transcodeChunks { total done }
      jobs(first: 10) { edges { node { kind status chunk { index fromSegment toSegment } } } }
    } }`);

type Split = {
  status: string;
  duration: number | null;
  transcodeChunks: { total: number; done: number } | null;
  jobs: string[];
  chunks: ({ index: number; fromSegment: number; toSegment: number } | null)[];
};

/** Uploads a 160x90 clip of `seconds` and waits for its end; what the API says of its transcode. */
async function uploadOf(t: TestApp, seconds: number): Promise<Split> {
  const clip = await readFile(await makeClip({ width: 160, height: 90, seconds, fps: 5, audio: false }));
  const final = await uploadAndWait(t, new Uint8Array(clip), `${seconds} s`);
  const { data, errors } = await t.gql(VIDEO, { id: final.id });
  expect(errors).toBeUndefined();
  const nodes = data.video!.jobs.edges.map((e) => e.node);
  return {
    status: data.video!.status,
    duration: data.video!.duration,
    transcodeChunks: data.video!.transcodeChunks,
    jobs: nodes.map((n) => `${n.kind} ${n.status}`).sort(),
    chunks: nodes.filter((n) => n.kind === "TRANSCODE_CHUNK").map((n) => n.chunk),
  };
}

describe("chunked transcoding at its defaults", () => {
  describe("on two workers", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ workers: 2 });
      await waitForWorkers(t, 2);
    }, 60_000);
    afterAll(async () => {
      await t?.stop();
    });

    it("leaves a source of one chunk's length (60 s) in one run", async () => {
      const video = await uploadOf(t, 60);
      expect(video).toMatchObject({ status: "READY", duration: 60, transcodeChunks: null });
      expect(video.jobs).toEqual(["TRANSCODE SUCCEEDED"]);
    }, 60_000);

    it("splits a longer one (62 s) in a 10 s first chunk and the rest", async () => {
      const video = await uploadOf(t, 62);
      expect(video).toMatchObject({ status: "READY", transcodeChunks: { total: 2, done: 2 } });
      expect(video.jobs).toEqual(["TRANSCODE SUCCEEDED", "TRANSCODE_CHUNK SUCCEEDED"]);
      // The tests' 2 s segments after a 1 s first one: the first chunk ends at the segment start
      // nearest 10 s (segment 6, 11 s); the 51 s left are under one chunk, and two runs fill two slots.
      expect(video.chunks).toEqual([{ index: 1, fromSegment: 6, toSegment: 32 }]);
    }, 60_000);
  });

  it("leaves the longer source in one run on one worker (the embedded default's one)", async () => {
    const t = await startTestApp();
    try {
      await waitForWorkers(t, 1);
      const video = await uploadOf(t, 62);
      expect(video).toMatchObject({ status: "READY", transcodeChunks: null });
      expect(video.jobs).toEqual(["TRANSCODE SUCCEEDED"]);
    } finally {
      await t.stop();
    }
  }, 90_000);
});
