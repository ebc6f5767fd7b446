import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, ensureTenant } from "../src/auth/api-keys.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { uploadAsset } from "./support/uploads.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";
import { makeAudioOnly, makeClip } from "./support/media-fixtures.ts";

const COMPOSE = graphql(`
  mutation($input: RenderCompositionInput!) {
    renderComposition(input: $input) {
      __typename
      ... on RenderSuccess { video { id status source } }
      ... on ValidationError { field message }
    } }`);
const FROM_URL = graphql(`
  mutation($url: String!) {
    createVideoFromUrl(input: { url: $url, title: "imported" }) {
      __typename
      ... on RenderSuccess { video { id status source } }
      ... on ValidationError { field message }
    } }`);
const EVENTS = graphql(`
  subscription($id: ID!) { videoEvents(videoId: $id) {
    __typename video { status error }
    ... on RenderProgressEvent { index count percent description }
  } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { status source duration width height hasAudio variants { name
    status } jobs(first: 5) { edges { node { kind status parent { kind } } } } } }`);
const QUESTIONS = [
  { question: "2 + 2 = ?", choices: ["3", "4", "5"], answerIndex: 1 },
  { question: "Capital of France?", choices: ["Paris", "Lyon"], answerIndex: 0 },
  { question: 'Which is "quoted": 100%?', choices: ["a:b", "c\\d", "e"], answerIndex: 2 },
];

async function untilEnd(t: TestApp, id: string) {
  return (await collectSubscription(t.wsClient(), EVENTS, { id }).done).map((e) => e.videoEvents);
}

