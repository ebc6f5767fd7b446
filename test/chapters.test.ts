import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_CHAPTER_TITLE_CHARS, MAX_CHAPTERS } from "../src/chapters/chapters.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { createUpload } from "./support/uploads.ts";

// A video's chapters through the public API: set, read, replaced and removed; checked against the
// video's length; served as a WebVTT chapters file (escaped, SIGNED videos behind their token).

const SIGNING_SECRET = "test-signing-secret-test-signing-secret-0123";
const EVENTS = graphql(`subscription($id: ID!) { videoEvents(videoId: $id) { video { status } } }`);
const SET = graphql(`
  mutation($input: SetChaptersInput!) {
    setChapters(input: $input) {
      __typename
      ... on SetChaptersSuccess { video { id chapters { startSeconds endSeconds title } chaptersUrl } }
      ... on ValidationError { message field }
      ... on NotFoundError { message id }
    } }`);
const VIDEO = graphql(`query($id: ID!) { video(id: $id) { duration chapters { startSeconds title } chaptersUrl } }`);

type Chapters = VariablesOf<typeof SET>["input"]["chapters"];

describe("a video's chapters", () => {
  let t: TestApp;
  let clip: Uint8Array<ArrayBuffer>;
  const get = (p: string) => fetch(p.startsWith("http") ? p : `${t.url}${p}`);
  const set = async (videoId: string, chapters: Chapters, authorization?: string) =>
    (await t.gql(SET, { input: { videoId, chapters } }, authorization)).data!.setChapters;

  async function readyVideo(policy: "PUBLIC" | "SIGNED"): Promise<{ id: string; duration: number }> {
    const video = await createUpload(t, `chapters ${policy}`, { playbackPolicy: policy });
    // Before its probe its length is not known: nothing can be checked against it.
    const early = await set(video.id, [{ startSeconds: 0, title: "Intro" }]);
    expect(expectTypename(early, "ValidationError").field).toBe("videoId");
    const done = collectSubscription(t.wsClient(), EVENTS, { id: video.id }).done;
    expect((await fetch(`${t.url}${video.uploadUrl}`, { method: "PUT", body: clip })).status).toBe(200);
    expect((await done).at(-1)!.videoEvents.video.status).toBe("READY");
    const { duration } = (await t.gql(VIDEO, { id: video.id })).data.video!;
    return { id: video.id, duration: duration! };
  }

  beforeAll(async () => {
    t = await startTestApp({ env: { SIGNING_SECRET } });
    clip = new Uint8Array(await readFile(await makeClip({ width: 160, height: 90, seconds: 3, audio: false })));
  });
  afterAll(() => t?.stop());

  it("are set, read with where each ends, served as WebVTT with titles escaped, replaced, and removed", async () => {
    const { id, duration } = await readyVideo("PUBLIC");
    const first = expectTypename(
      await set(id, [
        { startSeconds: 0, title: "  Intro " },
        { startSeconds: 1.2345, title: "Q&A <b>live</b> --> now" },
      ]),
      "SetChaptersSuccess",
    );
    expect(first.video.chapters).toEqual([
      { startSeconds: 0, endSeconds: 1.235, title: "Intro" },
      { startSeconds: 1.235, endSeconds: duration, title: "Q&A <b>live</b> --> now" },
    ]);
    const vtt = await get(first.video.chaptersUrl!);
    expect(vtt.status).toBe(200);
    expect(vtt.headers.get("content-type")).toBe("text/vtt; charset=utf-8");
    const end = new Date(Math.round(duration * 1000)).toISOString().slice(11, 23);
    expect(await vtt.text()).toBe(
      "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.235\nIntro\n\n" +
        `2\n00:00:01.235 --> ${end}\nQ&amp;A &lt;b&gt;live&lt;/b&gt; --&gt; now\n`,
    );

    // Replaced whole: the list and the file; the file before is gone.
    const second = expectTypename(await set(id, [{ startSeconds: 0.5, title: "Only" }]), "SetChaptersSuccess");
    expect(second.video.chapters).toEqual([{ startSeconds: 0.5, endSeconds: duration, title: "Only" }]);
    expect(second.video.chaptersUrl).not.toBe(first.video.chaptersUrl);
    expect((await get(second.video.chaptersUrl!)).status).toBe(200);
    expect((await get(first.video.chaptersUrl!)).status).toBe(404);

    // An empty list removes them.
    const removed = expectTypename(await set(id, []), "SetChaptersSuccess");
    expect(removed.video).toMatchObject({ chapters: [], chaptersUrl: null });
    expect((await get(second.video.chaptersUrl!)).status).toBe(404);
  });

  it("are refused, naming the chapter, when out of order, outside the video, too many or badly titled; nothing changes", async () => {
    const { id, duration } = await readyVideo("PUBLIC");
    const kept = expectTypename(await set(id, [{ startSeconds: 0, title: "Kept" }]), "SetChaptersSuccess");
    const refusals: [Chapters, string][] = [
      [
        [
          { startSeconds: 1, title: "b" },
          { startSeconds: 0.5, title: "a" },
        ],
        "chapters.1.startSeconds",
      ],
      [
        [
          { startSeconds: 1, title: "a" },
          { startSeconds: 1, title: "again" },
        ],
        "chapters.1.startSeconds",
      ],
      [[{ startSeconds: duration, title: "at the end" }], "chapters.0.startSeconds"],
      [[{ startSeconds: -1, title: "before" }], "chapters.0.startSeconds"],
      [[{ startSeconds: 0, title: "   " }], "chapters.0.title"],
      [[{ startSeconds: 0, title: "x".repeat(MAX_CHAPTER_TITLE_CHARS + 1) }], "chapters.0.title"],
      [[{ startSeconds: 0, title: "two\nlines" }], "chapters.0.title"],
      [Array.from({ length: MAX_CHAPTERS + 1 }, (_, i) => ({ startSeconds: i / 100, title: `${i}` })), "chapters"],
    ];
    for (const [chapters, field] of refusals) {
      const refused = expectTypename(await set(id, chapters), "ValidationError");
      expect(refused.field, refused.message).toBe(field);
    }
    // The longest title and the most chapters pass.
    const most = Array.from({ length: MAX_CHAPTERS }, (_, i) => ({
      startSeconds: (i * duration) / (MAX_CHAPTERS + 1),
      title: "é".repeat(MAX_CHAPTER_TITLE_CHARS),
    }));
    expect((await set(id, most)).__typename).toBe("SetChaptersSuccess");
    await set(id, [{ startSeconds: 0, title: "Kept" }]);
    const after = (await t.gql(VIDEO, { id })).data.video!;
    expect(after.chapters).toEqual([{ startSeconds: 0, title: "Kept" }]);
    expect(after.chaptersUrl).not.toBe(kept.video.chaptersUrl);
  });

  it("of a SIGNED video are served with its token only; another tenant neither sets nor sees them; a read-only key cannot set them", async () => {
    const { id } = await readyVideo("SIGNED");
    const done = expectTypename(await set(id, [{ startSeconds: 0, title: "Signed" }]), "SetChaptersSuccess");
    const url = new URL(done.video.chaptersUrl!, t.url);
    expect(url.searchParams.get("token")).toBeTruthy();
    expect((await get(url.href)).status).toBe(200);
    url.searchParams.delete("token");
    expect((await get(url.href)).status).toBe(403);

    const other = `Bearer ${await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b")}`;
    expect((await set(id, [], other)).__typename).toBe("NotFoundError");
    expect((await t.gql(VIDEO, { id }, other)).data.video).toBeNull();
    const reader = `Bearer ${await tenantKeySecret(t.app.services.db, "default", ["videos:read"], "reader")}`;
    const forbidden = await t.gql(SET, { input: { videoId: id, chapters: [] } }, reader);
    expect(forbidden.errors?.[0]?.message).toMatch(/Forbidden/);
    expect((await t.gql(VIDEO, { id })).data.video!.chapters).toEqual([{ startSeconds: 0, title: "Signed" }]);
  });
});
