import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { uploadClipAndCheckLadder } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

describe("upload → decode-once HLS ladder → live progress (public API, real worker, Postgres transport)", () => {
  let t: TestApp;
  let clip: string;
  beforeAll(async () => {
    t = await startTestApp();
    clip = await makeClip({ width: 1280, height: 720, seconds: 8, audio: true });
  });
  afterAll(() => t.stop());

  it("takes an 8-second 720p clip to READY, playable before READY, with progress per variant", async () => {
    await uploadClipAndCheckLadder(t, clip);
  });
});
