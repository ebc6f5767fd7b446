import { readFile } from "node:fs/promises";
import { expect } from "vitest";
import { createDb } from "../../src/db/client.ts";
import { DEFAULT_COST_SETTINGS } from "../../src/costs/cost-model.ts";
import { recordActualCost } from "../../src/costs/job-cost.ts";
import { collectSubscription, type TestApp } from "./app.ts";
import { frameIndices } from "./frames.ts";
import { graphql } from "./graphql.ts";
import { expectMeasuredMaster, expectMeasuredVariants } from "./media-checks.ts";
import { makeFrameCounterClip } from "./media-fixtures.ts";
import { createUpload } from "./uploads.ts";

/**
 * The env of a test app whose transcodes are split: a 6 s clip at 25 fps in the tests' 2 s segments
 * after a 1 s first one (segments at 0, 1, 3 and 5 s) makes chunks of segments [0,2), [2,3) and
 * [3,4): a first chunk with a cut, a whole middle segment, and the source's last second (a run of one
 * segment has no cut). Three chunks, two joins, each on none of the source's keyframes (0 s only).
 */
export const SPLIT_ENV = { CHUNK_SECONDS: "2", FIRST_CHUNK_SECONDS: "2" };
/** The uploaded frame-counter clip's length, and what SPLIT_ENV makes of it. */
const SECONDS = 6;
const FRAMES = SECONDS * 25;
const SEGMENTS = 4;
const CHUNKS = 3;

/**
 * The split transcode's own run ended before the chunks made its rungs READY and measured them;
 * its stored actual cost was computed again then, so computing it once more changes nothing.
 */
async function expectActualCostCurrent(t: TestApp, videoId: string): Promise<void> {
  const db = createDb(t.database.url);
  try {
    const stored = () =>
      db.job.findFirstOrThrow({
        where: { videoId, kind: "TRANSCODE" },
        select: { id: true, cpuSeconds: true, actualCostUsd: true, rungCosts: true },
      });
    const before = await stored();
    expect(before.actualCostUsd).not.toBeNull();
    await recordActualCost(db, DEFAULT_COST_SETTINGS, before.id);
    expect(await stored()).toEqual(before);
  } finally {
    await db.$disconnect();
  }
}

