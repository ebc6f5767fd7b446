import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { collectSubscription, gqlAt, startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import { createTestDatabase } from "./support/db.ts";
import { expectTypename, graphql } from "./support/graphql.ts";
import { startApiProcess, stopAllProcesses } from "./support/processes.ts";

// The worker renders with the Manim of `npm run setup:manim` (.tools/manim), found without MANIM_BIN.

const RENDER = graphql(`
  mutation($code: String!, $scene: String!, $key: String) {
    renderManim(input: { code: $code, sceneName: $scene, quality: LOW, title: "scene", idempotencyKey: $key }) {
      __typename
      ... on RenderSuccess { video { id status source } }
      ... on ValidationError { field message }
      ... on NoWorkerError { capability message }
    } }`);
const EVENTS = graphql(`
  subscription($id: ID!) { videoEvents(videoId: $id) {
    __typename video { status error }
    ... on RenderProgressEvent { index count percent description renderedCount cachedCount }
  } }`);
const VIDEO = graphql(`
  query($id: ID!) { video(id: $id) { status source duration width height playbackUrl
    variants { name status }
    jobs(first: 5) { edges { node { id kind status capability parent { id kind } runs { workerId status } } } } } }`);

// Shapes, Text, a Transform and MathTex.
const scene = (lastShift: string) => `from manim import *

class Demo(Scene):
    def construct(self):
        square = Square()
        self.play(Create(square), Write(Text("Hi")), run_time=0.5)
        self.play(Transform(square, MathTex(r"\\int_0^1 x\\,dx")), run_time=0.5)
        self.play(square.animate.shift(${lastShift}), run_time=1)
`;

/** Resolves once a worker with `manim` has heartbeated: it advertises it after a test render. */
async function manimWorkerReady(t: TestApp): Promise<void> {
  const deadline = Date.now() + 90_000;
  while ((await t.app.services.db.worker.count({ where: { capabilities: { has: "manim" } } })) === 0) {
    if (Date.now() > deadline) throw new Error("no worker advertised manim within 90 s");
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("renderManim through the public API, with real Manim in the sandbox", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ workerEnv: { WORKER_CAPABILITIES: "cpu,manim" } });
    await manimWorkerReady(t);
  }, 120_000);
  afterAll(() => t?.stop());

  async function renderToEnd(code: string, key?: string) {
    const res = expectTypename((await t.gql(RENDER, { code, scene: "Demo", key })).data.renderManim, "RenderSuccess");
    const events = await collectSubscription(t.wsClient(), EVENTS, { id: res.video.id }).done;
    return { id: res.video.id, events: events.map((e) => e.videoEvents) };
  }

  it(`renders the scene, streams progress per animation before the ladder's, and ends READY \
with a ladder`, async () => {
    const { id, events } = await renderToEnd(scene("RIGHT"));
    expect(events.at(-1)!.video.status).toBe("READY");
    const renderEvents = events.filter((e) => e.__typename === "RenderProgressEvent");
    expect(renderEvents.length).toBeGreaterThan(0);
    const indexes = renderEvents.map((e) => e.index);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(indexes.at(-1)).toBe(2);
    expect(renderEvents.at(-1)).toMatchObject({ count: 3, renderedCount: 3, cachedCount: 0 });
    const firstLadder = events.findIndex(
      (e) => e.__typename === "VariantProgressEvent" || e.__typename === "VariantStatusEvent",
    );
    const lastRender = events.findLastIndex((e) => e.__typename === "RenderProgressEvent");
    expect(firstLadder).toBeGreaterThan(lastRender);

    const video = (await t.gql(VIDEO, { id })).data.video!;
    expect(video).toMatchObject({ status: "READY", source: "MANIM", width: 854, height: 480 });
    expect(video.duration).toBeCloseTo(2, 0);
    expect(video.variants.every((v) => v.status === "READY")).toBe(true);
    const jobs = video.jobs.edges.map((e) => e.node);
    const render = jobs.find((j) => j.kind === "RENDER_MANIM")!;
    const transcode = jobs.find((j) => j.kind === "TRANSCODE");
    expect(render).toMatchObject({ status: "SUCCEEDED", capability: "manim" });
    expect(transcode).toMatchObject({ status: "SUCCEEDED", parent: { id: render.id, kind: "RENDER_MANIM" } });
    expect((await fetch(`${t.url}${video.playbackUrl}`)).status).toBe(200);
  });

  it(`after an edit of the last animation, only that one is rendered again (the tenant's cache \
has the rest)`, async () => {
    const { events } = await renderToEnd(scene("LEFT * 2"));
    expect(events.at(-1)!.video.status).toBe("READY");
    const last = events.filter((e) => e.__typename === "RenderProgressEvent").at(-1);
    expect(last).toMatchObject({ renderedCount: 1, cachedCount: 2 });
  });

  it("a syntax error fails the video with its line number, before any render, and nothing is transcoded", async () => {
    const broken = scene("RIGHT").replace("def construct(self):", "def construct(self)");
    const { id, events } = await renderToEnd(broken);
    expect(events.some((e) => e.__typename === "RenderProgressEvent")).toBe(false);
    const final = events.at(-1)!.video;
    expect(final.status).toBe("FAILED");
    expect(final.error).toMatch(/line 4/);
    const jobs = (await t.gql(VIDEO, { id })).data.video!.jobs.edges.map((e) => e.node);
    expect(jobs.map((j) => [j.kind, j.status])).toEqual([["RENDER_MANIM", "FAILED"]]);
  });

  it(`an exception in construct() and a LaTeX error fail the video once (no retry), naming the line and \
the expression`, async () => {
    const cases = [
      [
        scene("RIGHT").replace("square = Square()", "square = Square(side_length=undefined_name)"),
        /^The scene failed at line 5: NameError: name 'undefined_name' is not defined$/,
      ],
      [
        scene("RIGHT").replace("\\int_0^1", "\\intt_0^1"),
        /^LaTeX error in "\\intt_0\^1 x\\,dx": Undefined control sequence\. \(scene line 7\)$/,
      ],
    ] as const;
    for (const [code, error] of cases) {
      const { id, events } = await renderToEnd(code);
      expect(events.at(-1)!.video).toMatchObject({ status: "FAILED", error: expect.stringMatching(error) });
      const jobs = (await t.gql(VIDEO, { id })).data.video!.jobs.edges.map((e) => e.node);
      expect(jobs).toMatchObject([{ kind: "RENDER_MANIM", status: "FAILED", runs: [{ status: "FAILED" }] }]);
    }
  });

  it("a missing scene class is named; bad input is refused before a video exists", async () => {
    const res = expectTypename(
      (await t.gql(RENDER, { code: scene("RIGHT"), scene: "Nope" })).data.renderManim,
      "RenderSuccess",
    );
    const events = await collectSubscription(t.wsClient(), EVENTS, { id: res.video.id }).done;
    expect(events.at(-1)!.videoEvents.video).toMatchObject({
      status: "FAILED",
      error: "The code has no class named Nope (classes found: Demo)",
    });
    expect((await t.gql(RENDER, { code: "x", scene: "not a class" })).data.renderManim).toMatchObject({
      __typename: "ValidationError",
      field: "sceneName",
    });
    expect((await t.gql(RENDER, { code: "  ", scene: "Demo" })).data.renderManim).toMatchObject({
      __typename: "ValidationError",
      field: "code",
    });
  });

  it("the same idempotency key returns the same video instead of rendering again", async () => {
    const render = async () =>
      expectTypename(
        (await t.gql(RENDER, { code: scene("UP"), scene: "Demo", key: "lesson-7" })).data.renderManim,
        "RenderSuccess",
      ).video.id;
    const a = await render();
    const b = await render();
    expect(b).toBe(a);
    expect(await t.app.services.db.job.count({ where: { videoId: a, kind: "RENDER_MANIM" } })).toBe(1);
  });
});

