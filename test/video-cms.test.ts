import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listenToEventFanOut } from "./support/db.ts";
import { collectSubscription, startTestApp, type TestApp } from "./support/app.ts";
import { tenantKeySecret } from "./support/auth.ts";
import { expectTypename, graphql, type VariablesOf } from "./support/graphql.ts";
import { makeClip } from "./support/media-fixtures.ts";
import { pacedFfmpeg } from "./support/paced-ffmpeg.ts";
import { createUpload } from "./support/uploads.ts";

const CMS_FIELDS = graphql(`fragment CmsFields on Video { title description externalId tags metadata { key value } }`);
// Not the shared CREATE_UPLOAD (support/uploads.ts): this checks the CMS fields createUpload answers with.
const CREATE_UPLOAD = graphql(
  `
  mutation($input: CreateUploadInput!) {
    createUpload(input: $input) {
      __typename
      ... on CreateUploadSuccess { uploadUrl video { id ...CmsFields } }
      ... on ValidationError { field message }
    } }`,
  [CMS_FIELDS],
);
const FROM_URL = graphql(
  `
  mutation($input: CreateVideoFromUrlInput!) {
    createVideoFromUrl(input: $input) {
      __typename
      ... on RenderSuccess { video { id source ...CmsFields } }
      ... on ValidationError { field message }
    } }`,
  [CMS_FIELDS],
);
const UPDATE = graphql(
  `
  mutation($input: UpdateVideoInput!) {
    updateVideo(input: $input) {
      __typename
      ... on UpdateVideoSuccess { video { id ...CmsFields } }
      ... on ValidationError { field message }
      ... on NotFoundError { id }
    } }`,
  [CMS_FIELDS],
);
const VIDEO = graphql(`query($id: ID!) { video(id: $id) { id ...CmsFields } }`, [CMS_FIELDS]);
const COUNT = graphql(`{ videos(first: 100) { edges { node { id } } } }`);
const BY_EXTERNAL_ID = graphql(`{ videos(filter: { externalId: "cms-race" }) { edges { node { id } } } }`);
const CREATE_WEBHOOK_ENDPOINT = graphql(
  `mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { __typename } }`,
);
const CMS_EVENTS = graphql(
  `subscription($id: ID!) { videoEvents(videoId: $id) { __typename video { status externalId tags metadata { key value } } } }`,
);
const CANCEL = graphql(`mutation($id: ID!) { cancelVideo(id: $id) { __typename } }`);
/** The CMS fields every create mutation and updateVideo take. */
type CmsInput = Partial<
  Pick<VariablesOf<typeof CREATE_UPLOAD>["input"], "title" | "description" | "externalId" | "tags" | "metadata">
>;

const entries = (metadata: Record<string, string>) => Object.entries(metadata).map(([key, value]) => ({ key, value }));

/** A URL no worker can fetch: the import fails later, the video and its data are made at once. */
const UNREACHABLE = "https://media.example.invalid/lecture.mp4";

