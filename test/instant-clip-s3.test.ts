import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, type TestApp } from "./support/app.ts";
import { startAppOnMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { graphql } from "./support/graphql.ts";
import { createUpload } from "./support/uploads.ts";

const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const URLS = graphql(`query($id: ID!) { video(id: $id) { playbackUrl } }`);

describe("instant clips with STORAGE=s3 (moto, presigned segment URLs)", () => {
  let moto: MotoS3;
  let t: TestApp;
  let stop = async () => {};
  beforeAll(async () => {
    ({ t, moto, stop } = await startAppOnMotoS3());
  });
  afterAll(() => stop());

  it("a SIGNED video's clip lists the range's segments as presigned bucket URLs, its playlists with the token", async () => {
    const clip = await makeClip({ width: 320, height: 180, seconds: 6, audio: false });
    const created = await createUpload(t, "s3 clip source", { playbackPolicy: "SIGNED" });
    const done = collectSubscription(t.wsClient(), EVENTS, { id: created.id }).done;
    const put = await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) });
    expect(put.status).toBe(200);
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const { playbackUrl } = (await t.gql(URLS, { id: created.id })).data.video!;

    const masterUrl = `${t.url}${playbackUrl}&asset_start_time=1.5&asset_end_time=4`;
    const master = await fetch(masterUrl);
    expect(master.status).toBe(200);
    const child = (await master.text()).split("\n").find((l) => l && !l.startsWith("#"))!;
    expect(child).toMatch(/index\.m3u8\?asset_start_time=1\.5&asset_end_time=4&token=s\./);

    const rung = await fetch(new URL(child, masterUrl));
    expect(rung.status).toBe(200);
    const text = await rung.text();
    // Segments 0 [0,1), 1 [1,3), 2 [3,5), 3 [5,6): the range 1.5–4 is segments 1 and 2.
    expect(text).toContain("#EXT-X-MEDIA-SEQUENCE:1\n");
    expect(text).toContain("#EXT-X-ENDLIST");
    const segments = text.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(segments.map((s) => new URL(s).pathname.split("/").at(-1))).toEqual(["seg_00001.ts", "seg_00002.ts"]);
    for (const segment of segments) {
      expect(new URL(segment).origin).toBe(moto.endpoint);
      const res = await fetch(segment);
      expect(res.status).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }

    const bad = await fetch(`${t.url}${playbackUrl}&asset_start_time=4&asset_end_time=1.5`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/asset_end_time must be after asset_start_time/);
    const beyond = await fetch(`${t.url}${playbackUrl}&asset_start_time=6`);
    expect(beyond.status).toBe(400);
    expect(await beyond.text()).toMatch(/not before the video's end/);
  });
});
