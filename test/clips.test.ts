import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { greyFrames, sourceFrameShown } from "./support/frames.ts";
import { createUpload, uploadAndWait } from "./support/uploads.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";

const CREATE_CLIP = graphql(`
  mutation($input: CreateClipInput!) {
    createClip(input: $input) {
      __typename
      ... on CreateClipSuccess { video { id title status source playbackPolicy } }
      ... on Error { message }
      ... on ValidationError { field }
      ... on NotFoundError { id }
      ... on SourceUnavailableError { sourceVideoId }
    } }`);
const EVENTS = graphql(`
  subscription($id: ID!) { videoEvents(videoId: $id) {
    __typename video { status playable }
    ... on VideoStatusEvent { status }
  } }`);
const CLIP = graphql(`
  query($id: ID!) { video(id: $id) {
    status duration source error playbackUrl variants { name }
    clip { start end sourceVideo { id } }
  } }`);
const REQUEST_LOW = graphql(
  `mutation($id: ID!) { requestStaticRenditions(videoId: $id, names: [LOW]) { __typename } }`,
);

describe("createClip: a new video cut frame-accurately from a range of a READY video (real worker)", () => {
  let t: TestApp;
  let sourceFile: string;
  let sourceId: string;
  let keyB: string;
  const createClip = (input: VariablesOf<typeof CREATE_CLIP>["input"], authorization?: string) =>
    t.gql(CREATE_CLIP, { input }, authorization).then((r) => {
      expect(r.errors).toBeUndefined();
      return r.data.createClip;
    });
  /** Follows a video's events to its end; the event kinds seen and the final video. */
  async function follow(id: string) {
    const events = await collectSubscription(t.wsClient(), EVENTS, { id }).done;
    const statuses = events.flatMap(({ videoEvents: e }) => (e.__typename === "VideoStatusEvent" ? [e.status] : []));
    return {
      kinds: new Set(events.map((e) => e.videoEvents.__typename)),
      statuses,
      last: events.at(-1)!.videoEvents.video,
    };
  }

  beforeAll(async () => {
    t = await startTestApp();
    const db = t.app.services.db;
    keyB = `Bearer ${await tenantKeySecret(db, "tenant-b", ["videos:read", "videos:write"], "b")}`;
    sourceFile = await makeClip({ width: 320, height: 180, seconds: 6, audio: true });
    const source = await uploadAndWait(t, await readFile(sourceFile), "the source");
    expect(source.status).toBe("READY");
    sourceId = source.id;
  });
  afterAll(() => t?.stop());

  it("goes READY through the usual events, lasting the range; its frames are the range's", async () => {
    const created = expectTypename(
      await createClip({ sourceVideoId: sourceId, start: 1.3, end: 4.1 }),
      "CreateClipSuccess",
    );
    expect(created).toMatchObject({
      __typename: "CreateClipSuccess",
      video: { title: "the source (clip)", source: "CLIP", playbackPolicy: "PUBLIC" },
    });
    // Its transcode is priced at once, from the source's probe and the clip's length.
    const queued = await t.app.services.db.job.findFirstOrThrow({ where: { videoId: created.video.id } });
    expect(queued).toMatchObject({ kind: "TRANSCODE", estimateBasis: "PROBE" });
    expect(queued.estimatedCostUsd).toBeGreaterThan(0);
    expect(queued.estimatedCpuSeconds).toBeGreaterThan(0);
    const { kinds, statuses, last } = await follow(created.video.id);
    expect(last).toMatchObject({ status: "READY", playable: true });
    // Queued (or already processing) when the subscription started, then the usual way to READY.
    expect(statuses.at(-1)).toBe("READY");
    expect(statuses).toContain("PROCESSING");
    expect(kinds).toContain("VariantStatusEvent");

    const clip = (await t.gql(CLIP, { id: created.video.id })).data.video!;
    expect(clip).toMatchObject({ status: "READY", source: "CLIP", clip: { start: 1.3, end: 4.1 } });
    expect(clip.clip!.sourceVideo!.id).toBe(sourceId);
    // 25 fps: frames 33 (1.32 s) to 102 (4.08 s), 70 frames, 2.8 s.
    expect(Math.abs(clip.duration! - 2.8)).toBeLessThanOrEqual(1 / 25);
    const rung = clip.variants.find((v) => v.name !== "audio")!.name;
    const playlist = path.join(t.dataDir, "videos", created.video.id, "hls", rung, "index.m3u8");
    const frames = await greyFrames(playlist, 100_000);
    expect(frames.length).toBe(70);
    expect(await sourceFrameShown(frames[0]!, sourceFile, 33)).toBe(33);
    expect(await sourceFrameShown(frames.at(-1)!, sourceFile, 102)).toBe(102);
    const audio = path.join(t.dataDir, "videos", created.video.id, "hls", "audio", "index.m3u8");
    const seconds = [...(await readFile(audio, "utf8")).matchAll(/^#EXTINF:([\d.]+)/gm)].map((m) => Number(m[1]));
    expect(Math.abs(seconds.reduce((a, b) => a + b, 0) - 2.8)).toBeLessThan(0.05);
    // The clip plays at its own playback URL.
    expect((await fetch(`${t.url}${clip.playbackUrl}`)).status).toBe(200);
    // Static renditions asked for later are priced too (a remux of the chosen rung).
    const asked = await t.gql(REQUEST_LOW, { id: created.video.id });
    expect(asked.data.requestStaticRenditions.__typename).toBe("RequestStaticRenditionsSuccess");
    const remux = await t.app.services.db.job.findFirstOrThrow({
      where: { videoId: created.video.id, kind: "STATIC_RENDITIONS" },
    });
    expect(remux).toMatchObject({ estimateBasis: "PROBE" });
    expect(remux.estimatedCostUsd).toBeGreaterThan(0);

    // A clip of the clip is cut from the same stored source, its range moved by the first clip's start.
    const again = expectTypename(
      await createClip({ sourceVideoId: created.video.id, start: 0.5, end: 1.5, title: "second" }),
      "CreateClipSuccess",
    );
    expect(again.video.title).toBe("second");
    expect((await follow(again.video.id)).last.status).toBe("READY");
    const second = (await t.gql(CLIP, { id: again.video.id })).data.video!;
    expect(second.clip).toEqual({ start: 1.8, end: 2.8, sourceVideo: { id: sourceId } });
    expect(Math.abs(second.duration! - 1)).toBeLessThanOrEqual(1 / 25);
  });

  it("refuses bad ranges with a ValidationError naming the field", async () => {
    for (const [start, end, field] of [
      [-1, 2, "start"],
      [2, 2, "end"],
      [3, 1, "end"],
      [1, 1.05, "end"],
      [0, 6.5, "end"],
      [6, 7, "start"],
      [100, 200, "start"],
    ] as const) {
      const result = await createClip({ sourceVideoId: sourceId, start, end });
      expect(result, `${start}–${end}`).toMatchObject({ __typename: "ValidationError", field });
    }
    // GraphQL refuses what is not a finite number before the resolver runs (a string where a Float goes, on purpose).
    const nan = await t.gql(CREATE_CLIP, { input: { sourceVideoId: sourceId, start: "NaN" as never, end: 2 } });
    expect(nan.errors?.[0]?.message).toMatch(/Float/);
    const title = await createClip({ sourceVideoId: sourceId, start: 0, end: 1, title: " " });
    expect(title).toMatchObject({ __typename: "ValidationError", field: "title" });
  });

  it("another tenant's video is not found, exactly like a missing one", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    const theirs = await createClip({ sourceVideoId: sourceId, start: 0, end: 1 }, keyB);
    const none = await createClip({ sourceVideoId: missing, start: 0, end: 1 }, keyB);
    expect(theirs).toEqual({ __typename: "NotFoundError", id: sourceId, message: `No video with id "${sourceId}"` });
    expect(none).toEqual({ __typename: "NotFoundError", id: missing, message: `No video with id "${missing}"` });
    expect(await createClip({ sourceVideoId: "not-a-uuid", start: 0, end: 1 })).toMatchObject({
      __typename: "NotFoundError",
    });
    // Nothing was created for tenant B.
    const count = await t.app.services.db.video.count({ where: { source: "CLIP", tenant: { name: "tenant-b" } } });
    expect(count).toBe(0);
  });

  it("a video that is not READY, or whose source file is gone, cannot be clipped", async () => {
    const waiting = await createUpload(t, "no file yet");
    expect(await createClip({ sourceVideoId: waiting.id, start: 0, end: 1 })).toMatchObject({
      __typename: "SourceUnavailableError",
      sourceVideoId: waiting.id,
      message: expect.stringMatching(/waiting for upload: only a READY video can be clipped/),
    });

    const short = await uploadAndWait(
      t,
      await readFile(await makeClip({ width: 160, height: 90, seconds: 2, audio: false })),
    );
    expect(short.status).toBe("READY");
    await rm(path.join(t.dataDir, "videos", short.id, "source"), { recursive: true });
    expect(await createClip({ sourceVideoId: short.id, start: 0, end: 1 })).toMatchObject({
      __typename: "SourceUnavailableError",
      message: expect.stringMatching(/source file is no longer stored/),
    });
  });
});
