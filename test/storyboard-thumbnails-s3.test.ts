import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { startMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) {
    storyboard { vttUrl sheetUrls tileCount }
    thumbnailUrl(time: 2, width: 160)
  } }`);

describe("storyboards and thumbnails with STORAGE=s3 (moto), a SIGNED video", () => {
  let moto: MotoS3;
  let t: TestApp;
  let video: { storyboard: { vttUrl: string; sheetUrls: string[]; tileCount: number }; thumbnailUrl: string };
  const absolute = (p: string) => (p.startsWith("http") ? p : `${t.url}${p}`);

  beforeAll(async () => {
    moto = await startMotoS3();
    const env = await moto.createBucket();
    t = await startTestApp({ env, workerEnv: env });
    const clip = await makeClip({ width: 320, height: 180, seconds: 4, audio: false });
    const created = await createUpload(t, "s3", { playbackPolicy: "SIGNED" });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    const put = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(put.status).toBe(200);
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    // READY: the storyboard is made and the thumbnail URL given.
    const read = (await t.gql(VIDEO, { id: created.id })).data.video!;
    video = { storyboard: read.storyboard!, thumbnailUrl: read.thumbnailUrl! };
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("serves the VTT from the API with its sheets named by signed bucket URLs", async () => {
    expect(video.storyboard.vttUrl).toMatch(/^\/media\/videos\/[\w-]+\/storyboard\/storyboard\.vtt\?token=/);
    const unsigned = new URL(absolute(video.storyboard.vttUrl));
    unsigned.searchParams.delete("token");
    expect((await fetch(unsigned)).status).toBe(403);
    const vtt = await (await fetch(absolute(video.storyboard.vttUrl))).text();
    const uris = [...vtt.matchAll(/^(.+)#xywh=\d+,\d+,\d+,\d+$/gm)].map((m) => m[1]!);
    expect(uris).toHaveLength(video.storyboard.tileCount);
    expect(uris[0]).toMatch(new RegExp(`^${moto.endpoint}/.+/storyboard/sheet-0\\.jpg\\?.*X-Amz-Signature=`));
    const sheet = await fetch(uris[0]!);
    expect(sheet.status).toBe(200);
    expect(sheet.headers.get("content-type")).toBe("image/jpeg");
    expect(video.storyboard.sheetUrls[0]).toMatch(/X-Amz-Signature=/);
  });

  it("makes a thumbnail from the bucket's segments, caches it there and redirects to it", async () => {
    const first = await fetch(absolute(video.thumbnailUrl), { redirect: "manual" });
    expect(first.status).toBe(302);
    expect(first.headers.get("x-image-cache")).toBe("miss");
    const location = first.headers.get("location")!;
    expect(location).toMatch(/\/thumbnails\/at\/2000-w160\.jpg\?.*X-Amz-Signature=/);
    const image = await fetch(location);
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/jpeg");
    expect((await image.arrayBuffer()).byteLength).toBeGreaterThan(500);
    const second = await fetch(absolute(video.thumbnailUrl), { redirect: "manual" });
    expect(second.status).toBe(302);
    expect(second.headers.get("x-image-cache")).toBe("hit");
  });
});
