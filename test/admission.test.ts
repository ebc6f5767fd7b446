import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { uploadAndWait } from "./support/upload-and-wait.ts";
import { makeClip } from "./worker/media-fixtures.ts";

// 400 MiB for jobs, minus the worker's own 150 MiB: a 320x180 source (estimated 240 MiB) fits,
// a 640x360 one (284 MiB) never can.
describe("a worker never starts an encode its memory cannot hold (public API, real worker)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ workerEnv: { WORKER_MEMORY_LIMIT_BYTES: String(400 * 1024 * 1024) } });
  });
  afterAll(() => t.stop());

  it("encodes a source that fits and fails one that never can, with the reason", async () => {
    const small = await uploadAndWait(t, new Uint8Array(await readFile(await makeClip({ width: 320, height: 180, seconds: 2, audio: false }))));
    expect(small.status).toBe("READY");
    const big = await uploadAndWait(t, new Uint8Array(await readFile(await makeClip({ width: 640, height: 360, seconds: 2, audio: false }))));
    expect(big.status).toBe("FAILED");
    expect(big.error).toMatch(/needs about 284 MiB to encode; workers have 250 MiB/);
    const jobs = (await t.gql(`query($id: ID!) { video(id: $id) { jobs(first: 1) { edges { node { status attempt } } } } }`, { id: big.id })).data.video.jobs.edges;
    expect(jobs[0].node).toEqual({ status: "FAILED", attempt: 1 });
  });
});