describe("CMS data on videos (description, metadata, tags, externalId) through the public API", () => {
  let t: TestApp;
  let keyB: string;

  beforeAll(async () => {
    // Every refused create is charged too: 18 refusals × 4 mutations pass the default 300 points a minute.
    t = await startTestApp({ worker: false, env: { RATE_LIMIT_MUTATIONS_PER_MINUTE: "100000" } });
    keyB = `Bearer ${await tenantKeySecret(t.app.services.db, "tenant-b", ["videos:read", "videos:write"], "b")}`;
  });
  afterAll(() => t?.stop());

  it("createUpload and createVideoFromUrl store them; tags are normalized and deduplicated, metadata read by key", async () => {
    const chosen = {
      description: "Week 1.\nAlgebra, with examples.",
      metadata: entries({ lang: "en", course: "alg-101", "cms:rev": "7" }),
      tags: [" Lecture ", "MATH", "lecture", "Mathé"],
    };
    const upload = expectTypename(
      (await t.gql(CREATE_UPLOAD, { input: { title: "Lecture 1", externalId: "cms-item-1", ...chosen } })).data
        .createUpload,
      "CreateUploadSuccess",
    );
    const expected = {
      title: "Lecture 1",
      description: "Week 1.\nAlgebra, with examples.",
      externalId: "cms-item-1",
      tags: ["lecture", "math", "mathé"],
      metadata: [
        { key: "cms:rev", value: "7" },
        { key: "course", value: "alg-101" },
        { key: "lang", value: "en" },
      ],
    };
    expect(upload.video).toMatchObject(expected);
    expect((await t.gql(VIDEO, { id: upload.video.id })).data.video).toMatchObject(expected);

    const imported = expectTypename(
      (await t.gql(FROM_URL, { input: { url: UNREACHABLE, title: "Imported", externalId: "cms-item-2", ...chosen } }))
        .data.createVideoFromUrl,
      "RenderSuccess",
    );
    expect(imported.video).toMatchObject({ ...expected, title: "Imported", externalId: "cms-item-2", source: "URL" });

    // Left out: none of them.
    const plain = expectTypename(
      (await t.gql(CREATE_UPLOAD, { input: { title: "plain" } })).data.createUpload,
      "CreateUploadSuccess",
    ).video;
    expect(plain).toMatchObject({ description: null, externalId: null, tags: [], metadata: [] });
  });

  it("updateVideo changes what it is given, keeps the rest, clears with null; another tenant's video is not found", async () => {
    const { id } = await createUpload(t, "before", {
      description: "old",
      metadata: entries({ a: "1", b: "2" }),
      tags: ["x"],
      externalId: "upd-1",
    });
    const changed = expectTypename(
      (await t.gql(UPDATE, { input: { id, title: "after", metadata: entries({ c: "3" }) } })).data.updateVideo,
      "UpdateVideoSuccess",
    );
    expect(changed.video).toMatchObject({
      title: "after",
      description: "old",
      externalId: "upd-1",
      tags: ["x"],
      metadata: [{ key: "c", value: "3" }],
    });
    const cleared = expectTypename(
      (await t.gql(UPDATE, { input: { id, description: null, metadata: null, tags: null, externalId: null } })).data
        .updateVideo,
      "UpdateVideoSuccess",
    );
    expect(cleared.video).toMatchObject({
      title: "after",
      description: null,
      externalId: null,
      tags: [],
      metadata: [],
    });
    expect((await t.gql(VIDEO, { id })).data.video).toMatchObject(cleared.video);

    const noTitle = (await t.gql(UPDATE, { input: { id, title: null } })).data.updateVideo;
    expect(noTitle).toMatchObject({ __typename: "ValidationError", field: "title" });
    const foreign = (await t.gql(UPDATE, { input: { id, title: "taken over" } }, keyB)).data.updateVideo;
    expect(foreign).toMatchObject({ __typename: "NotFoundError", id });
    expect((await t.gql(VIDEO, { id })).data.video!.title).toBe("after");
  });

  const manyKeys = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, "v"]));
  const heavy = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v".repeat(1000)]));
  const refusals: [string, CmsInput, string, RegExp][] = [
    ["a description over 5000 characters", { description: "d".repeat(5001) }, "description", /5000 characters/],
    ["a description with a control character", { description: "bell\u0007" }, "description", /control characters/],
    ["more than 50 metadata keys", { metadata: entries(manyKeys) }, "metadata", /more than 50 keys/],
    ["a metadata key over 64 characters", { metadata: entries({ ["k".repeat(65)]: "v" }) }, "metadata", /1 to 64/],
    ["an empty metadata key", { metadata: [{ key: "", value: "v" }] }, "metadata", /1 to 64/],
    ["a metadata key with a space", { metadata: entries({ "a b": "v" }) }, "metadata", /letters, digits/],
    ["the metadata key __proto__", { metadata: [{ key: "__proto__", value: "x" }] }, "metadata", /reserved/],
    ["a metadata key given twice", { metadata: [...entries({ a: "1" }), ...entries({ a: "2" })] }, "metadata", /twice/],
    ["a metadata value over 1024 characters", { metadata: entries({ a: "v".repeat(1025) }) }, "metadata", /1024/],
    ["metadata over 16 KiB in all", { metadata: entries(heavy) }, "metadata", /16384 bytes/],
    ["a metadata value with NUL", { metadata: entries({ a: "x\u0000y" }) }, "metadata", /control characters/],
    ["a metadata value with a lone surrogate", { metadata: entries({ a: "x\ud800" }) }, "metadata", /well-formed/],
    ["more than 20 tags", { tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, "tags", /At most 20 tags/],
    ["a tag over 64 characters", { tags: ["t".repeat(65)] }, "tags", /64 characters/],
    ["a blank tag", { tags: ["   "] }, "tags", /besides spaces/],
    ["a tag with a line break", { tags: ["a\nb"] }, "tags", /control characters/],
    ["an externalId over 128 characters", { externalId: "e".repeat(129) }, "externalId", /1 to 128/],
    ["an empty externalId", { externalId: "" }, "externalId", /1 to 128/],
    ["an externalId with ESC", { externalId: "id\u001b[31m" }, "externalId", /control characters/],
    ["a title with NUL", { title: "x\u0000y" }, "title", /control characters/],
    // Text that impersonates: it displays as other text than it holds.
    ["a title with a right-to-left override", { title: "invoice\u202egnp.exe" }, "title", /direction-changing/],
    ["a title with a bidi isolate", { title: "a\u2067b\u2069" }, "title", /direction-changing/],
    ["a tag with a zero-width space", { tags: ["ad\u200bmin"] }, "tags", /invisible/],
    ["a tag with a zero-width joiner", { tags: ["ad\u200dmin"] }, "tags", /invisible/],
    ["a metadata value with a byte order mark", { metadata: entries({ a: "\ufeffx" }) }, "metadata", /invisible/],
    ["a title with a lone surrogate", { title: "x\udc00" }, "title", /well-formed/],
  ];

  it.each(refusals)(
    "refuses %s, naming the field and the limit, at creation and in updateVideo; nothing is made",
    async (_what, fields, field, message) => {
      const before = (await t.gql(COUNT)).data.videos.edges.length;
      const created = (await t.gql(CREATE_UPLOAD, { input: { title: "refused", ...fields } })).data.createUpload;
      expect(created).toMatchObject({ __typename: "ValidationError", field });
      expect(expectTypename(created, "ValidationError").message).toMatch(message);
      const imported = (await t.gql(FROM_URL, { input: { url: UNREACHABLE, title: "refused", ...fields } })).data
        .createVideoFromUrl;
      expect(imported).toMatchObject({ __typename: "ValidationError", field });
      expect((await t.gql(COUNT)).data.videos.edges.length).toBe(before);

      const { id } = await createUpload(t, "kept", { tags: ["kept"] });
      const updated = (await t.gql(UPDATE, { input: { id, ...fields } })).data.updateVideo;
      expect(updated).toMatchObject({ __typename: "ValidationError", field });
      expect(expectTypename(updated, "ValidationError").message).toMatch(message);
      expect((await t.gql(VIDEO, { id })).data.video).toMatchObject({
        tags: ["kept"],
        metadata: [],
        description: null,
      });
    },
  );

  it(`a create with an externalId the tenant has returns that video as it is, from any create mutation and when \
calls race; another tenant may use the same externalId; updateVideo cannot take one that is taken`, async () => {
    const first = expectTypename(
      (await t.gql(CREATE_UPLOAD, { input: { title: "first", externalId: "cms-42", tags: ["one"] } })).data
        .createUpload,
      "CreateUploadSuccess",
    );
    const again = expectTypename(
      (await t.gql(CREATE_UPLOAD, { input: { title: "second", externalId: "cms-42", tags: ["two"] } })).data
        .createUpload,
      "CreateUploadSuccess",
    );
    expect(again.video).toMatchObject({ id: first.video.id, title: "first", tags: ["one"] });
    const viaUrl = expectTypename(
      (await t.gql(FROM_URL, { input: { url: UNREACHABLE, title: "third", externalId: "cms-42" } })).data
        .createVideoFromUrl,
      "RenderSuccess",
    );
    expect(viaUrl.video).toMatchObject({ id: first.video.id, title: "first", source: "UPLOAD" });

    const inB = expectTypename(
      (await t.gql(CREATE_UPLOAD, { input: { title: "b's", externalId: "cms-42" } }, keyB)).data.createUpload,
      "CreateUploadSuccess",
    );
    expect(inB.video.id).not.toBe(first.video.id);
    expect(inB.video.externalId).toBe("cms-42");

    const raced = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        t.gql(CREATE_UPLOAD, { input: { title: `race ${i}`, externalId: "cms-race" } }),
      ),
    );
    const ids = new Set(raced.map((r) => expectTypename(r.data.createUpload, "CreateUploadSuccess").video.id));
    expect(ids.size).toBe(1);
    const found = (await t.gql(BY_EXTERNAL_ID)).data.videos.edges;
    expect(found).toHaveLength(1);

    const other = await createUpload(t, "other", { externalId: "cms-43" });
    const taken = (await t.gql(UPDATE, { input: { id: other.id, externalId: "cms-42" } })).data.updateVideo;
    expect(taken).toMatchObject({ __typename: "ValidationError", field: "externalId" });
    expect(expectTypename(taken, "ValidationError").message).toMatch(/Another video of this tenant/);
    expect((await t.gql(VIDEO, { id: other.id })).data.video!.externalId).toBe("cms-43");
  });
});