describe("renderManim with no manim worker alive", () => {
  const JOB = graphql(`
    query($id: ID!) { video(id: $id) { status jobs(first: 5) { edges { node { kind status capability
      dispatchedTo routingReason runs { workerId } } } } } }`);
  const code = scene("DOWN");

  it("answers at once that no worker can render Manim when LOCAL_FALLBACK is off, and creates nothing", async () => {
    const t = await startTestApp({ workerEnv: { WORKER_CAPABILITIES: "cpu,local" } });
    try {
      const res = (await t.gql(RENDER, { code, scene: "Demo" })).data.renderManim;
      expect(res).toEqual({
        __typename: "NoWorkerError",
        capability: "manim",
        message:
          "No worker can render Manim scenes now: no worker with the manim capability has reported in the last 90 " +
          "s, and LOCAL_FALLBACK is off",
      });
      expect(await t.app.services.db.video.count()).toBe(0);
    } finally {
      await t.stop();
    }
  });

  it(`goes to the API's own worker after FALLBACK_AFTER_SECONDS when LOCAL_FALLBACK=true, and the job says \
where it ran`, async () => {
    const t = await startTestApp({
      env: { LOCAL_FALLBACK: "true", FALLBACK_AFTER_SECONDS: "2" },
      workerEnv: { WORKER_CAPABILITIES: "cpu,local" },
    });
    try {
      const id = expectTypename((await t.gql(RENDER, { code, scene: "Demo" })).data.renderManim, "RenderSuccess").video
        .id;
      const events = await collectSubscription(t.wsClient(), EVENTS, { id }).done;
      expect(events.at(-1)!.videoEvents.video.status).toBe("READY");
      const render = (await t.gql(JOB, { id })).data
        .video!.jobs.edges.map((e) => e.node)
        .find((j) => j.kind === "RENDER_MANIM")!;
      expect(render).toMatchObject({
        status: "SUCCEEDED",
        capability: "manim",
        dispatchedTo: "local",
        routingReason: "LOCAL_FALLBACK",
      });
      expect(render.runs).toEqual([{ workerId: expect.stringMatching(/^local-/) }]);
    } finally {
      await t.stop();
    }
  });
});

