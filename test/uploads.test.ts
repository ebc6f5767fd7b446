import { ADMIN_AUTH } from "./support/auth.ts";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseContentRange } from "../src/uploads/upload-put.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { expectTypename, graphql, operationText } from "./support/graphql.ts";
import { CREATE_UPLOAD, createUpload } from "./support/uploads.ts";

const STATUS = graphql(`query($id: ID!) { video(id: $id) { status uploadedBytes } }`);
const JOBS = graphql(
  `query($id: ID!) { video(id: $id) { jobs(first: 10) { edges { node { kind status attempt } } } } }`,
);
// Its own createUpload: a fixed idempotencyKey and the maxBytes a repeat answers with.
const REPEAT = graphql(`
  mutation($size: Float) { createUpload(input: { title: "clip", size: $size, idempotencyKey: "cms-42" }) {
    __typename ... on CreateUploadSuccess { uploadUrl maxBytes video { id } } ... on ValidationError { field message }
  } }`);
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { id status } } }`);
const STATUS_EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const UNKNOWN_VIDEO_EVENTS = graphql(
  `subscription { videoEvents(videoId: "00000000-0000-4000-8000-000000000000") { __typename } }`,
);

describe("parseContentRange", () => {
  it("reads chunks, unknown totals and status queries", () => {
    expect(parseContentRange("bytes 0-99/1000")).toEqual({ start: 0, end: 99, total: 1000 });
    expect(parseContentRange("bytes 100-199/*")).toEqual({ start: 100, end: 199, total: null });
    expect(parseContentRange("bytes */1000")).toEqual({ start: null, end: null, total: 1000 });
    expect(parseContentRange(undefined)).toBeNull();
  });
  it("rejects malformed and inverted ranges", () => {
    expect(parseContentRange("bytes 10-5/100")).toBe("invalid");
    expect(parseContentRange("bytes 0-100/100")).toBe("invalid");
    expect(parseContentRange("items 0-1/2")).toBe("invalid");
  });
});

// No worker here: these tests stop at the point where a video is queued.
describe("resumable upload URL", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false, env: { MAX_UPLOAD_BYTES: "1000" } });
  });
  afterAll(() => t.stop());

  async function newUpload(title = "clip") {
    const res = await t.gql(CREATE_UPLOAD, { input: { title } });
    expect(res.errors).toBeUndefined();
    return expectTypename(res.data.createUpload, "CreateUploadSuccess");
  }
  const put = (url: string, body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string> = {}) =>
    fetch(`${t.url}${url}`, { method: "PUT", body, headers });
  const status = async (id: string) => (await t.gql(STATUS, { id })).data.video!;

  it("createUpload validates its input", async () => {
    const res = await t.gql(CREATE_UPLOAD, { input: { title: "   " } });
    expect(res.data.createUpload).toEqual({ __typename: "ValidationError", message: "A title is required" });
  });

  it(`a repeated createUpload with the same idempotencyKey returns the same video and URL; with another size it is \