interface Delivery {
  type: string;
  data: { video: Record<string, unknown> };
}

describe("webhooks and videoEvents carry the CMS data; the events' NOTIFYs do not", () => {
  let t: TestApp;
  let receiver: Server;
  let receiverUrl: string;
  const delivered: Delivery[] = [];
  let listener: Awaited<ReturnType<typeof listenToEventFanOut>>;
  let notifications: string[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        delivered.push(JSON.parse(body));
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    // The encode reads its 2 s clip at its own rate (test/support/paced-ffmpeg.ts), so it reports
    // progress on any machine: unpaced, a fast host finished the 160x90 ladder before its first
    // progress report, and the test saw no VariantProgressEvent to check.
    t = await startTestApp({ workerEnv: { FFMPEG_PATH: await pacedFfmpeg() } });
    listener = await listenToEventFanOut(t.database.url);
    notifications = listener.payloads;
  });
  afterAll(async () => {
    await listener?.end();
    await t?.stop();
    await new Promise((r) => receiver?.close(r));
  });

  it(`a subscriber reads the data as the video has it at each event (updateVideo included), every webhook's \
data.video has it, and no NOTIFY carries it`, async () => {
    const endpoint = (await t.gql(CREATE_WEBHOOK_ENDPOINT, { url: receiverUrl })).data.createWebhookEndpoint;
    expect(endpoint.__typename).toBe("CreateWebhookEndpointSuccess");
    const clip = await readFile(await makeClip({ width: 160, height: 90, seconds: 2, audio: true }));
    const { id, uploadUrl } = await createUpload(t, "hooked", {
      externalId: "cms-hooked",
      tags: ["first"],
      metadata: entries({ marker: "mk-before-update" }),
    });
    const events = collectSubscription(t.wsClient(), CMS_EVENTS, { id });
    await expect.poll(() => events.events.length).toBeGreaterThan(0);
    const updated = (
      await t.gql(UPDATE, { input: { id, tags: ["second"], metadata: entries({ marker: "mk-after-update" }) } })
    ).data.updateVideo;
    expect(updated.__typename).toBe("UpdateVideoSuccess");
    expect((await fetch(`${t.url}${uploadUrl}`, { method: "PUT", body: clip })).status).toBe(200);

    const seen = (await events.done).map((e) => e.videoEvents);
    expect(seen.at(-1)!.video.status).toBe("READY");
    expect(seen[0]!.video).toMatchObject({
      externalId: "cms-hooked",
      tags: ["first"],
      metadata: [{ key: "marker", value: "mk-before-update" }],
    });
    const later = seen.slice(1);
    expect(later.map((e) => e.__typename)).toContain("VariantProgressEvent");
    for (const e of later) {
      expect(e.video).toMatchObject({
        externalId: "cms-hooked",
        tags: ["second"],
        metadata: [{ key: "marker", value: "mk-after-update" }],
      });
    }

    await expect
      .poll(() => delivered.map((d) => d.type).sort(), { timeout: 20_000 })
      .toEqual(expect.arrayContaining(["variant.ready", "video.playable", "video.ready"]));
    for (const d of delivered) {
      expect(d.data.video, d.type).toMatchObject({
        id,
        externalId: "cms-hooked",
        tags: ["second"],
        metadata: { marker: "mk-after-update" },
      });
    }
    expect(delivered.find((d) => d.type === "video.ready")!.data.video).toMatchObject({ status: "READY" });

    // A clip of it has none of its CMS data; a clip asked with its externalId is that video, not a clip.
    const CLIP = graphql(
      `mutation($input: CreateClipInput!) { createClip(input: $input) {
      __typename ... on CreateClipSuccess { video { id source ...CmsFields } } } }`,
      [CMS_FIELDS],
    );
    const cut = expectTypename(
      (await t.gql(CLIP, { input: { sourceVideoId: id, start: 0, end: 1 } })).data.createClip,
      "CreateClipSuccess",
    );
    expect(cut.video).toMatchObject({ source: "CLIP", description: null, externalId: null, tags: [], metadata: [] });
    const same = expectTypename(
      (await t.gql(CLIP, { input: { sourceVideoId: id, start: 0, end: 1, externalId: "cms-hooked" } })).data.createClip,
      "CreateClipSuccess",
    );
    expect(same.video).toMatchObject({ id, source: "UPLOAD", externalId: "cms-hooked" });
    await t.gql(CANCEL, { id: cut.video.id });

    // The events went through the fan-out's NOTIFYs, which name the video but not its CMS data.
    const sent = notifications.join("\n");
    expect(sent).toContain(id);
    expect(sent).not.toContain("mk-after-update");
    expect(sent).not.toContain("mk-before-update");
    expect(sent).not.toContain("cms-hooked");
  });
});
