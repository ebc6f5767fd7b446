import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { graphql, type ResultOf } from "./support/graphql.ts";
import { finalState, createUpload } from "./support/uploads.ts";
import { fixturesDir, makeClip } from "./support/media-fixtures.ts";
import { heldFfmpeg } from "./support/held-ffmpeg.ts";

const VIDEO_POSITION = graphql(`fragment VideoPosition on Video {
      id status
      queuePosition { queue position jobsAhead slots estimatedStartSeconds estimatedStartAt }
      jobs(first: 5) { edges { node { id status queuePosition { position } cost { estimatedUsd estimateBasis } } } }
    }`);
const POSITION = graphql(`query($id: ID!) { video(id: $id) { ...VideoPosition } }`, [VIDEO_POSITION]);
// Tenant A's three in one request.
const POSITIONS_OF_THREE = graphql(
  `query($a2: ID!, $a3: ID!, $a4: ID!) { a2: video(id: $a2) { ...VideoPosition } \
a3: video(id: $a3) { ...VideoPosition } a4: video(id: $a4) { ...VideoPosition } }`,
  [VIDEO_POSITION],
);
const COSTS = graphql(`
  query($id: ID!) {
    video(id: $id) {
      status
      cost { jobCount estimatedUsd actualUsd cpuSeconds }
      jobs(first: 5) { edges { node { id kind status finishedAt cost {
        estimatedUsd estimateBasis actualUsd cpuSeconds wallSeconds rungs { name estimatedUsd actualUsd }
      } } } }
    } }`);
const SUMMARY = graphql(`
  query($from: DateTime!, $to: DateTime!) { costSummary(from: $from, to: $to) { jobCount estimatedUsd actualUsd } }`);
const EVENTS = graphql(`
  subscription($id: ID!) {
    videoEvents(videoId: $id) {
      __typename video { id status }
      ... on QueuePositionEvent { position { queue position jobsAhead estimatedStartSeconds } }
    } }`);