/** Waits until the app's workers (two or more) have heartbeated: the API splits only then. */
export async function waitForWorkers(t: TestApp, count: number): Promise<void> {
  const db = createDb(t.database.url);
  try {
    for (let i = 0; (await db.worker.count({ where: { capabilities: { has: "cpu" } } })) < count; i++) {
      if (i > 300) throw new Error(`${count} workers did not heartbeat within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await db.$disconnect();
  }
}

const EVENTS = graphql(`
    subscription ($id: ID!) {
      videoEvents(videoId: $id) {
        __typename
        video { status playable transcodeChunks { total done } }
        ... on VariantProgressEvent { variant { name status progress } }
        ... on VariantStatusEvent { variant { name status progress } }
      } }`);
const VIDEO = graphql(`
    query ($id: ID!) {
      video(id: $id) {
        status playbackUrl transcodeChunks { total done }
        variants { name kind status segmentCount playlistUrl peakBitRate averageBitRate }
        jobs(first: 10) { edges { node { kind status parent { id } chunk { index fromSegment toSegment } } } }
      } }`);

/**
 * Uploads makeFrameCounterClip(6) in `segmentFormat` to an app started with SPLIT_ENV and two
 * workers, and checks through the public API that the transcode was split in three, each chunk job
 * SUCCEEDED, every rung READY with its 4 segments in order, the top and bottom rungs play every
 * source frame once and in order across the joins, and progress and chunks done only grow.
 */
export async function uploadSplitAndCheck(t: TestApp, segmentFormat: "TS" | "FMP4"): Promise<void> {
  const clip = await readFile(await makeFrameCounterClip(SECONDS));
  const { id, uploadUrl } = await createUpload(t, `split ${segmentFormat}`, { segmentFormat });
  const events = collectSubscription(t.wsClient(), EVENTS, { id });
  // The API's own upload URL (local storage, S3: relative) answers 200; a GCS resumable session
  // (absolute, on the bucket's server) answers 200 or 201 to its whole body in one PUT.
  const put = await fetch(new URL(uploadUrl, t.url), { method: "PUT", body: new Uint8Array(clip) });
  expect(uploadUrl.startsWith("/") ? [200] : [200, 201]).toContain(put.status);
  const seen = await events.done;
  expect(seen.at(-1)!.videoEvents.video.status).toBe("READY");

  // Progress over the whole video only grows, however the chunks' runs interleave.
  const last = new Map<string, number>();
  for (const { videoEvents: e } of seen) {
    if (!("variant" in e) || !e.variant) continue;
    expect(e.variant.progress, `${e.variant.name} went back`).toBeGreaterThanOrEqual(last.get(e.variant.name) ?? 0);
    last.set(e.variant.name, e.variant.progress);
  }

  const { data, errors } = await t.gql(VIDEO, { id });
  expect(errors).toBeUndefined();
  const video = data.video!;
  expect(video.transcodeChunks).toEqual({ total: CHUNKS, done: CHUNKS });
  // Chunks done only grow, up to all of them by READY.
  const done = seen.flatMap(({ videoEvents: e }) => (e.video.transcodeChunks ? [e.video.transcodeChunks.done] : []));
  expect(done).toEqual([...done].sort((a, b) => a - b));
  expect(seen.at(-1)!.videoEvents.video.transcodeChunks).toEqual({ total: CHUNKS, done: CHUNKS });
  const jobs = video.jobs.edges.map((e) => e.node);
  const chunkJobs = jobs.filter((j) => j.kind === "TRANSCODE_CHUNK").sort((a, b) => a.chunk!.index - b.chunk!.index);
  expect(chunkJobs.map((j) => [j.status, j.chunk])).toEqual([
    ["SUCCEEDED", { index: 1, fromSegment: 2, toSegment: 3 }],
    ["SUCCEEDED", { index: 2, fromSegment: 3, toSegment: 4 }],
  ]);
  expect(jobs.find((j) => j.kind === "TRANSCODE")?.status).toBe("SUCCEEDED");

  const videoRungs = video.variants.filter((v) => v.kind === "VIDEO");
  expect(videoRungs.map((v) => v.name)).toEqual(["360p", "240p", "144p"]);
  for (const rung of video.variants) {
    expect([rung.name, rung.status, rung.segmentCount]).toEqual([rung.name, "READY", SEGMENTS]);
    const playlist = await (await fetch(new URL(rung.playlistUrl!, t.url))).text();
    expect(playlist).toContain("#EXT-X-ENDLIST");
    const uris = playlist
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      // A bucket's segments are named by presigned URL: the file name is the path's last part.
      .map((line) => new URL(line, t.url).pathname.split("/").at(-1));
    const ext = segmentFormat === "FMP4" ? "m4s" : "ts";
    expect(uris).toEqual(Array.from({ length: SEGMENTS }, (_, n) => `seg_0000${n}.${ext}`));
  }
  // READY: the master states what each variant's segments carry, the API having measured the chunks'
  // video rungs and added the first run's audio.
  await expectMeasuredMaster(new URL(video.playbackUrl!, t.url));
  // Each variant's own figures: the video rungs' measured by the API, the audio's by the first run.
  await expectMeasuredVariants(t.url, video.variants);
  await expectActualCostCurrent(t, id);
  // The top and the bottom rung, decoded through the API as a player reads them.
  for (const rung of [videoRungs[0]!, videoRungs.at(-1)!]) {
    const frames = await frameIndices(new URL(rung.playlistUrl!, t.url).href);
    expect(frames).toEqual(Array.from({ length: FRAMES }, (_, i) => i));
  }
}