describe("npm start finds the project's Manim by itself (nothing set: no WORKER_CAPABILITIES, no MANIM_BIN)", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    await stopAllProcesses();
    for (const c of cleanups.reverse()) await c();
  });

  /** `node src/main.ts` with its local worker, as `npm start` runs it, on a database of its own. */
  async function startApi(name: string, env: Record<string, string | undefined>) {
    const db = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(tmpdir(), "videograph-manim-start-"));
    cleanups.push(
      () => db.drop(),
      () => rm(dataDir, { recursive: true, force: true }),
    );
    return startApiProcess(name, {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      LOCAL_WORKER: "true",
      WORKER_CAPABILITIES: undefined,
      WORKER_DETECT_MANIM: undefined,
      MANIM_BIN: undefined,
      ...env,
    });
  }

  it(`a scene sent the moment the API listens is queued while the local worker tests Manim, then renders \
with progress per animation and ends READY`, async () => {
    const api = await startApi("api-manim-detected", {});
    const res = expectTypename(
      (await gqlAt(api.url, RENDER, { code: scene("RIGHT"), scene: "Demo" })).renderManim,
      "RenderSuccess",
    );
    const client = createClient({
      url: `${api.url.replace("http", "ws")}/graphql`,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: ADMIN_AUTH,
    });
    cleanups.push(async () => client.dispose());
    const events = (await collectSubscription(client, EVENTS, { id: res.video.id }).done).map((e) => e.videoEvents);
    expect(events.at(-1)!.video.status).toBe("READY");
    expect(events.filter((e) => e.__typename === "RenderProgressEvent").at(-1)).toMatchObject({ count: 3 });
    expect(api.log()).toContain("a test render with manim succeeded in the sandbox: taking manim jobs");
    expect(await api.stop()).toBe(0);
  }, 240_000);

  it(`with no Manim installed, the local worker says so in one quiet line, serves cpu and local, and \
renderManim answers NoWorkerError at once`, async () => {
    // A MANIM_BIN naming no file: the worker finds no Manim, as on a machine without `npm run setup:manim`.
    const api = await startApi("api-no-manim", { MANIM_BIN: "/nonexistent/manim" });
    const started = Date.now();
    const res = (await gqlAt(api.url, RENDER, { code: scene("RIGHT"), scene: "Demo" })).renderManim;
    // From what the workers registered, not after waiting for one (a worker counts as gone only after
    // 3 × JOB_STALL_SECONDS of silence): the API's first request took up to 2.4 s on a loaded 2-core machine.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(res).toMatchObject({ __typename: "NoWorkerError", capability: "manim" });
    expect(api.log()).toContain("Manim is not installed here");
    expect(api.log()).not.toContain("MANIM IS NOT AVAILABLE");
    expect(api.log()).not.toContain('"severity":"ERROR"');
    expect(await api.stop()).toBe(0);
  }, 120_000);
});
