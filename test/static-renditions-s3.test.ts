import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "./support/app.ts";
import { startAppOnMotoS3, type MotoS3 } from "./support/moto-s3.ts";
import { graphql, type ResultOf } from "./support/graphql.ts";
import { finalState, createUpload } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const RENDITIONS = graphql(`
  query($id: ID!) { video(id: $id) { staticRenditions { name status sizeBytes url downloadUrl } } }`);
type Rendition = NonNullable<ResultOf<typeof RENDITIONS>["video"]>["staticRenditions"][number];

describe("static renditions with STORAGE=s3 (moto's S3 server, real worker)", () => {
  let moto: MotoS3;
  let t: TestApp;
  let stop = async () => {};
  beforeAll(async () => {
    ({ t, moto, stop } = await startAppOnMotoS3());
  });
  afterAll(() => stop());

  it("a SIGNED video's rendition is a presigned bucket URL that answers Range; its download URL names the file", async () => {
    const clip = await makeClip({ width: 320, height: 240, seconds: 2, audio: true });
    const input = { title: "Ünïcode / talk", playbackPolicy: "SIGNED" as const, staticRenditions: ["LOW" as const] };
    const created = await createUpload(t, input.title, input);
    const id = created.id;
    const final = finalState(t, id);
    expect((await fetch(`${t.url}${created.uploadUrl}`, { method: "PUT", body: await readFile(clip) })).status).toBe(
      200,
    );
    expect((await final).status).toBe("READY");
    let low: Rendition;
    const deadline = Date.now() + 60_000;
    for (;;) {
      low = (await t.gql(RENDITIONS, { id })).data.video!.staticRenditions[0]!;
      if (low.status !== "PREPARING" || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(low.status).toBe("READY");
    // READY: its URLs are given.
    const url = new URL(low.url!);
    expect(url.origin).toBe(moto.endpoint);
    expect(url.pathname).toMatch(new RegExp(`/videos/${id}/mp4/low\\.mp4$`));
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    const ranged = await fetch(low.url!, { headers: { range: "bytes=0-15" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 0-15/${low.sizeBytes}`);
    expect(Buffer.from(await ranged.arrayBuffer()).toString("latin1", 4, 8)).toBe("ftyp");

    const download = await fetch(low.downloadUrl!);
    expect(download.status).toBe(200);
    expect(download.headers.get("content-disposition")).toBe('attachment; filename="Unicode-talk-low.mp4"');
    expect((await download.arrayBuffer()).byteLength).toBe(low.sizeBytes);
  });
});
