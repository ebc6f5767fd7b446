import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { createUpload, uploadUntilEncoding } from "./support/uploads.ts";
import { processesWorkingUnder } from "./support/process-scan.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { pacedFfmpeg } from "./support/paced-ffmpeg.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status } } }`);
const JOB = graphql(`
  query($id: ID!) { video(id: $id) { status error variants { status } jobs(first: 1) { edges { node { id
    status error runs { status finishedAt } } } } } }`);
const CANCEL = graphql(`
  mutation($id: ID!) { cancelVideo(id: $id) { __typename ... on CancelVideoSuccess { video { status error } }
    ... on Error { message } } }`);
const CANCEL_WAITING = graphql(
  `mutation($id: ID!) { cancelVideo(id: $id) { __typename ... on CancelVideoSuccess { video { status } } } }`,
);
const CANCEL_REFUSED = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename ... on Error { message } } }`);
const CANCEL_JOB = graphql(`mutation($id: ID!) { cancelJob(id: $id) { __typename ... on Error { message } } }`);
const CANCEL_UNKNOWN_JOB = graphql(`mutation { cancelJob(id: "00000000-0000-4000-8000-000000000000") { __typename } }`);
const DELETE = graphql(
  `mutation($id: ID!) { deleteVideo(id: $id) { __typename ... on DeleteVideoSuccess { deletedVideoId } } }`,
);
const DELETE_AGAIN = graphql(`mutation($id: ID!) { deleteVideo(id: $id) { __typename } }`);
const VIDEO_ID = graphql(`query($id: ID!) { video(id: $id) { id } }`);

/** Processes working in a job's temp dir: `{root}/videograph-worker-…/videograph-{jobId}-…`. */
const ffmpegUnder = (root: string): number[] => processesWorkingUnder(root);

describe("cancel and delete (public API, real worker)", () => {
  let t: TestApp;
  let workerTmp: string;
  beforeAll(async () => {
    workerTmp = await mkdtemp(path.join(tmpdir(), "videograph-worker-tmp-"));
    // The encodes read their clips at their own rate (test/support/paced-ffmpeg.ts), so the one the
    // first test cancels is still running when the cancel arrives on any machine: unpaced, a fast
    // host under a full run's load once finished the 12 s clip first (the run SUCCEEDED, not CANCELED).
    t = await startTestApp({ workerEnv: { WORKER_TMP_DIR: workerTmp, FFMPEG_PATH: await pacedFfmpeg() } });
  });
  afterAll(async () => {
    await t.stop();
    await rm(workerTmp, { recursive: true, force: true });
  });

  it("cancelVideo mid-encode: CANCELED at once, ffmpeg stopped and temp files gone within 5 s", async () => {
    const clip = await makeClip({ width: 960, height: 540, seconds: 12, audio: true });
    const { id, final } = await uploadUntilEncoding(t.url, t.wsClient(), clip, "cancel me", EVENTS);
    // The first progress event can precede ffmpeg's start by a moment (the publisher starts beside it).
    await expect.poll(() => ffmpegUnder(workerTmp).length, { timeout: 10_000, interval: 50 }).toBeGreaterThan(0);

    const canceledAt = Date.now();
    const res = await t.gql(CANCEL, { id });
    expect(res.data.cancelVideo).toEqual({
      __typename: "CancelVideoSuccess",
      video: { status: "CANCELED", error: "Canceled on request" },
    });
    expect((await final.done).at(-1)!.videoEvents.video.status).toBe("CANCELED");

    await expect
      .poll(async () => (await t.gql(JOB, { id })).data.video!.jobs.edges[0]!.node.runs[0]?.status, {
        timeout: 5000,
        interval: 100,
      })
      .toBe("CANCELED");
    await expect
      .poll(() => ffmpegUnder(workerTmp).length, { timeout: 5000 - (Date.now() - canceledAt), interval: 100 })
      .toBe(0);
    // Nothing left but the worker's own dir and its owner file.
    const leftovers = () =>
      readdirSync(workerTmp, { recursive: true }).filter(
        (p) => !/^videograph-worker-[^/]+(\/owner\.json)?$/.test(String(p)),
      );
    await expect.poll(leftovers, { timeout: 2000, interval: 100 }).toEqual([]);
    expect(Date.now() - canceledAt).toBeLessThan(5000);

    const video = (await t.gql(JOB, { id })).data.video!;
    expect(video.status).toBe("CANCELED");
    expect(video.jobs.edges[0]!.node).toMatchObject({ status: "CANCELED", error: "Canceled on request" });
    for (const v of video.variants) expect(v.status).toBe("SKIPPED");
  });

  it("cancels a video still waiting for its upload; the upload URL is then refused", async () => {
    const { id, uploadUrl } = await createUpload(t, "never uploaded");
    const res = await t.gql(CANCEL_WAITING, { id });
    expect(expectTypename(res.data.cancelVideo, "CancelVideoSuccess").video.status).toBe("CANCELED");
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: "bytes" })).status).toBe(409);
  });

  it("refuses to cancel a finished video or job, and says when an id is unknown", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const { id, uploadUrl } = await createUpload(t, "finished");
    const done = collectSubscription(t.wsClient(), EVENTS, { id }).done;
    await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const jobId = (await t.gql(JOB, { id })).data.video!.jobs.edges[0]!.node.id;

    const video = await t.gql(CANCEL_REFUSED, { id });
    expect(video.data.cancelVideo).toEqual({ __typename: "ValidationError", message: expect.stringMatching(/READY/) });
    const job = await t.gql(CANCEL_JOB, { id: jobId });
    expect(job.data.cancelJob).toEqual({ __typename: "ValidationError", message: expect.stringMatching(/SUCCEEDED/) });
    const unknown = await t.gql(CANCEL_UNKNOWN_JOB);
    expect(unknown.data.cancelJob.__typename).toBe("NotFoundError");
  });

  it("deleteVideo removes the video, its jobs and its media", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: true });
    const { id, uploadUrl } = await createUpload(t, "to delete");
    const done = collectSubscription(t.wsClient(), EVENTS, { id }).done;
    await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const dir = path.join(t.dataDir, "videos", id);
    expect(existsSync(path.join(dir, "hls", "master.m3u8"))).toBe(true);

    const res = await t.gql(DELETE, { id });
    expect(res.data.deleteVideo).toEqual({ __typename: "DeleteVideoSuccess", deletedVideoId: id });
    expect(existsSync(dir)).toBe(false);
    expect((await t.gql(VIDEO_ID, { id })).data.video).toBeNull();
    expect((await fetch(`${t.url}/media/videos/${id}/hls/master.m3u8`)).status).toBe(404);
    const again = await t.gql(DELETE_AGAIN, { id });
    expect(again.data.deleteVideo.__typename).toBe("NotFoundError");
  });
});
