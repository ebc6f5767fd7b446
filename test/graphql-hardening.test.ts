import { readFile } from "node:fs/promises";
import path from "node:path";
import { buildSchema, isObjectType } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, ensureTenant } from "../src/auth/api-keys.ts";
import { TITLE_SEARCH_RATE_POINTS } from "../src/videos/video-search.ts";
import { startTestApp, type TestApp } from "./support/app.ts";
import { ADMIN_AUTH } from "./support/auth.ts";
import { graphql, operationText } from "./support/graphql.ts";

// The documents a test sends as strings, not `graphql` (support/graphql.ts), are so on purpose: too deep,
// too many tokens, too wide, aliased, spread, with a typo, asking for introspection that is off, or built at
// run time (docs/testing.md, "How tests send GraphQL"); each says so. The plain ones below are `graphql`
// documents, their text put in a raw request (a GET, a form post, a bare POST) with `operationText`.
// CREATE_UPLOAD is not the shared one (support/uploads.ts): one mutation with no variables, sent raw where
// the CSRF check and the rate limit are what is tested.
const CREATE_UPLOAD = graphql(`mutation { createUpload(input: { title: "x" }) { __typename } }`);
const VIDEO_IDS = graphql(`{ videos { edges { node { id } } } }`);
const VIDEO_CURSORS = graphql(`{ videos { edges { cursor } } }`);
const JOB_CURSORS = graphql(`{ videos(first: 1) { edges { node { jobs { edges { cursor } } } } } }`);
const VIDEO_CURSORS_FILTERED = graphql(`query ($f: VideoFilter) { videos(filter: $f) { edges { cursor } } }`);
// Every list paged by Pothos' id cursors, with a cursor of the caller's.
const JOBS_AFTER = graphql(
  `query($c: String) { videos(first: 1) { edges { node { jobs(after: $c) { edges { cursor } } } } } }`,
);
const DELIVERIES_BEFORE = graphql(
  `query($c: String) { webhookEndpoints { deliveries(before: $c, last: 1) { edges { cursor } } } }`,
);
const API_KEYS_AFTER = graphql(`query($c: String) { apiKeys(after: $c) { edges { cursor } } }`);
const REMUX_UNKNOWN_VIDEO = graphql(
  `mutation { requestStaticRenditions(videoId: "00000000-0000-4000-8000-000000000000", names: [HIGHEST]) { __typename } }`,
);