refused on size`, async () => {
    const first = expectTypename((await t.gql(REPEAT, { size: 300 })).data.createUpload, "CreateUploadSuccess");
    // The same upload: its video, size and nonce; the URL is signed anew, so its expiry is counted from
    // this call (the same URL when both fall in one second).
    const sameUpload = (answer: any) => {
      const url = new URL(answer.uploadUrl, "http://api");
      const expires = Number(url.searchParams.get("expires"));
      url.searchParams.delete("expires");
      url.searchParams.delete("sig");
      return { ...answer, uploadUrl: `${url.pathname}${url.search}`, expires };
    };
    const { expires: firstExpires, ...firstUpload } = sameUpload(first);
    const again = sameUpload((await t.gql(REPEAT, { size: 300 })).data.createUpload);
    expect(again).toEqual({ ...firstUpload, expires: expect.any(Number) });
    expect(again.expires).toBeGreaterThanOrEqual(firstExpires);
    // No size: the same upload, whose URL still takes exactly the declared 300 bytes.
    expect(sameUpload((await t.gql(REPEAT, {})).data.createUpload)).toEqual({
      ...firstUpload,
      expires: expect.any(Number),
    });
    expect((await t.gql(REPEAT, { size: 500 })).data.createUpload).toEqual({
      __typename: "ValidationError",
      field: "size",
      message: "This idempotencyKey's upload was created with size 300; a repeated call sends the same size (or none)",
    });
    expect((await put(first.uploadUrl, new Uint8Array(500))).status).toBe(413);
  });

  it("takes chunks, reports where to resume, and queues the video after the last byte", async () => {
    const upload = await newUpload();
    expect(upload.video.status).toBe("WAITING_FOR_UPLOAD");
    expect(upload.uploadUrl).toMatch(/^\/uploads\/[0-9a-f-]{36}\?max=1000&n=[\w-]+&expires=\d+&sig=/);
    const body = new Uint8Array(300).map((_, i) => i % 256);

    let res = await put(upload.uploadUrl, body.slice(0, 100), { "content-range": "bytes 0-99/300" });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe("bytes=0-99");

    // A chunk that skips ahead is refused with where to resume.
    res = await put(upload.uploadUrl, body.slice(200), { "content-range": "bytes 200-299/300" });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe("bytes=0-99");

    res = await put(upload.uploadUrl, "", { "content-range": "bytes */300" });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe("bytes=0-99");
    expect(await status(upload.video.id)).toEqual({ status: "WAITING_FOR_UPLOAD", uploadedBytes: 100 });

    // Re-sending an overlapping chunk after a lost response is fine.
    res = await put(upload.uploadUrl, body.slice(50, 200), { "content-range": "bytes 50-199/300" });
    expect(res.status).toBe(308);
    expect(res.headers.get("range")).toBe("bytes=0-199");

    res = await put(upload.uploadUrl, body.slice(200), { "content-range": "bytes 200-299/300" });
    expect(res.status).toBe(200);
    expect(await status(upload.video.id)).toEqual({ status: "QUEUED", uploadedBytes: 300 });
    const { readFile } = await import("node:fs/promises");
    const stored = await readFile(`${t.dataDir}/videos/${upload.video.id}/source/upload`);
    expect(Buffer.compare(stored, Buffer.from(body))).toBe(0);

    res = await put(upload.uploadUrl, body);
    expect(res.status).toBe(409);
    const jobs = (await t.gql(JOBS, { id: upload.video.id })).data.video!.jobs.edges;
    expect(jobs).toEqual([{ node: { kind: "TRANSCODE", status: "QUEUED", attempt: 1 } }]);
  });

  it("refuses a zero-byte upload and keeps the video waiting for a real one", async () => {
    const upload = await newUpload();
    const res = await put(upload.uploadUrl, new Uint8Array(0));
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/empty/);
    expect((await status(upload.video.id)).status).toBe("WAITING_FOR_UPLOAD");
  });

  it("refuses files past MAX_UPLOAD_BYTES, declared or sent", async () => {
    const upload = await newUpload();
    let res = await put(upload.uploadUrl, new Uint8Array(10), { "content-range": "bytes 0-9/5000" });
    expect(res.status).toBe(413);
    res = await put(upload.uploadUrl, new Uint8Array(1001));
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/limit of 1000 bytes/);
    expect((await status(upload.video.id)).status).toBe("WAITING_FOR_UPLOAD");
  });

  it("refuses tampered and expired URLs", async () => {
    const upload = await newUpload();
    const other = await newUpload();
    const tampered = upload.uploadUrl.replace(upload.video.id, other.video.id);
    expect((await put(tampered, "x")).status).toBe(403);
    const expired = upload.uploadUrl.replace(/expires=\d+/, "expires=1000");
    expect((await put(expired, "x")).status).toBe(403);
    expect((await put(upload.uploadUrl.replace(/sig=[^&]+/, ""), "x")).status).toBe(403);
  });

  it("answers GET /health", async () => {
    const res = await fetch(`${t.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });
});

describe("transports for GraphQL", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ worker: false });
  });
  afterAll(() => t.stop());

  it("streams videoEvents over SSE, starting with the current state", async () => {
    const { id } = await createUpload(t, "sse");
    const controller = new AbortController();
    const res = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...ADMIN_AUTH },
      body: JSON.stringify({
        query: operationText(EVENTS),
        variables: { id },
      }),
      signal: controller.signal,
    });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("\n\n") || !text.includes("data:"))
      text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const data = JSON.parse(/data: (.*)/.exec(text)![1]!);
    expect(data).toEqual({
      data: { videoEvents: { __typename: "VideoStatusEvent", video: { id, status: "WAITING_FOR_UPLOAD" } } },
    });
  });

  it("a subscription catches up after the fan-out connection drops (events missed meanwhile)", async () => {
    const { id } = await createUpload(t, "resync");
    const sub = collectSubscription(t.wsClient(), STATUS_EVENTS, { id });
    await expect.poll(() => sub.events.length).toBe(1);
    const admin = new pg.Client({ connectionString: t.database.url });
    await admin.connect();
    try {
      // A change whose NOTIFY this instance never got (written straight to the table), then the LISTEN
      // connection drops: the reconnection's re-read must find it. (In this order, not the reverse: the
      // fan-out reconnects within 250 ms, which a loaded machine could let pass before the UPDATE.)
      await admin.query(`UPDATE "Video" SET status = 'CANCELED', "updatedAt" = now() WHERE id = $1`, [id]);
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = ` +
          `'LISTEN videograph_events'`,
      );
      expect(rowCount).toBe(1);
    } finally {
      await admin.end();
    }
    const events = await sub.done;
    expect(events.map((e) => e.videoEvents.video.status)).toEqual(["WAITING_FOR_UPLOAD", "CANCELED"]);
  });

  it("answers an unknown video on the subscription with NOT_FOUND", async () => {
    const client = t.wsClient();
    const err = await new Promise<any>((resolve) => {
      client.subscribe(
        { query: operationText(UNKNOWN_VIDEO_EVENTS) },
        { next: (m) => resolve(m.errors), error: resolve, complete: () => resolve("completed") },
      );
    });
    expect(err[0].extensions.code).toBe("NOT_FOUND");
  });

  it("serves GraphiQL to browsers", async () => {
    const res = await fetch(`${t.url}/graphql`, { headers: { accept: "text/html" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/graphiql/i);
  });
});
