import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../src/db/client.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { frameIndices } from "./support/frames.ts";
import { makeFrameCounterClip } from "./support/media-fixtures.ts";
import { createUpload } from "./support/uploads.ts";

/**
 * One video on two workers (CHUNK_SECONDS): a real API and two real worker processes on Postgres
 * and local storage. The upload's transcode is split into three chunks: the first run encodes the
 * first and the audio, chunk jobs the rest, the API lists them; the published HLS plays every source
 * frame once and in order across the joins, in TS and fMP4; progress only grows.
 */
describe("split transcodes on two workers", () => {
  let t: TestApp;
  let db: Db;
  let clip: Buffer;

  beforeAll(async () => {
    // 12 s at 25 fps, 2 s segments after a 1 s first one: chunks of segments [0,2), then one
    // segment each (a run of one segment has no cut; the last is the source's last second).
    clip = await readFile(await makeFrameCounterClip(12));
    t = await startTestApp({ env: { CHUNK_SECONDS: "2", FIRST_CHUNK_SECONDS: "2" }, workers: 2 });
    db = createDb(t.database.url);
    // A transcode is split only while two cpu workers are alive: wait for both heartbeats.
    for (let i = 0; (await db.worker.count({ where: { capabilities: { has: "cpu" } } })) < 2; i++) {
      if (i > 300) throw new Error("the two workers did not heartbeat within 30 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);
  afterAll(async () => {
    await db?.$disconnect();
    await t?.stop();
  });

  type Event = {
    videoEvents: {
      __typename: string;
      video: { status: string; playable: boolean; transcodeChunks: { total: number; done: number } | null };
      variant?: { name: string; status: string; progress: number } | null;
    };
  };
  const EVENTS = /* GraphQL */ `
    subscription ($id: ID!) {
      videoEvents(videoId: $id) {
        __typename
        video { status playable transcodeChunks { total done } }
        ... on VariantProgressEvent { variant { name status progress } }
        ... on VariantStatusEvent { variant { name status progress } }
      } }`;
  const VIDEO = /* GraphQL */ `
    query ($id: ID!) {
      video(id: $id) {
        status playbackUrl transcodeChunks { total done }
        variants { name kind status segmentCount playlistUrl }
        jobs(first: 10) { edges { node { kind status parent { id } chunk { index fromSegment toSegment } } } }
      } }`;

  for (const segmentFormat of ["TS", "FMP4"] as const) {
    it(`${segmentFormat}: splits, lists the chunks in order and plays every frame once across the joins`, async () => {
      const { id, uploadUrl } = await createUpload(t, `split ${segmentFormat}`, { segmentFormat });
      const events = collectSubscription<Event>(t.wsClient(), EVENTS, { id });
      expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: new Uint8Array(clip) })).status).toBe(200);
      const seen = await events.done;
      expect(seen.at(-1)!.videoEvents.video.status).toBe("READY");

      // Progress over the whole video only grows, however the chunks' runs interleave.
      const last = new Map<string, number>();
      for (const { videoEvents: e } of seen) {
        if (!e.variant) continue;
        expect(e.variant.progress, `${e.variant.name} went back`).toBeGreaterThanOrEqual(last.get(e.variant.name) ?? 0);
        last.set(e.variant.name, e.variant.progress);
      }

      const { data, errors } = await t.gql(VIDEO, { id });
      expect(errors).toBeUndefined();
      const video = data.video;
      expect(video.transcodeChunks).toEqual({ total: 6, done: 6 });
      // Chunks done only grow, up to all six by READY.
      const done = seen.flatMap(({ videoEvents: e }) =>
        e.video.transcodeChunks ? [e.video.transcodeChunks.done] : [],
      );
      expect(done).toEqual([...done].sort((a, b) => a - b));
      expect(seen.at(-1)!.videoEvents.video.transcodeChunks).toEqual({ total: 6, done: 6 });
      const jobs = video.jobs.edges.map((e: { node: unknown }) => e.node) as {
        kind: string;
        status: string;
        parent: { id: string } | null;
        chunk: { index: number; fromSegment: number; toSegment: number } | null;
      }[];
      const chunkJobs = jobs
        .filter((j) => j.kind === "TRANSCODE_CHUNK")
        .sort((a, b) => a.chunk!.index - b.chunk!.index);
      expect(chunkJobs.map((j) => [j.status, j.chunk])).toEqual([
        ["SUCCEEDED", { index: 1, fromSegment: 2, toSegment: 3 }],
        ["SUCCEEDED", { index: 2, fromSegment: 3, toSegment: 4 }],
        ["SUCCEEDED", { index: 3, fromSegment: 4, toSegment: 5 }],
        ["SUCCEEDED", { index: 4, fromSegment: 5, toSegment: 6 }],
        ["SUCCEEDED", { index: 5, fromSegment: 6, toSegment: 7 }],
      ]);
      expect(jobs.find((j) => j.kind === "TRANSCODE")?.status).toBe("SUCCEEDED");

      const videoRungs = video.variants.filter((v: { kind: string }) => v.kind === "VIDEO");
      expect(videoRungs.map((v: { name: string }) => v.name)).toEqual(["360p", "240p", "144p"]);
      for (const rung of video.variants) {
        expect([rung.name, rung.status, rung.segmentCount]).toEqual([rung.name, "READY", 7]);
        const playlist = await (await fetch(new URL(rung.playlistUrl, t.url))).text();
        expect(playlist).toContain("#EXT-X-ENDLIST");
        const uris = playlist.split("\n").filter((line) => line.startsWith("seg_"));
        const ext = segmentFormat === "FMP4" ? "m4s" : "ts";
        expect(uris).toEqual([0, 1, 2, 3, 4, 5, 6].map((n) => `seg_0000${n}.${ext}`));
      }
      // The top and the bottom rung, decoded through the API as a player reads them.
      for (const rung of [videoRungs[0], videoRungs.at(-1)]) {
        const frames = await frameIndices(new URL(rung.playlistUrl, t.url).href);
        expect(frames).toEqual(Array.from({ length: 300 }, (_, i) => i));
      }
    }, 120_000);
  }
});
