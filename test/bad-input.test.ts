import { ADMIN_AUTH } from "./support/auth.ts";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, type GraphqlAnswer, graphql, operationText, type ResultOf } from "./support/graphql.ts";
import { trickleBody } from "./support/trickled-body.ts";
import { finalState, uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";

const UPLOAD_VIDEO = graphql(`
  mutation($file: File!, $title: String) {
    uploadVideo(file: $file, title: $title) {
      __typename
      ... on UploadVideoSuccess { video { id status } }
      ... on FileTooLargeError { maxBytes }
      ... on Error { message }
    } }`);
const TITLES_AND_STATUSES = graphql(`{ videos(first: 20) { edges { node { title status } } } }`);
const VIDEO_OF_A_BAD_ID = graphql(`{ video(id: "not-a-uuid") { id } }`);

/** Sends a file with the GraphQL multipart request spec, as a server-side CMS would. */
async function multipartUpload(t: TestApp, bytes: Uint8Array<ArrayBuffer>, name: string, title?: string) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query: operationText(UPLOAD_VIDEO), variables: { file: null, title } }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", new Blob([bytes]), name);
  return fetch(`${t.url}/graphql`, { method: "POST", body: form, headers: ADMIN_AUTH });
}

describe("bad input gets a clear answer and loses nothing", () => {
  let t: TestApp;
  let goodClip: Buffer;
  beforeAll(async () => {
    t = await startTestApp({
      env: { MULTIPART_MAX_BYTES: String(3 * 1024 * 1024), MAX_UPLOAD_BYTES: String(1024 * 1024) },
    });
    goodClip = await readFile(await makeClip({ width: 320, height: 180, seconds: 3, audio: true }));
  });
  afterAll(() => t.stop());

  it("a file that is not video ends FAILED with a readable reason", async () => {
    const final = await uploadAndWait(
      t,
      new TextEncoder().encode("This is a shopping list, not a video.\n".repeat(50)),
    );
    expect(final.status).toBe("FAILED");
    expect(final.error).toMatch(/not a video/i);
    expect(final.playable).toBe(false);
  });

  it("a truncated file ends FAILED with a readable reason", async () => {
    const final = await uploadAndWait(t, new Uint8Array(goodClip.subarray(0, Math.floor(goodClip.length / 3))));
    expect(final.status).toBe("FAILED");
    expect(final.error).toMatch(/not a video|truncated|incomplete|no video/i);
  });

  it("uploadVideo refuses an empty file and a file over the limit, with typed errors", async () => {
    let body = await (await multipartUpload(t, new Uint8Array(0), "empty.mp4")).json();
    expect(body.data.uploadVideo).toMatchObject({
      __typename: "ValidationError",
      message: expect.stringMatching(/empty/),
    });

    body = await (await multipartUpload(t, new Uint8Array(1024 * 1024 + 1), "big.mp4")).json();
    expect(body.data.uploadVideo).toEqual({
      __typename: "FileTooLargeError",
      maxBytes: 1024 * 1024,
      message: expect.stringMatching(/limit/),
    });

    // Past MULTIPART_MAX_BYTES the request is refused before it is read into memory.
    const res = await multipartUpload(t, new Uint8Array(3 * 1024 * 1024 + 1), "huge.mp4");
    expect(res.status).toBe(413);
    body = await res.json();
    expect(body.errors[0].message).toMatch(/MULTIPART_MAX_BYTES|createUpload/);
  });

  it("keeps serving: afterwards a good file sent with uploadVideo reaches READY", async () => {
    const res = await multipartUpload(t, new Uint8Array(goodClip), "good.mp4", "good one");
    const body = (await res.json()) as GraphqlAnswer<ResultOf<typeof UPLOAD_VIDEO>>;
    const id = expectTypename(body.data.uploadVideo, "UploadVideoSuccess").video.id;
    expect(await finalState(t, id)).toMatchObject({ status: "READY", playable: true, error: null });

    // The failed videos stayed failed and nothing else changed state.
    const list = (await t.gql(TITLES_AND_STATUSES)).data.videos.edges.map((e) => e.node);
    expect(list.filter((v) => v.status === "FAILED")).toHaveLength(2);
    expect(list.filter((v) => v.status === "READY")).toEqual([{ title: "good one", status: "READY" }]);
  });

  it("refuses an oversized GraphQL request before reading it", async () => {
    // A string, not a `graphql` document: a raw request made oversized at run time (a 1 MiB comment).
    const query = `{ videos(first: 1) { edges { node { id } } } } #${"x".repeat(1024 * 1024)}`;
    const res = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...ADMIN_AUTH },
      body: JSON.stringify({ query }),
    });
    expect(res.status).toBe(413);
    expect((await res.json()).errors[0].message).toMatch(/GRAPHQL_MAX_BODY_BYTES/);
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });

  it(`cuts off a body that keeps arriving after any route's answer (health, a media file, a page), about 5 s \
after it, instead of reading it for as long as the client sends`, async () => {
    // Each declares 32 MiB and sends 64 KiB every 100 ms, side by side: 50 s of body, were it read to its end.
    const sent = await Promise.all(
      ["POST /health", "GET /media/videos/none/hls/master.m3u8", "PUT /"].map((request) => {
        const [method, target] = request.split(" ") as [string, string];
        return trickleBody(method, new URL(target, t.url));
      }),
    );
    for (const [i, outcome] of sent.entries()) {
      expect(outcome.statusLine, `request ${i}`).toMatch(/^HTTP\/1\.1 [2-5]\d\d /);
      expect(
        outcome.cutAfterAnswerMs,
        `request ${i}: the server still read the body 15 s after its answer`,
      ).not.toBeNull();
      // REFUSED_BODY_LINGER_MS (5 s) after the answer, with room for a loaded machine.
      expect(outcome.cutAfterAnswerMs, `request ${i}`).toBeGreaterThan(3_000);
      expect(outcome.cutAfterAnswerMs, `request ${i}`).toBeLessThan(9_000);
    }
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });

  it("answers a malformed GraphQL request with an error, not a crash", async () => {
    const res = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...ADMIN_AUTH },
      body: "{ not json",
    });
    expect(res.status).toBe(400);
    const res2 = await t.gql(VIDEO_OF_A_BAD_ID);
    expect(res2).toEqual({ data: { video: null } });
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});