describe("renderComposition and createVideoFromUrl through the public API", () => {
  let t: TestApp;
  let files: Server;
  let filesUrl: string;
  let clipBytes: Buffer;

  beforeAll(async () => {
    t = await startTestApp({ env: { URL_IMPORT_ALLOW_PRIVATE: "true" } });
    clipBytes = await readFile(await makeClip({ width: 320, height: 180, seconds: 2, audio: true }));
    // A local file server standing in for a CMS's public media host (loopback allowed by the test-only setting).
    files = createServer((req, res) => {
      if (req.url === "/clip.mp4") {
        res.writeHead(200, { "content-type": "video/mp4", "content-length": clipBytes.length });
        res.end(clipBytes);
      } else {
        res.writeHead(404);
        res.end("no");
      }
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise((r) => files?.close(r));
  });

  it(`a three-question narrated quiz with the tenant's assets renders, streams progress per question, \
and ends READY`, async () => {
    const background = await uploadAsset(
      t,
      await readFile(await makeClip({ width: 320, height: 180, seconds: 1, audio: false })),
      "1.mp4",
      "video/mp4",
      "BACKGROUND",
    );
    const ding = await uploadAsset(t, await readFile(await makeAudioOnly(1)), "ding.m4a", "audio/mp4", "CORRECT_SOUND");
    const backgroundAsset = expectTypename(background, "UploadAssetSuccess").asset;
    const dingAsset = expectTypename(ding, "UploadAssetSuccess").asset;
    const res = (
      await t.gql(COMPOSE, {
        input: {
          template: "QUIZ",
          questions: QUESTIONS,
          secondsPerQuestion: 2,
          voice: "en-us",
          width: 640,
          height: 360,
          title: "quiz",
          backgroundAssetId: backgroundAsset.id,
          correctSoundAssetId: dingAsset.id,
        },
      })
    ).data.renderComposition;
    expect(res).toMatchObject({ __typename: "RenderSuccess", video: { status: "QUEUED", source: "COMPOSITION" } });
    const { video: rendered } = expectTypename(res, "RenderSuccess");
    const events = await untilEnd(t, rendered.id);
    expect(events.at(-1)!.video.status).toBe("READY");
    const progress = events.filter((e) => e.__typename === "RenderProgressEvent");
    expect(new Set(progress.map((e) => e.index))).toEqual(new Set([0, 1, 2]));
    expect(progress.every((e) => e.count === 3)).toBe(true);
    expect(progress.find((e) => e.index === 2)!.description).toContain('Which is "quoted": 100%?');
    const lastRender = events.findLastIndex((e) => e.__typename === "RenderProgressEvent");
    expect(
      events.findIndex((e) => e.__typename === "VariantProgressEvent" || e.__typename === "VariantStatusEvent"),
    ).toBeGreaterThan(lastRender);

    const video = (await t.gql(VIDEO, { id: rendered.id })).data.video!;
    expect(video).toMatchObject({ status: "READY", source: "COMPOSITION", width: 640, height: 360, hasAudio: true });
    // 3 × (2 s of question + 3 s of answer reveal).
    expect(video.duration).toBeCloseTo(15, 0);
    expect(video.jobs.edges.map((e) => [e.node.kind, e.node.status, e.node.parent?.kind ?? null]).sort()).toEqual([
      ["RENDER_COMPOSITION", "SUCCEEDED", null],
      ["TRANSCODE", "SUCCEEDED", "RENDER_COMPOSITION"],
    ]);
  });

  it(`refuses bad questions, CSV rows, assets of the wrong kind or tenant, and bad settings before \
anything is queued`, async () => {
    const base = { template: "QUIZ" as const, title: "q" };
    const cases: [VariablesOf<typeof COMPOSE>["input"], string, RegExp][] = [
      [{ ...base }, "questions", /either as `questions` or as `csv`/],
      [
        { ...base, questions: [{ question: "?", choices: ["a"], answerIndex: 0 }] },
        "questions[0].choices",
        /Question 1/,
      ],
      [
        { ...base, questions: [{ question: "?", choices: ["a", "b"], answerIndex: 5 }] },
        "questions[0].answerIndex",
        /Question 1/,
      ],
      [
        { ...base, csv: "question,choice1,choice2,choice3,choice4,answer\nOk?,yes,no,,,A\nBroken?,only one,,,,Z\n" },
        "csv",
        /row 3/i,
      ],
      [{ ...base, questions: QUESTIONS, secondsPerQuestion: 500 }, "secondsPerQuestion", /secondsPerQuestion/],
      [{ ...base, questions: QUESTIONS, voice: "en us; rm -rf" }, "voice", /voice/],
      [
        { ...base, questions: QUESTIONS, backgroundAssetId: "00000000-0000-4000-8000-000000000000" },
        "backgroundAssetId",
        /No asset/,
      ],
    ];
    for (const [input, field, message] of cases) {
      const res = (await t.gql(COMPOSE, { input })).data.renderComposition;
      expect(res, JSON.stringify(input)).toMatchObject({ __typename: "ValidationError", field });
      expect(expectTypename(res, "ValidationError").message).toMatch(message);
    }
    const sound = await uploadAsset(t, await readFile(await makeAudioOnly(1)), "s.m4a", "audio/mp4", "CORRECT_SOUND");
    const soundId = expectTypename(sound, "UploadAssetSuccess").asset.id;
    const wrongKind = (await t.gql(COMPOSE, { input: { ...base, questions: QUESTIONS, backgroundAssetId: soundId } }))
      .data.renderComposition;
    expect(wrongKind).toMatchObject({
      __typename: "ValidationError",
      field: "backgroundAssetId",
      message: expect.stringMatching(/CORRECT_SOUND/),
    });
    const notVideo = await uploadAsset(t, new TextEncoder().encode("hello"), "x.txt", "text/plain", "BACKGROUND");
    expect(notVideo).toMatchObject({ __typename: "ValidationError", field: "file" });

    const other = await ensureTenant(t.app.services.db, "composer-b");
    const keyB = (await createApiKey(t.app.services.db, { tenantId: other.id, name: "b", scopes: ["videos:write"] }))
      .secret;
    const foreign = (
      await t.gql(COMPOSE, { input: { ...base, questions: QUESTIONS, correctSoundAssetId: soundId } }, `Bearer ${keyB}`)
    ).data.renderComposition;
    expect(foreign).toMatchObject({
      __typename: "ValidationError",
      field: "correctSoundAssetId",
      message: expect.stringMatching(/No asset/),
    });
    expect(await t.app.services.db.job.count({ where: { kind: "RENDER_COMPOSITION" } })).toBe(1);
  });

  it("accepts the questions as CSV", async () => {
    const csv = 'question,choice1,choice2,choice3,choice4,answer\n"Largest planet?",Jupiter,Mars,,,A\n';
    const res = (
      await t.gql(COMPOSE, {
        input: { template: "QUIZ", csv, secondsPerQuestion: 1, width: 320, height: 240, title: "csv" },
      })
    ).data.renderComposition;
    expect((await untilEnd(t, expectTypename(res, "RenderSuccess").video.id)).at(-1)!.video.status).toBe("READY");
  });

  it("createVideoFromUrl imports a file from a server and ends READY; bad URLs are refused at once", async () => {
    const res = (await t.gql(FROM_URL, { url: `${filesUrl}/clip.mp4` })).data.createVideoFromUrl;
    expect(res).toMatchObject({ __typename: "RenderSuccess", video: { source: "URL" } });
    const { video: imported } = expectTypename(res, "RenderSuccess");
    expect((await untilEnd(t, imported.id)).at(-1)!.video.status).toBe("READY");
    const video = (await t.gql(VIDEO, { id: imported.id })).data.video!;
    expect(video).toMatchObject({ width: 320, height: 180, hasAudio: true });
    expect(video.jobs.edges.map((e) => e.node.kind).sort()).toEqual(["IMPORT_URL", "TRANSCODE"]);

    const missing = (await t.gql(FROM_URL, { url: `${filesUrl}/nope.mp4` })).data.createVideoFromUrl;
    const failed = (await untilEnd(t, expectTypename(missing, "RenderSuccess").video.id)).at(-1)!.video;
    expect(failed).toMatchObject({ status: "FAILED", error: expect.stringMatching(/404/) });

    for (const url of [
      "ftp://example.com/a.mp4",
      "file:///etc/passwd",
      "not a url",
      "http://user:pw@example.com/a.mp4",
    ]) {
      expect((await t.gql(FROM_URL, { url })).data.createVideoFromUrl, url).toMatchObject({
        __typename: "ValidationError",
        field: "url",
      });
    }
  });
});

describe("createVideoFromUrl refuses private addresses (without the test-only setting)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.stop());

  it("a loopback, private or link-local literal is refused at creation: no video, no job, no points spent on a download", async () => {
    for (const url of [
      "http://127.0.0.1:9/clip.mp4",
      "http://10.0.0.7/clip.mp4",
      "http://[::1]/clip.mp4",
      "http://[::ffff:7f00:1]/clip.mp4",
      "http://169.254.169.254/latest/meta-data/",
      "http://0x7f.1/clip.mp4",
    ]) {
      const res = (await t.gql(FROM_URL, { url })).data.createVideoFromUrl;
      expect(res, url).toMatchObject({ __typename: "ValidationError", field: "url" });
      expect(expectTypename(res, "ValidationError").message, url).toMatch(/is not a public address/);
    }
    expect(await t.app.services.db.video.count({ where: { source: "URL" } })).toBe(0);
  });

  it("a host name that resolves to loopback ends FAILED without naming the address; nothing fetched", async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end("x");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      // Names are checked by the worker after DNS resolution (a name may point elsewhere by then).
      const url = `http://localhost:${(server.address() as AddressInfo).port}/clip.mp4`;
      const res = (await t.gql(FROM_URL, { url })).data.createVideoFromUrl;
      const final = (await untilEnd(t, expectTypename(res, "RenderSuccess").video.id)).at(-1)!.video;
      expect(final).toMatchObject({
        status: "FAILED",
        error: expect.stringMatching(/refused: localhost is not a public address/),
      });
      expect(final.error).not.toMatch(/127\.0\.0\.1|::1/);
      expect(hits).toBe(0);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