/** The place in line an event of EVENTS says: a QueuePositionEvent's, none for another event. */
const placeOf = (e: ResultOf<typeof EVENTS>["videoEvents"]) =>
  e.__typename === "QueuePositionEvent" ? e.position.position : undefined;

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const closeTo = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
const until = async (what: string, check: () => Promise<boolean>, ms = 120_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

describe("queue positions and job costs through the public API (one worker, concurrency 1)", () => {
  let t: TestApp;
  /** The worker's ffmpeg: a job's runs can be held before they start (test/support/held-ffmpeg.ts). */
  let ffmpeg: Awaited<ReturnType<typeof heldFfmpeg>>;
  let authB: string;
  /** Tenant A's viewer: reads videos, may not see costs. */
  let viewerA: string;
  const startedAt = new Date();

  /** Uploads `clip`; with `held`, its encode waits (test/support/held-ffmpeg.ts) until released. */
  async function upload(title: string, clip: string, authorization?: string, held = false): Promise<string> {
    const created = await createUpload(t, title, {}, authorization);
    if (held) await ffmpeg.hold(created.id);
    const res = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(res.status).toBe(200);
    return created.id;
  }
  const position = async (id: string, authorization?: string) =>
    (await t.gql(POSITION, { id }, authorization)).data.video!;

  beforeAll(async () => {
    ffmpeg = await heldFfmpeg(fixturesDir());
    t = await startTestApp({ workerEnv: { FFMPEG_PATH: ffmpeg.path } });
    const db = t.app.services.db;
    authB = `Bearer ${await tenantKeySecret(db, "tenant-b", ["videos:read", "videos:write", "jobs:admin"], "b")}`;
    viewerA = `Bearer ${await tenantKeySecret(db, "default", ["videos:read"], "viewer")}`;
  });
  afterAll(async () => {
    await ffmpeg?.releaseAll();
    await t?.stop();
  });

  it("numbers the waiting jobs 1..n with growing estimates, moves them up as the first ends, prices every job", {
    timeout: 300_000,
  }, async () => {
    // a1 keeps the one worker slot busy while the others queue behind it: its encode is held until
    // their places were read, whatever the machine's speed.
    const long = await makeClip({ width: 640, height: 360, seconds: 8, audio: true });
    const short = await makeClip({ width: 320, height: 180, seconds: 3, audio: true });
    const a1 = await upload("a1", long, undefined, true);
    // Running and probed: its estimate no longer jumps from the upload's size to the probe's while the
    // queue's places are read.
    await until("a1 running and probed", async () => {
      const a1Now = await position(a1);
      const job = a1Now.jobs.edges[0];
      return a1Now.status === "PROCESSING" && job !== undefined && job.node.cost!.estimateBasis === "PROBE";
    });
    const a2 = await upload("a2", short);
    const a3 = await upload("a3", short);
    const b1 = await upload("b1", short, authB);
    const a4 = await upload("a4", short);
    // Tenant B follows the third video in line.
    const followB1 = collectSubscription(t.wsClient(authB), EVENTS, { id: b1 });

    // Tenant A's three in one request: a request reads each queue once, so their estimates come from
    // one reading (the running job's remaining time moves between readings as it encodes, by more
    // than a short clip's run on a loaded machine).
    const ofA = (await t.gql(POSITIONS_OF_THREE, { a2, a3, a4 })).data;
    const [p2, p3, p4] = [ofA.a2!, ofA.a3!, ofA.a4!];
    const pb1 = await position(b1, authB);
    expect((await position(a1)).queuePosition).toBeNull();
    const positions = [p2.queuePosition!, p3.queuePosition!, pb1.queuePosition!, p4.queuePosition!];
    expect(positions.map((p) => p.position)).toEqual([1, 2, 3, 4]);
    expect(positions.map((p) => p.jobsAhead)).toEqual([0, 1, 2, 3]);
    for (const p of positions) {
      expect(p.queue).toBe("cpu");
      expect(p.slots).toBe(1);
      expect(p.estimatedStartSeconds).toBeGreaterThanOrEqual(0);
    }
    const starts = [p2, p3, p4].map((p) => p.queuePosition!.estimatedStartSeconds);
    for (let i = 1; i < starts.length; i++) expect(starts[i]).toBeGreaterThan(starts[i - 1]!);
    // The job's own field says the same, and the estimate is there from enqueue on (the source is not probed yet).
    const queuedJob = p3.jobs.edges[0]!.node;
    expect(queuedJob.status).toBe("QUEUED");
    expect(queuedJob.queuePosition!.position).toBe(2);
    expect(queuedJob.cost!.estimatedUsd).toBeGreaterThan(0);
    expect(queuedJob.cost!.estimateBasis).toBe("UPLOAD_SIZE");

    // Tenant B sees its place among every tenant's jobs, and nothing that names tenant A's.
    const idsOfA = [a1, a2, a3, a4, ...[p2, p3, p4].map((p) => p.jobs.edges[0]!.node.id)];
    const rawB = JSON.stringify(await t.gql(POSITION, { id: b1 }, authB));
    for (const id of idsOfA) expect(rawB).not.toContain(id);
    expect((await t.gql(POSITION, { id: a2 }, authB)).data.video).toBeNull();
    // A viewer sees the place in line, not what it costs.
    const asViewer = await t.gql(POSITION, { id: a3 }, viewerA);
    expect(asViewer.data.video!.queuePosition!.position).toBeGreaterThanOrEqual(1);
    expect(asViewer.data.video!.jobs.edges[0]!.node.cost).toBeNull();
    expect(asViewer.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");

    // When the first job ends and the next starts, the third in line hears it moved up to second.
    // a2's encode is held in turn, until b1 heard it: a2 stays running and a3 first in line however
    // late the API applies the worker's events (on a loaded machine they came seconds late, in one
    // batch after a2 and a3, short clips, had both ended, and b1 heard no place at all).
    await ffmpeg.hold(a2);
    await ffmpeg.release(a1);
    await until("b1 moving up to second", async () =>
      followB1.events.some((e) => e.videoEvents.video.id === b1 && placeOf(e.videoEvents) === 2),
    ).catch((err: Error) => {
      const seen = followB1.events.map((e) => placeOf(e.videoEvents) ?? e.videoEvents.video.status);
      throw new Error(`${err.message}; b1's events said: ${JSON.stringify(seen)}`);
    });
    // a3 is first in line now.
    expect((await position(a3)).queuePosition!.position).toBe(1);
    await ffmpeg.release(a2);
    expect(followB1.events.every((e) => e.videoEvents.video.id === b1)).toBe(true);

    for (const id of [a1, a2, a3, a4]) expect((await finalState(t, id)).status).toBe("READY");
    expect((await finalState(t, b1, authB)).status).toBe("READY");
    const subscribed = await followB1.done;
    expect(subscribed.at(-1)!.videoEvents.video.status).toBe("READY");

    // Costs: estimated, then measured, per job and per rung.
    const jobsOf = async (id: string, authorization?: string) => {
      const video = (await t.gql(COSTS, { id }, authorization)).data.video!;
      return { video, jobs: video.jobs.edges.map((e) => e.node) };
    };
    const finished: { finishedAt: number; actualUsd: number; estimatedUsd: number }[] = [];
    for (const id of [a1, a2, a3, a4]) {
      const { video, jobs } = await jobsOf(id);
      expect(jobs).toHaveLength(1);
      const cost = jobs[0]!.cost!;
      const finishedAt = jobs[0]!.finishedAt!;
      expect(cost.estimateBasis).toBe("PROBE");
      expect(cost.estimatedUsd).toBeGreaterThan(0);
      expect(cost.cpuSeconds).toBeGreaterThan(0);
      expect(cost.wallSeconds).toBeGreaterThan(0);
      expect(cost.actualUsd).toBeGreaterThan(0);
      // 360p and 180p sources: video rungs and the audio rung.
      expect(cost.rungs.length).toBeGreaterThanOrEqual(3);
      expect(closeTo(sum(cost.rungs.map((r) => r.actualUsd!)), cost.actualUsd!)).toBe(true);
      expect(closeTo(sum(cost.rungs.map((r) => r.estimatedUsd!)), cost.estimatedUsd!)).toBe(true);
      expect(video.cost!.jobCount).toBe(1);
      expect(closeTo(video.cost!.actualUsd, cost.actualUsd!)).toBe(true);
      finished.push({
        finishedAt: Date.parse(finishedAt),
        actualUsd: cost.actualUsd!,
        estimatedUsd: cost.estimatedUsd!,
      });
    }
    // The long clip used more CPU than a short one.
    const cpuOf = async (id: string) => (await jobsOf(id)).jobs[0]!.cost!.cpuSeconds!;
    expect(await cpuOf(a1)).toBeGreaterThan(await cpuOf(a2));
    const b1Cost = (await jobsOf(b1, authB)).jobs[0]!.cost!;
    expect(b1Cost.actualUsd).toBeGreaterThan(0);

    // Summed per tenant over a period: only its own jobs, only those that finished inside it.
    const now = new Date(Date.now() + 1000).toISOString();
    const summary = async (from: string, to: string, authorization?: string) =>
      (await t.gql(SUMMARY, { from, to }, authorization)).data.costSummary;
    const allA = await summary(startedAt.toISOString(), now);
    expect(allA.jobCount).toBe(4);
    expect(closeTo(allA.actualUsd, sum(finished.map((f) => f.actualUsd)))).toBe(true);
    expect(closeTo(allA.estimatedUsd, sum(finished.map((f) => f.estimatedUsd)))).toBe(true);
    const allB = await summary(startedAt.toISOString(), now, authB);
    expect(allB.jobCount).toBe(1);
    expect(closeTo(allB.actualUsd, b1Cost.actualUsd!)).toBe(true);
    const firstEnd = Math.min(...finished.map((f) => f.finishedAt));
    const later = await summary(new Date(firstEnd + 1).toISOString(), now);
    const laterJobs = finished.filter((f) => f.finishedAt > firstEnd);
    expect(later.jobCount).toBe(laterJobs.length);
    expect(closeTo(later.actualUsd, sum(laterJobs.map((f) => f.actualUsd)))).toBe(true);
    const before = await summary(new Date(startedAt.getTime() - 3_600_000).toISOString(), startedAt.toISOString());
    expect(before).toEqual({ jobCount: 0, estimatedUsd: 0, actualUsd: 0 });
    const backwards = await t.gql(SUMMARY, { from: now, to: startedAt.toISOString() });
    expect(backwards.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const summaryAsViewer = await t.gql(SUMMARY, { from: startedAt.toISOString(), to: now }, viewerA);
    expect(summaryAsViewer.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});
