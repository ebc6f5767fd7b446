import { execFile } from "node:child_process";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Parser } from "m3u8-parser";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload, finalState, uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { expectMeasuredMaster, expectMeasuredVariants, mtimes } from "./support/media-checks.ts";

const run = promisify(execFile);
const VIDEO = graphql(`query($id: ID!) {
  video(id: $id) {
    status
    playbackUrl
    variants { id name status segmentCount error playlistUrl peakBitRate averageBitRate }
    jobs(first: 5) { edges { node { status rungs } } }
  } }`);
const RETRY = graphql(`mutation($id: ID!) {
  retryVariant(id: $id) {
    __typename
    ... on RetryVariantSuccess { variant { name status } video { status } job { status rungs } }
    ... on Error { message }
  } }`);

async function masterUris(hlsDir: string): Promise<string[]> {
  const parser = new Parser();
  parser.push(await readFile(path.join(hlsDir, "master.m3u8"), "utf8"));
  parser.end();
  return (parser.manifest.playlists ?? []).map((p: { uri: string }) => p.uri);
}

describe("retryVariant (public API, real worker)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.stop();
  });

  it.each(["TS", "FMP4"] as const)(
    `a rung storage refuses fails alone; retryVariant re-encodes it alone: other \
rungs' files untouched, full master, video READY (%s)`,
    async (format) => {
      const clip = await makeClip({ width: 640, height: 360, seconds: 6, audio: true });
      const { id, uploadUrl } = await createUpload(t, "retry a rung", { segmentFormat: format });
      const hlsDir = path.join(t.dataDir, "videos", id, "hls");
      // A file where the 240p directory belongs: storage cannot write any 240p object.
      await mkdir(hlsDir, { recursive: true });
      await writeFile(path.join(hlsDir, "240p"), "in the way");
      const first = finalState(t, id);
      expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(200);
      expect((await first).status).toBe("READY");

      const before = (await t.gql(VIDEO, { id })).data.video!;
      const target = before.variants.find((v) => v.name === "240p")!;
      expect(target).toMatchObject({
        status: "FAILED",
        error: expect.stringMatching(/^Publishing the 240p rung failed: /),
      });
      const others = before.variants.filter((v) => v.name !== "240p");
      expect(others.map((v) => [v.name, v.status]).sort()).toEqual([
        ["144p", "READY"],
        ["360p", "READY"],
        ["audio", "READY"],
      ]);
      expect(await masterUris(hlsDir)).toEqual(["360p/index.m3u8", "144p/index.m3u8"]);

      await rm(path.join(hlsDir, "240p"));
      const untouched = new Map<string, Map<string, number>>();
      for (const { name } of others) untouched.set(name, await mtimes(path.join(hlsDir, name)));
      const posterMtime = (await stat(path.join(t.dataDir, "videos", id, "thumbnails", "poster.jpg"))).mtimeMs;

      const retried = (await t.gql(RETRY, { id: target.id })).data.retryVariant;
      expect(retried).toEqual({
        __typename: "RetryVariantSuccess",
        variant: { name: "240p", status: "PENDING" },
        video: { status: "PROCESSING" },
        job: { status: "QUEUED", rungs: ["240p"] },
      });
      const again = (await t.gql(RETRY, { id: target.id })).data.retryVariant;
      expect(again).toEqual({
        __typename: "ValidationError",
        message: expect.stringMatching(/^A retry of this variant is already (queued|running)$/),
      });
      expect((await finalState(t, id)).status).toBe("READY");

      const after = (await t.gql(VIDEO, { id })).data.video!;
      expect(after.jobs.edges.map((e) => [e.node.status, e.node.rungs])).toEqual([
        ["SUCCEEDED", ["240p"]],
        ["SUCCEEDED", []],
      ]);
      for (const v of after.variants) expect(v, v.name).toMatchObject({ status: "READY", error: null });
      const parser = new Parser();
      parser.push(await readFile(path.join(hlsDir, "240p", "index.m3u8"), "utf8"));
      parser.end();
      expect(parser.manifest.endList).toBe(true);
      // 6 s: a 1 s first segment, two of 2 s, and the last second.
      expect(parser.manifest.segments).toHaveLength(4);
      expect(after.variants.find((v) => v.name === "240p")!.segmentCount).toBe(4);
      // An fMP4 segment decodes after its rung's init, as a player reads it.
      const init = format === "FMP4" ? await readFile(path.join(hlsDir, "240p", "init.mp4")) : Buffer.alloc(0);
      for (const segment of parser.manifest.segments) {
        expect(segment.uri).toMatch(format === "FMP4" ? /^seg_\d{5}\.m4s$/ : /^seg_\d{5}\.ts$/);
        const segmentFile = path.join(t.dataDir, "segment-with-init");
        await writeFile(segmentFile, Buffer.concat([init, await readFile(path.join(hlsDir, "240p", segment.uri))]));
        const { stderr } = await run("ffmpeg", ["-v", "error", "-i", segmentFile, "-f", "null", "-"]);
        expect(stderr).toBe("");
      }
      // Only the retried rung was written: every other rung's files and the poster are as they were.
      for (const [name, files] of untouched) expect(await mtimes(path.join(hlsDir, name)), name).toEqual(files);
      expect((await stat(path.join(t.dataDir, "videos", id, "thumbnails", "poster.jpg"))).mtimeMs).toBe(posterMtime);
      expect(await masterUris(hlsDir)).toEqual(["360p/index.m3u8", "240p/index.m3u8", "144p/index.m3u8"]);
      // Its master states what every variant carries: the retried rung measured from this run's
      // bytes, the others (and the audio) from what storage holds for their published segments.
      await expectMeasuredMaster(new URL(after.playbackUrl!, t.url));
      // Each variant's own figures: the retried rung's from this run, the others' from the first.
      await expectMeasuredVariants(t.url, after.variants);
    },
  );

  it(`refuses a variant that is not FAILED, an unknown id, and a retry while the video processes (states set in \
the database)`, async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 2, audio: false });
    const { id } = await uploadAndWait(t, new Uint8Array(await readFile(clip)), "not failed");
    const variant = (await t.gql(VIDEO, { id })).data.video!.variants[0]!;
    expect((await t.gql(RETRY, { id: variant.id })).data.retryVariant).toEqual({
      __typename: "ValidationError",
      message: expect.stringMatching(/READY/),
    });
    expect((await t.gql(RETRY, { id: "00000000-0000-4000-8000-000000000000" })).data.retryVariant.__typename).toBe(
      "NotFoundError",
    );

    const db = new pg.Client({ connectionString: t.database.url });
    await db.connect();
    await db.query(`UPDATE "Variant" SET status = 'FAILED' WHERE id = $1`, [variant.id]);
    await db.query(`UPDATE "Video" SET status = 'PROCESSING' WHERE id = $1`, [id]);
    await db.end();
    expect((await t.gql(RETRY, { id: variant.id })).data.retryVariant).toEqual({
      __typename: "ValidationError",
      message: expect.stringMatching(/PROCESSING/),
    });
  });
});