describe("GraphQL hardening", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      worker: false,
      env: {
        GRAPHQL_MAX_DEPTH: "6",
        GRAPHQL_MAX_ALIASES: "5",
        GRAPHQL_MAX_COST: "150",
        GRAPHQL_MAX_TOKENS: "600",
        GRAPHQL_INTROSPECTION: "false",
        // createUpload weighs a transcode (5): three fit in a minute, a fourth does not.
        RATE_LIMIT_MUTATIONS_PER_MINUTE: "15",
      },
    });
  });
  afterAll(() => t?.stop());

  it("refuses a query nested deeper than GRAPHQL_MAX_DEPTH, before running it", async () => {
    const shallow = await t.gql(VIDEO_IDS);
    expect(shallow.errors).toBeUndefined();
    // A string: deeper than the limit on purpose.
    const deep = await t.gql(`{ videos { edges { node { jobs { edges { node { parent { parent { id } } } } } } } } }`);
    // Worded as the limit it is, not as GraphQL Armor's "Syntax Error: …".
    expect(deep.errors!.map((e) => e.message)).toEqual(["Query depth limit of 6 exceeded, found 9."]);
    expect(deep.data ?? null).toBeNull();
  });

  it("refuses a document of more than GRAPHQL_MAX_TOKENS tokens while parsing it, worded as the limit", async () => {
    // A string built at run time: more tokens than the limit, on purpose.
    const fields = Array.from({ length: 700 }, () => "__typename").join(" ");
    const res = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...ADMIN_AUTH },
      body: JSON.stringify({ query: `{ ${fields} }` }),
    });
    const body = (await res.json()) as { errors?: { message: string }[]; data?: unknown };
    expect(body.errors?.map((e) => e.message)).toEqual(["Token limit of 600 exceeded."]);
    expect(body.data ?? null).toBeNull();
  });

  it("refuses too many aliases and too costly queries", async () => {
    // Strings built at run time: more aliases than the limit, and too costly, on purpose.
    const aliases = Array.from({ length: 6 }, (_, i) => `a${i}: videos { edges { cursor } }`).join(" ");
    const tooMany = await t.gql(`{ ${aliases} }`);
    expect(tooMany.errors?.[0]?.message, JSON.stringify(tooMany).slice(0, 300)).toMatch(/^Aliases limit of 5 exceeded/);
    const wide = Array.from(
      { length: 4 },
      (_, i) =>
        `v${i}: videos { edges { node { id title status duration width height fps variants { name status ` +
        `progress codecs } } } }`,
    ).join(" ");
    const costly = await t.gql(`{ ${wide} }`);
    expect(costly.errors?.[0]?.message, JSON.stringify(costly).slice(0, 300)).toMatch(
      /^Query Cost limit of 150 exceeded/,
    );
  });

  it("charges a query that shares fields through fragments about as the same query written inline", async () => {
    // Strings built at run time from one list of fields: inline, in a named fragment, in an inline one.
    const fields =
      "id title status duration width height fps variants { name status progress codecs } " +
      "jobs(first: 3) { edges { node { id kind status progress } } }";
    const found = async (query: string) => {
      const message = (await t.gql(query)).errors?.[0]?.message ?? "";
      return Number(/^Query Cost limit of 150 exceeded, found ([\d.]+)\.$/.exec(message)?.[1]);
    };
    const inline = await found(`{ videos { edges { node { ${fields} } } } }`);
    const named = await found(`{ videos { edges { node { ...F } } } } fragment F on Video { ${fields} }`);
    const typed = await found(`{ videos { edges { node { ... on Video { ${fields} } } } } }`);
    expect(inline).toBeGreaterThan(150);
    // Only the spread itself is charged beyond the fields (GraphQL Armor's flattenFragments): a
    // fragment used to add a level of depth to everything in it, 2.25× here for a named one.
    expect(named).toBeGreaterThan(inline);
    expect(named).toBeLessThan(inline * 1.05);
    expect(typed).toBeGreaterThan(inline);
    expect(typed).toBeLessThan(inline * 1.05);
  });

  it("introspection is off when GRAPHQL_INTROSPECTION=false, and errors suggest no field names", async () => {
    // Strings: introspection, which is off, and a field the schema does not have (a typo), on purpose.
    const res = await t.gql(`{ __schema { types { name } } }`);
    expect(res.errors![0]!.message).toMatch(/introspection/i);
    const typo = await t.gql(`{ vidoes { edges { cursor } } }`);
    expect(typo.errors![0]!.message).not.toMatch(/Did you mean/);
  });

  it("masks unexpected errors: no internals reach the client", async () => {
    // A database that fails under the API: the table of jobs renamed, for this test only. The video
    // is made in the database: a createUpload would spend the rate limit's points.
    const db = t.app.services.db;
    await db.video.create({ data: { title: "masked", tenant: { connect: { name: "default" } } } });
    await db.$executeRawUnsafe(`ALTER TABLE "Job" RENAME TO "JobHidden"`);
    let res: Awaited<ReturnType<TestApp["gql"]>>;
    try {
      res = await t.gql(JOB_CURSORS);
    } finally {
      await db.$executeRawUnsafe(`ALTER TABLE "JobHidden" RENAME TO "Job"`);
    }
    expect(res.errors![0]!.message).toBe("Unexpected error.");
    expect(JSON.stringify(res)).not.toMatch(/prisma|postgres|Job\b|JobHidden|exist|stack/i);
  });

  it("refuses a cursor the list did not return (malformed, or naming an id no row can have) and a page's other refused arguments as bad input, on every list paged by id", async () => {
    // Pothos encodes an id cursor as base64 "GPC:S:<id>"; one whose id is no UUID used to reach
    // Postgres, whose uuid column refused it: an unexpected error, logged as one.
    const cursor = Buffer.from("GPC:S:not-a-uuid").toString("base64");
    // An endpoint made in the database: creating one through the API would look its host up.
    await t.app.services.db.webhookEndpoint.create({
      data: { url: "http://127.0.0.1:9/hook", secret: "whsec_test", tenant: { connect: { name: "default" } } },
    });
    const lists = [JOBS_AFTER, DELIVERIES_BEFORE, API_KEYS_AFTER];
    // Every list paged by Pothos' id cursors (its connection arguments, in the printed schema) is one of these.
    // `videos` pages by keysets of its own, bound to its `orderBy` (src/videos/video-search.ts).
    const sdl = await readFile(path.resolve(import.meta.dirname, "../schema/schema.graphql"), "utf8");
    const paged = Object.values(buildSchema(sdl).getTypeMap())
      .flatMap((type) => (isObjectType(type) ? Object.values(type.getFields()) : []))
      .filter((field) => /Connection!$/.test(String(field.type)))
      .filter((field) => field.args.some((a) => a.name === "after") && !field.args.some((a) => a.name === "orderBy"))
      .map((field) => field.name);
    expect(paged.sort()).toEqual(["apiKeys", "deliveries", "jobs"]);
    // And what is no cursor at all: not base64 of Pothos' form, empty, another prefix (Pothos answered these without a code).
    const malformed = [cursor, "abc", "", Buffer.from(`XYZ:S:${crypto.randomUUID()}`).toString("base64")];
    for (const query of lists) {
      for (const c of malformed) {
        const res = await t.gql(query, { c });
        expect(res.errors?.[0]?.extensions?.code, `${operationText(query)} ${c}`).toBe("BAD_USER_INPUT");
        expect(res.errors![0]!.message).toMatch(/is not a cursor of this list/);
        if (c) expect(res.errors![0]!.message).not.toContain(c);
      }
    }
    // A page's other arguments that Pothos refuses are the client's input too (strings, built from them).
    for (const args of ["first: -1", 'after: "x", before: "y"']) {
      const res = await t.gql(`{ apiKeys(${args}) { edges { cursor } } }`);
      expect(res.errors?.[0]?.extensions?.code, args).toBe("BAD_USER_INPUT");
    }
  });

  it("CSRF: a request a browser could send without a preflight is refused", async () => {
    // A simple GET (no Authorization, no custom header) as a cross-site <img> or link would make.
    const get = await fetch(`${t.url}/graphql?query=${encodeURIComponent(operationText(VIDEO_CURSORS))}`);
    expect(get.status).toBe(403);
    expect(JSON.stringify(await get.json())).toContain("CSRF");
    // A form post (multipart, no custom header).
    const form = new FormData();
    form.append("operations", JSON.stringify({ query: operationText(CREATE_UPLOAD) }));
    form.append("map", "{}");
    const post = await fetch(`${t.url}/graphql`, { method: "POST", body: form });
    expect(post.status).toBe(403);
    // The same GET from a client that sends its credential (never a simple request) works.
    const authed = await fetch(`${t.url}/graphql?query=${encodeURIComponent(operationText(VIDEO_CURSORS))}`, {
      headers: ADMIN_AUTH,
    });
    expect(authed.status).toBe(200);
  });

  it("rate-limits mutations per key (RATE_LIMIT_MUTATIONS_PER_MINUTE), not queries without a title search, not other keys", async () => {
    const db = t.app.services.db;
    const tenant = await ensureTenant(db, "limited");
    const { secret } = await createApiKey(db, {
      tenantId: tenant.id,
      name: "limited",
      scopes: ["videos:read", "videos:write"],
    });
    const other = await createApiKey(db, { tenantId: tenant.id, name: "other", scopes: ["videos:write"] });
    const as = (s: string) => `Bearer ${s}`;
    for (let i = 0; i < 3; i++)
      expect((await t.gql(CREATE_UPLOAD, {}, as(secret))).data.createUpload.__typename).toBe("CreateUploadSuccess");
    const limited = await fetch(`${t.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: as(secret) },
      body: JSON.stringify({ query: operationText(CREATE_UPLOAD) }),
    });
    const body = await limited.json();
    expect(body.errors[0].extensions).toMatchObject({ code: "RATE_LIMITED" });
    expect(body.errors[0].extensions.retryAfterSeconds).toBeGreaterThan(0);
    expect(await db.video.count({ where: { tenantId: tenant.id } })).toBe(3);
    expect((await t.gql(VIDEO_CURSORS, {}, as(secret))).errors).toBeUndefined();
    expect((await t.gql(CREATE_UPLOAD, {}, as(other.secret))).data.createUpload.__typename).toBe("CreateUploadSuccess");
  });

  describe("the rate limit counts mutations and title searches, not requests", () => {
    const db = () => t.app.services.db;
    // Strings built at run time (aliased root fields, fragments, interpolated values), on purpose.
    const aliased = (n: number) => {
      const fields = Array.from(
        { length: n },
        (_, i) => `u${i}: createUpload(input: { title: "a${i}" }) { __typename }`,
      );
      return `mutation { ${fields.join(" ")} }`;
    };
    async function freshKey(name: string) {
      const tenant = await ensureTenant(db(), name);
      const { secret } = await createApiKey(db(), {
        tenantId: tenant.id,
        name,
        scopes: ["videos:read", "videos:write"],
      });
      return { tenantId: tenant.id, authorization: `Bearer ${secret}` };
    }
    const expectRateLimited = (res: { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] }) => {
      expect(res.errors?.[0]?.extensions, JSON.stringify(res).slice(0, 300)).toMatchObject({ code: "RATE_LIMITED" });
      expect(res.errors![0]!.extensions!.retryAfterSeconds).toBeGreaterThan(0);
      expect(res.data ?? null).toBeNull();
    };

    it(`each aliased root field counts; a request over the budget runs none of its mutations and \
costs nothing`, async () => {
      const key = await freshKey("aliases");
      expectRateLimited(await t.gql(aliased(4), {}, key.authorization));
      expect(await db().video.count({ where: { tenantId: key.tenantId } })).toBe(0);
      const three = await t.gql(aliased(3), {}, key.authorization);
      expect(three.errors).toBeUndefined();
      expect(await db().video.count({ where: { tenantId: key.tenantId } })).toBe(3);
      expectRateLimited(await t.gql(aliased(1), {}, key.authorization));
      expect(await db().video.count({ where: { tenantId: key.tenantId } })).toBe(3);
    });

    it("root fields behind fragments count, and so do mutations sent over graphql-ws", async () => {
      const key = await freshKey("fragments");
      const spread = `mutation { ...Two ... on Mutation { c: createUpload(input: { title: "c" }) { __typename } d: \
createUpload(input: { title: "d" }) { __typename } } }
        fragment Two on Mutation { a: createUpload(input: { title: "a" }) { __typename } b: createUpload(input: { \
title: "b" }) { __typename } }`;
      expectRateLimited(await t.gql(spread, {}, key.authorization));
      const overWs = await new Promise<any>((resolve, reject) => {
        t.wsClient(key.authorization).subscribe(
          { query: aliased(4) },
          { next: resolve, error: reject, complete: () => {} },
        );
      });
      expectRateLimited(overWs);
      expect(await db().video.count({ where: { tenantId: key.tenantId } })).toBe(0);
    });

    it("expensive mutations weigh more: two imports cost more than this whole budget", async () => {
      const key = await freshKey("weights");
      const url = "https://example.invalid/a.mp4";
      const importing = await t.gql(
        `mutation { a: createVideoFromUrl(input: { title: "i", url: "${url}" }) { __typename } \
b: createVideoFromUrl(input: { title: "j", url: "${url}" }) { __typename } }`,
        {},
        key.authorization,
      );
      expectRateLimited(importing);
      expect(importing.errors![0]!.message).toMatch(/costs 20/);
      expect((await t.gql(aliased(1), {}, key.authorization)).errors).toBeUndefined();
    });

    it("every mutation that queues work is weighted by its jobs: a clip costs a transcode, renditions a remux", async () => {
      const key = await freshKey("clip-weights");
      const id = "00000000-0000-4000-8000-000000000000";
      const clips = Array.from(
        { length: 4 },
        (_, i) => `c${i}: createClip(input: { sourceVideoId: "${id}", start: 0, end: 1 }) { __typename }`,
      );
      const clipping = await t.gql(`mutation { ${clips.join(" ")} }`, {}, key.authorization);
      expectRateLimited(clipping);
      expect(clipping.errors![0]!.message).toMatch(/costs 20/);
      // Three clips use the whole minute (each is charged even when its video is not found).
      expect(
        (await t.gql(`mutation { ${clips.slice(0, 3).join(" ")} }`, {}, key.authorization)).errors,
      ).toBeUndefined();
      const remuxing = await t.gql(REMUX_UNKNOWN_VIDEO, {}, key.authorization);
      expectRateLimited(remuxing);
      expect(remuxing.errors![0]!.message).toMatch(/costs 2\)/);
    });

    it(`a title search costs ${TITLE_SEARCH_RATE_POINTS} points of the same budget, each alias too; other queries cost nothing`, async () => {
      const key = await freshKey("searches");
      const search = (text: string) => `v${text}: videos(filter: { titleContains: "${text}" }) { edges { cursor } }`;
      // Four aliased searches cost 20, more than the whole budget of 15: none runs.
      const four = await t.gql(`{ ${["aaa", "bbb", "ccc", "ddd"].map(search).join(" ")} }`, {}, key.authorization);
      expectRateLimited(four);
      expect(four.errors![0]!.message).toMatch(/costs 20/);
      // A search given in a variable is weighed as execution reads it.
      const byVariable = VIDEO_CURSORS_FILTERED;
      for (let i = 0; i < 15 / TITLE_SEARCH_RATE_POINTS; i++) {
        const res = await t.gql(byVariable, { f: { titleContains: `text ${i}` } }, key.authorization);
        expect(res.errors).toBeUndefined();
      }
      expectRateLimited(await t.gql(byVariable, { f: { titleContains: "one more" } }, key.authorization));
      // The minute is spent, and the same credential still lists and filters without a title.
      for (let i = 0; i < 20; i++) {
        const res = await t.gql(byVariable, { f: { tags: ["x"] } }, key.authorization);
        expect(res.errors).toBeUndefined();
      }
      expect((await t.gql(VIDEO_CURSORS, {}, key.authorization)).errors).toBeUndefined();
    });

    it("a batched request (an array of operations) runs nothing: batching is off", async () => {
      const key = await freshKey("batched");
      const res = await fetch(`${t.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: key.authorization },
        body: JSON.stringify(Array.from({ length: 4 }, () => ({ query: aliased(1) }))),
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(await db().video.count({ where: { tenantId: key.tenantId } })).toBe(0);
    });
  });
});
